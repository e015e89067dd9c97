//! `bvstore demo`: a day of a voice assistant on the data directory, in
//! phases. Users across Indian languages get profiles and consent, hold
//! conversations, store speech clips and already-compressed clips (some
//! twice); the clips are read back, the assistant's hot lookups go
//! through the cache, the lifecycle and privacy features run, and the
//! store is backed up and deep-verified. Each phase shows a bar while it
//! runs and leaves a row in the summary table; the summary then says
//! where the data and its master key are and what to try next.
//!
//! This file runs the phases in order and gathers their figures; the
//! phases live in `demo_*.rs`, the rendering in `demo_summary.rs`.
//! Usernames carry a run tag, so the demo can run again on the same store.

use std::time::Instant;

use bharatvoice_store::{
    ConsentKind, Error, HealthStatus, ListOptions, MasterKeySource, Store, Timestamp, UserId,
};
use clap::Args;
use serde::Serialize;

use super::demo_phase::{PhaseRow, Phases};
use super::{Cli, Out, Outcome, done};

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Users to create (each gets a profile and sessions).
    #[arg(long, default_value_t = 300)]
    users: usize,
    /// Sessions per user.
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// Synthetic 16 kHz speech WAV clips to store (one in eight is
    /// stored twice by its owner, and deduplicated).
    #[arg(long, default_value_t = 800)]
    wav_clips: usize,
    /// Random-byte "Opus" clips to store (they do not compress).
    #[arg(long, default_value_t = 200)]
    opus_clips: usize,
}

/// Everything the demo did: the text summary renders it, `--json` prints it.
#[derive(Debug, Serialize)]
pub(crate) struct DemoReport {
    pub(crate) data_dir: String,
    pub(crate) master_key: KeyPlace,
    pub(crate) run_tag: String,
    pub(crate) seconds: f64,
    pub(crate) phases: Vec<PhaseRow>,
    pub(crate) health: HealthStatus,
    pub(crate) users_created: usize,
    pub(crate) profiles_written: usize,
    pub(crate) passwords_set: usize,
    pub(crate) sessions_created: usize,
    pub(crate) turns_appended: usize,
    pub(crate) languages: Vec<String>,
    pub(crate) write_requests: usize,
    pub(crate) write_seconds: f64,
    pub(crate) writes_per_second: f64,
    pub(crate) users_in_store: usize,
    pub(crate) sample_session_turns: u64,
    pub(crate) sample_context_turns: usize,
    pub(crate) files: super::demo_files::FilePhase,
    pub(crate) read_back: super::demo_files::ReadBack,
    pub(crate) cache: super::demo_cache::CacheFigures,
    pub(crate) lifecycle: super::demo_lifecycle::LifecyclePhase,
    pub(crate) privacy: super::demo_privacy::PrivacyPhase,
    pub(crate) operations: super::demo_ops::OpsPhase,
}

/// Where the store's master key is, and whether this run made it.
#[derive(Debug, Serialize)]
pub(crate) struct KeyPlace {
    pub(crate) source: MasterKeySource,
    /// Where the key was given: `BV_MASTER_KEY`, `BV_MASTER_KEY_FILE`,
    /// the configuration's `master_key_file`, or the data directory.
    pub(crate) given_by: &'static str,
    /// The embedded `master.key` did not exist before this run.
    pub(crate) generated_by_this_run: bool,
}

fn run_tag() -> String {
    let mut n = Timestamp::now().as_micros().unsigned_abs() / 1000;
    let mut tag = String::new();
    while n > 0 && tag.len() < 7 {
        tag.push(char::from(
            b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize],
        ));
        n /= 36;
    }
    tag
}

/// Where the open store's key came from; `existed` says whether the
/// embedded key file was there before the store opened.
async fn key_place(store: &Store, existed: bool) -> Result<KeyPlace, Error> {
    let source = store.keys().status().await?.master_key;
    let given_by = match &source {
        MasterKeySource::Given => "BV_MASTER_KEY",
        MasterKeySource::File(_) if std::env::var_os("BV_MASTER_KEY_FILE").is_some() => {
            "BV_MASTER_KEY_FILE"
        }
        MasterKeySource::File(_) => "master_key_file in the configuration",
        MasterKeySource::Embedded(_) => "the data directory",
    };
    Ok(KeyPlace {
        generated_by_this_run: matches!(source, MasterKeySource::Embedded(_)) && !existed,
        source,
        given_by,
    })
}

/// Live users in the store, page by page.
async fn count_users(store: &Store) -> Result<usize, Error> {
    let mut count = 0;
    let mut page = store.users().list(ListOptions::first(1000)).await?;
    loop {
        count += page.items.len();
        match page.next {
            Some(c) => page = store.users().list(ListOptions::after(c, 1000)).await?,
            None => return Ok(count),
        }
    }
}

/// This run's users who allow their audio to be stored.
fn consenting(store: &Store, ids: &[UserId]) -> Vec<UserId> {
    ids.iter()
        .copied()
        .filter(|id| {
            store
                .profiles()
                .get(*id)
                .is_ok_and(|p| p.has_consent(ConsentKind::AudioStorage))
        })
        .collect()
}

pub(crate) async fn run(cli: &Cli, args: &DemoArgs, out: &Out) -> Outcome {
    let started = Instant::now();
    let key_existed = super::config_of(cli)?.data_dir.join("master.key").exists();
    let store = super::open_or_create(cli, bharatvoice_store::OpenMode::OpenOrCreate).await?;
    let tag = run_tag();
    let mut phases = Phases::new(out);
    let ids = super::demo_people::create_users(&store, args.users, &tag, &mut phases).await?;
    let talk = super::demo_people::conversations(&store, &ids, args.sessions, &mut phases).await?;
    // Audio is stored only for the users who gave audio-storage consent.
    let consenting = consenting(&store, &ids);
    let (wav, opus) = (args.wav_clips, args.opus_clips);
    let (files, stored) =
        super::demo_files::run(&store, &consenting, wav, opus, &mut phases).await?;
    let read_back = super::demo_files::read_back(&store, &stored, &mut phases).await?;
    let cache = super::demo_cache::run(&store, &ids, &mut phases).await?;
    let lifecycle = super::demo_lifecycle::run(&tag, &mut phases).await?;
    let privacy = super::demo_privacy::run(&store, &consenting, &mut phases).await?;
    let operations = super::demo_ops::run(&store, &mut phases).await?;
    let sample = match ids.first() {
        Some(id) => store
            .sessions()
            .list_for_user(*id, 1)
            .await?
            .into_iter()
            .next(),
        None => None,
    };
    let report = DemoReport {
        data_dir: store.config().data_dir.display().to_string(),
        master_key: key_place(&store, key_existed).await?,
        run_tag: tag,
        seconds: started.elapsed().as_secs_f64(),
        phases: phases.into_rows(),
        health: operations.health,
        users_created: ids.len(),
        profiles_written: ids.len(),
        passwords_set: ids.len().min(super::demo_people::WITH_PASSWORD),
        sessions_created: talk.sessions,
        turns_appended: talk.turns,
        languages: super::demo_people::languages(args.users),
        write_requests: talk.writes,
        write_seconds: talk.seconds,
        writes_per_second: talk.writes_per_second,
        users_in_store: count_users(&store).await?,
        sample_session_turns: sample.as_ref().map_or(0, |s| s.turn_count),
        sample_context_turns: sample.as_ref().map_or(0, |s| s.context.len()),
        files,
        read_back,
        cache,
        lifecycle,
        privacy,
        operations,
    };
    let result = out.emit(&report, || {
        out.with_hint(
            super::demo_summary::text(&report),
            super::demo_summary::next_steps(cli, &report),
        )
    });
    store.close().await;
    done(result)
}
