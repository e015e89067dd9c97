//! The demo's cache phase: the assistant's hot lookups (a user's profile,
//! their recent sessions) served through `get_or_insert_with`, tagged per
//! user, with a profile change invalidating one user's entries.

use std::time::{Duration, Instant};

use bharatvoice_store::{
    ConversationSession, Error, ProfileUpdate, SetOptions, Store, UserId, UserProfile,
};
use serde::Serialize;

use super::demo_phase::{Phases, templates};

/// Lookup rounds per user (a conversation reads the profile every turn).
const ROUNDS: usize = 8;

#[derive(Debug, Serialize)]
pub(crate) struct CacheFigures {
    pub(crate) lookups: u64,
    pub(crate) hit_ratio: f64,
    pub(crate) loads_from_db: usize,
    pub(crate) invalidated_entries: u64,
    pub(crate) reloads_after_invalidation: usize,
    pub(crate) lookups_per_second: f64,
    pub(crate) tier2_state: String,
}

async fn profile(store: &Store, id: UserId, loads: &mut usize) -> Result<UserProfile, Error> {
    let opts = SetOptions::new()
        .ttl(Duration::from_secs(600))
        .tag(format!("user:{id}"));
    let mut loaded = false;
    let p = store
        .cache()
        .get_or_insert_with(&format!("profile:{id}"), &opts, || async {
            loaded = true;
            store.profiles().get(id)
        })
        .await?;
    *loads += usize::from(loaded);
    Ok(p)
}

async fn sessions(
    store: &Store,
    id: UserId,
    loads: &mut usize,
) -> Result<Vec<ConversationSession>, Error> {
    let opts = SetOptions::new()
        .ttl(Duration::from_secs(120))
        .tag(format!("user:{id}"));
    let mut loaded = false;
    let s = store
        .cache()
        .get_or_insert_with(&format!("sessions:{id}"), &opts, || async {
            loaded = true;
            store.sessions().list_for_user(id, 5).await
        })
        .await?;
    *loads += usize::from(loaded);
    Ok(s)
}

/// Runs the phase over `users`; the bar counts lookups (`ROUNDS` rounds
/// of two a user).
pub(crate) async fn run(
    store: &Store,
    users: &[UserId],
    phases: &mut Phases<'_>,
) -> Result<CacheFigures, Error> {
    let phase = phases.start("cache", templates::LOOKUPS, ROUNDS * users.len() * 2);
    let bar = phase.bar();
    let before = store.cache().stats();
    let mut loads = 0;
    let started = Instant::now();
    let mut done = 0;
    for _ in 0..ROUNDS {
        for id in users {
            profile(store, *id, &mut loads).await?;
            sessions(store, *id, &mut loads).await?;
            done += 2;
            bar.set(done);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // A user changes their languages: their cached entries go at once.
    let mut invalidated = 0;
    let mut reloads = 0;
    if let Some(id) = users.first() {
        let change = ProfileUpdate {
            languages: Some(vec!["en-IN".parse()?]),
            ..Default::default()
        };
        store.profiles().upsert(*id, change).await?;
        invalidated = store.cache().invalidate_tag(&format!("user:{id}")).await?;
        let fresh = profile(store, *id, &mut reloads).await?;
        sessions(store, *id, &mut reloads).await?;
        debug_assert_eq!(fresh.languages.len(), 1);
    }
    let after = store.cache().stats();
    let lookups = after.lookups - before.lookups;
    let hits = after.hits - before.hits;
    let detail = format!("{} lookups", super::demo_summary::grouped(lookups));
    phases.end(phase, lookups, "lookups", detail);
    Ok(CacheFigures {
        lookups,
        hit_ratio: if lookups == 0 {
            0.0
        } else {
            hits as f64 / lookups as f64
        },
        loads_from_db: loads,
        invalidated_entries: invalidated,
        reloads_after_invalidation: reloads,
        lookups_per_second: (ROUNDS * users.len() * 2) as f64 / elapsed.max(1e-9),
        tier2_state: after.tier2.state.to_string(),
    })
}
