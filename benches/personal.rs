//! The cost of personal data at rest: reading and changing the records
//! whose personal fields are sealed under their owner's key (a session's
//! turns, a profile's accent, voice and preferences, a user's display name).
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench --bench personal
//! # quick: shorter criterion samples
//! BV_BENCH_PERSONAL_SECS=1 CARGO_TARGET_DIR=target-bench cargo bench --bench personal
//! ```
//!
//! One store (`Config::new(dir).password_cost(8, 1)`, audit on), one user
//! with a display name, a profile with an accent, a voice and three
//! preferences, and one session whose context holds `TURNS` turns of about
//! 120 bytes of Hindi text each (about 1.9 KiB of context).
//!
//! Criterion groups:
//!
//! * `session_get`: `sessions().get(id)`, an inline point read that returns
//!   the whole context (its opened turns kept in memory by default).
//! * `session_get_no_cache`: the same on a store with
//!   `session_cache_bytes(0)`: every read decrypts the context.
//! * `append_turn`: `sessions().append_turn` of one more turn to a second
//!   session kept at the same context size (the context bound drops the
//!   oldest turn), one durable commit each.
//! * `profile_get`: `profiles().get(user)`.
//! * `user_get`: `users().get(id)`.
//!
//! The figures before and after the personal fields were sealed are in
//! `docs/BENCHMARKS.md`, section "Personal data at rest".

mod common;

use std::hint::black_box;
use std::time::Duration;

use bharatvoice_store::{
    Config, ConsentKind, NewUser, ProfileUpdate, Role, SessionId, Store, Turn, UserId,
    VoicePreferences,
};
use common::temp_dir;
use criterion::{Criterion, criterion_group, criterion_main};
use tokio::runtime::Runtime;

/// Turns in each measured session's context.
const TURNS: usize = 16;
/// One turn's text: about 120 bytes of Devanagari.
const TEXT: &str = "कल सुबह मुंबई में मौसम कैसा रहेगा, बारिश होगी क्या?";

struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    user: UserId,
    read_session: SessionId,
    write_session: SessionId,
}

fn fixture(rt: &Runtime, session_cache_bytes: u64) -> Fixture {
    let dir = temp_dir("bv-personal");
    let config = Config::new(dir.path())
        .password_cost(8, 1)
        .session_cache_bytes(session_cache_bytes)
        .session_max_turns(TURNS)
        .session_max_context_bytes(1 << 20);
    rt.block_on(async {
        let store = Store::open(config).await.expect("open");
        let user = store
            .users()
            .create(
                NewUser::new("bench", "bench@example.in")
                    .display_name("अर्जुन शर्मा")
                    .consent(ConsentKind::AudioStorage),
            )
            .await
            .expect("user")
            .id;
        let update = ProfileUpdate {
            accent: Some(Some("marathi-mumbai".into())),
            voice: Some(VoicePreferences {
                voice: Some("hi-IN-Wavenet-A".into()),
                ..VoicePreferences::default()
            }),
            preferences: [("city", "Pune"), ("diet", "veg"), ("wake", "6:30")]
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .to_vec(),
            ..ProfileUpdate::default()
        };
        store
            .profiles()
            .upsert(user, update)
            .await
            .expect("profile");
        let mut sessions = Vec::new();
        for _ in 0..2 {
            let s = store
                .sessions()
                .create(user, Some("hi-IN".parse().expect("tag")))
                .await
                .expect("session");
            for i in 0..TURNS {
                let role = if i.is_multiple_of(2) {
                    Role::User
                } else {
                    Role::Assistant
                };
                store
                    .sessions()
                    .append_turn(s.id, Turn::new(role, TEXT))
                    .await
                    .expect("turn");
            }
            sessions.push(s.id);
        }
        Fixture {
            _dir: dir,
            store,
            user,
            read_session: sessions[0],
            write_session: sessions[1],
        }
    })
}

fn bench_personal(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let fx = fixture(&rt, Config::default().session_cache_bytes);
    let context = fx.store.sessions().get(fx.read_session).expect("get");
    assert_eq!(context.context.len(), TURNS);
    eprintln!(
        "personal: session context of {} turns, {} bytes",
        context.context.len(),
        context.context_bytes()
    );

    c.bench_function("session_get", |b| {
        b.iter(|| black_box(fx.store.sessions().get(black_box(fx.read_session))))
    });
    // The same read with no opened contexts kept: each read decrypts.
    let cold = fixture(&rt, 0);
    c.bench_function("session_get_no_cache", |b| {
        b.iter(|| black_box(cold.store.sessions().get(black_box(cold.read_session))))
    });
    rt.block_on(cold.store.close());
    c.bench_function("append_turn", |b| {
        b.iter(|| {
            rt.block_on(async {
                let s = fx
                    .store
                    .sessions()
                    .append_turn(fx.write_session, Turn::new(Role::User, black_box(TEXT)))
                    .await
                    .expect("append");
                black_box(s.turn_count)
            })
        })
    });
    c.bench_function("profile_get", |b| {
        b.iter(|| {
            black_box(
                fx.store
                    .profiles()
                    .get(black_box(fx.user))
                    .expect("profile"),
            )
        })
    });
    c.bench_function("user_get", |b| {
        b.iter(|| black_box(fx.store.users().get(black_box(fx.user)).expect("user")))
    });
    rt.block_on(fx.store.close());
}

fn criterion_config() -> Criterion {
    let secs = std::env::var("BV_BENCH_PERSONAL_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3u64)
        .max(1);
    Criterion::default()
        .without_plots()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(secs))
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = bench_personal
}
criterion_main!(benches);
