//! Input the store refuses before it writes: control characters in text
//! fields, settings out of range, and echoes of long input cut short.

use std::collections::HashMap;
use std::time::Duration;

use bharatvoice_store::{
    Actor, CacheConfig, Config, Error, MetricSample, NewUser, ProfileUpdate, PutOptions, Role,
    Turn, UserUpdate, VoicePreferences, WriteMode,
};

use crate::common::open_store;

/// Texts no single-line field may hold.
const BAD: [&str; 5] = [
    "a\x1b[2Jb",
    "x\ny",
    "tab\there",
    "right\u{202e}left",
    "iso\u{2066}late",
];

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, Error>, what: &str) {
    match r {
        Err(Error::InvalidInput { .. }) => {}
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    }
}

#[tokio::test]
async fn user_fields_with_control_characters_are_refused() {
    let t = open_store().await;
    let users = t.store.users();
    let ok = t.user("mira").await;
    for bad in BAD {
        assert_invalid(
            users
                .create(
                    NewUser::new("ravi", "ravi@example.in")
                        .consent(bharatvoice_store::ConsentKind::AudioStorage)
                        .display_name(bad),
                )
                .await,
            &format!("display name {bad:?}"),
        );
        assert_invalid(
            users
                .create(
                    NewUser::new("ravi", format!("ra{bad}vi@example.in"))
                        .consent(bharatvoice_store::ConsentKind::AudioStorage),
                )
                .await,
            &format!("email {bad:?}"),
        );
        assert_invalid(
            users
                .create(
                    NewUser::new(format!("ra{bad}vi"), "ravi@example.in")
                        .consent(bharatvoice_store::ConsentKind::AudioStorage),
                )
                .await,
            &format!("username {bad:?}"),
        );
        let change = UserUpdate {
            display_name: Some(Some(bad.into())),
            ..Default::default()
        };
        assert_invalid(users.update(ok.id, change).await, "display name update");
    }
    // Nothing was created along the way.
    assert!(users.get_by_username("ravi").is_err());
}

#[tokio::test]
async fn file_fields_with_control_characters_are_refused() {
    let t = open_store().await;
    let u = t.user("mira").await;
    let me = Actor::User(u.id);
    let files = t.store.files();
    for bad in BAD {
        let named = PutOptions {
            name: Some(bad.into()),
            ..PutOptions::content_type("audio/wav")
        };
        assert_invalid(files.put_bytes(me, u.id, b"x", named).await, "name");
        let typed = PutOptions::content_type(format!("audio/{bad}"));
        assert_invalid(files.put_bytes(me, u.id, b"x", typed).await, "type");
        let tagged = PutOptions {
            tags: vec![bad.into()],
            ..PutOptions::content_type("audio/wav")
        };
        assert_invalid(files.put_bytes(me, u.id, b"x", tagged).await, "tag");
    }
    let page = files
        .list(me, u.id, Default::default(), Default::default())
        .await
        .unwrap();
    assert!(page.items.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn profile_fields_with_control_characters_are_refused() {
    let t = open_store().await;
    let u = t.user("mira").await;
    let profiles = t.store.profiles();
    for bad in BAD {
        let changes = [
            ProfileUpdate {
                region: Some(Some(bad.into())),
                ..Default::default()
            },
            ProfileUpdate {
                accent: Some(Some(bad.into())),
                ..Default::default()
            },
            ProfileUpdate {
                voice: Some(VoicePreferences {
                    voice: Some(bad.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ProfileUpdate {
                preferences: vec![(bad.into(), Some("v".into()))],
                ..Default::default()
            },
            ProfileUpdate {
                preferences: vec![("k".into(), Some(bad.into()))],
                ..Default::default()
            },
        ];
        for change in changes {
            let what = format!("{change:?}");
            assert_invalid(profiles.upsert(u.id, change).await, &what);
        }
    }
}

#[tokio::test]
async fn turn_text_keeps_newlines_and_tabs_but_no_other_control_characters() {
    let t = open_store().await;
    let u = t.user("mira").await;
    let sessions = t.store.sessions();
    let s = sessions.create(u.id, None).await.unwrap();
    let ok = "line one\n\tline two\n";
    let s2 = sessions
        .append_turn(s.id, Turn::new(Role::User, ok))
        .await
        .unwrap();
    assert_eq!(s2.context[0].text, ok);
    for bad in [
        "a\x1b[2Jb",
        "cr\rforged",
        "bell\x07",
        "nul\0",
        "right\u{202e}left",
    ] {
        assert_invalid(
            sessions.append_turn(s.id, Turn::new(Role::User, bad)).await,
            &format!("turn {bad:?}"),
        );
    }
    assert_eq!(sessions.get(s.id).unwrap().turn_count, 1);
}

#[tokio::test]
async fn metric_labels_with_control_characters_are_refused() {
    let t = open_store().await;
    for bad in BAD {
        let by_key = MetricSample::new("db.write", 1.0).label(bad, "v");
        assert_invalid(t.store.metrics().record(by_key).await, "label key");
        let by_value = MetricSample::new("db.write", 1.0).label("op", bad);
        assert_invalid(t.store.metrics().record(by_value).await, "label value");
    }
}

// ---- settings ranges -----------------------------------------------------

/// `config` is refused with a `Config` error naming `name` and `range`.
fn assert_out_of_range(config: Config, name: &str, range: &str) {
    match config.validate() {
        Err(Error::Config { reason }) => assert!(
            reason.contains(name) && reason.contains(range),
            "{name}: the error should name the setting and {range}: {reason}"
        ),
        other => panic!("{name}: expected a Config error, got {other:?}"),
    }
}

#[test]
fn every_numeric_setting_has_a_range() {
    let c = || Config::new("/tmp/bv-ranges");
    let cache = |f: fn(CacheConfig) -> CacheConfig| c().cache(f(CacheConfig::default()));
    let cases: Vec<(Config, &str, &str)> = vec![
        (c().max_batch(0), "max_batch", "1 to 65536"),
        (c().max_batch(65537), "max_batch", "1 to 65536"),
        (c().max_batch(usize::MAX), "max_batch", "1 to 65536"),
        (c().write_queue(0), "write_queue", "1 to 1048576"),
        (c().write_queue(usize::MAX), "write_queue", "1 to 1048576"),
        (c().db_cache_bytes(1), "db_cache_bytes", "65536 to"),
        (c().db_cache_bytes(usize::MAX), "db_cache_bytes", "65536 to"),
        (
            c().session_idle_timeout(Duration::ZERO),
            "session_idle_timeout",
            "1 to 315360000 s",
        ),
        (
            c().session_idle_timeout(Duration::MAX),
            "session_idle_timeout",
            "1 to 315360000 s",
        ),
        (
            c().session_max_turns(100_000),
            "session_max_turns",
            "1 to 65536",
        ),
        (
            c().session_max_context_bytes(usize::MAX),
            "session_max_context_bytes",
            "1 to 16777216",
        ),
        (
            c().session_cache_bytes(u64::MAX),
            "session_cache_bytes",
            "0 to 1099511627776",
        ),
        (
            c().password_cost(u32::MAX, 1),
            "password_memory_kib",
            "8 to 2097152",
        ),
        (c().password_cost(8, 1000), "password_iterations", "1 to 64"),
        (
            c().default_retention_days(3651),
            "default_retention_days",
            "1 to 3650",
        ),
        (
            c().blob_chunk_bytes(u32::MAX),
            "blob_chunk_bytes",
            "4096 to 16777216",
        ),
        (
            cache(|k| k.memory_bytes(u64::MAX)),
            "memory_bytes",
            "4096 to",
        ),
        (cache(|k| k.tier2_bytes(1)), "tier2_bytes", "65536 to"),
        (
            cache(|k| k.tier2_bytes(u64::MAX)),
            "tier2_bytes",
            "65536 to",
        ),
        (
            cache(|k| k.default_ttl(Some(Duration::MAX))),
            "default_ttl",
            "1 to 315360000 s",
        ),
        (
            cache(|k| k.sweep_interval(Duration::MAX)),
            "sweep_interval",
            "1 to 86400000 ms",
        ),
        (
            cache(|k| k.retry_interval(Duration::ZERO)),
            "retry_interval",
            "1 to 86400000 ms",
        ),
        (
            cache(|k| {
                k.write_mode(WriteMode::WriteBehind {
                    max_delay: Duration::MAX,
                })
            }),
            "write_delay",
            "1 to 60000 ms",
        ),
    ];
    for (config, name, range) in cases {
        assert_out_of_range(config, name, range);
    }
}

#[test]
fn settings_from_toml_and_environment_are_range_checked() {
    for (toml, name) in [
        ("max_batch = 100000000000", "max_batch"),
        ("write_queue = 0", "write_queue"),
        (
            "session_idle_timeout_secs = 9223372036854775807",
            "session_idle_timeout",
        ),
        (
            "[cache]\nsweep_interval_secs = 9223372036854775807",
            "sweep_interval",
        ),
        (
            "[cache]\ndefault_ttl_secs = 9223372036854775807",
            "default_ttl",
        ),
    ] {
        match Config::from_toml_str(toml) {
            Err(Error::Config { reason }) => assert!(reason.contains(name), "{toml}: {reason}"),
            other => panic!("{toml}: {other:?}"),
        }
    }
    for (var, value, name) in [
        ("BV_MAX_BATCH", "18446744073709551615", "max_batch"),
        (
            "BV_SESSION_IDLE_SECS",
            "18446744073709551615",
            "session_idle_timeout",
        ),
        (
            "BV_CACHE_RETRY_MS",
            "18446744073709551615",
            "retry_interval",
        ),
        ("BV_CACHE_MEMORY_BYTES", "1", "memory_bytes"),
    ] {
        let env: HashMap<&str, &str> = [(var, value)].into();
        let mut config = Config::default();
        match config.apply_env(|k| env.get(k).map(|v| v.to_string())) {
            Err(Error::Config { reason }) => assert!(reason.contains(name), "{var}: {reason}"),
            other => panic!("{var}: {other:?}"),
        }
    }
}

#[test]
fn a_bad_setting_from_the_environment_is_not_echoed_whole() {
    let long = "9".repeat(10_000);
    let env: HashMap<&str, String> = [("BV_MAX_BATCH", long)].into();
    let mut config = Config::default();
    let e = config
        .apply_env(|k| env.get(k).cloned())
        .unwrap_err()
        .to_string();
    assert!(e.len() < 300, "{} bytes: {e}", e.len());
    assert!(e.contains("BV_MAX_BATCH"), "{e}");
}

#[tokio::test]
async fn errors_quote_long_input_cut_short() {
    let t = open_store().await;
    let long = "x".repeat(100_000);
    let errors = [
        t.store
            .users()
            .create(
                NewUser::new(&long, "a@example.in")
                    .consent(bharatvoice_store::ConsentKind::AudioStorage),
            )
            .await
            .unwrap_err(),
        t.store
            .users()
            .create(
                NewUser::new("ravi", format!("{long}@"))
                    .consent(bharatvoice_store::ConsentKind::AudioStorage),
            )
            .await
            .unwrap_err(),
        t.store.users().get_by_username(&long).unwrap_err(),
        long.parse::<bharatvoice_store::UserId>().unwrap_err(),
        long.parse::<bharatvoice_store::LanguageTag>().unwrap_err(),
        long.parse::<bharatvoice_store::ConsentKind>().unwrap_err(),
    ];
    for e in errors {
        let text = e.to_string();
        assert!(text.len() < 400, "{} bytes: {}…", text.len(), &text[..200]);
        assert!(text.contains("xxxx\"…"), "{text}");
    }
}
