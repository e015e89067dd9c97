//! Configuration: defaults, TOML, environment, validation.

use std::collections::HashMap;
use std::time::Duration;

use bharatvoice_store::{Config, DEFAULT_DATA_DIR, Error};

#[test]
fn defaults_are_sane() {
    let c = Config::default();
    assert_eq!(c.data_dir, std::path::PathBuf::from(DEFAULT_DATA_DIR));
    assert!(c.validate().is_ok());
    assert_eq!(c.db_path(), c.data_dir.join("store.redb"));
}

#[test]
fn toml_overrides_defaults_and_unknown_keys_are_refused() {
    let c = Config::from_toml_str(
        "data_dir = '/srv/bv'\nsession_idle_timeout_secs = 90\nsession_max_turns = 8\n",
    )
    .unwrap();
    assert_eq!(c.data_dir, std::path::PathBuf::from("/srv/bv"));
    assert_eq!(c.session_idle_timeout, Duration::from_secs(90));
    assert_eq!(c.session_max_turns, 8);
    assert_eq!(c.max_batch, Config::default().max_batch);
    assert_eq!(c.blob_cache_limit_bytes, 1 << 20);
    let c = Config::from_toml_str("blob_cache_limit_bytes = 4096").unwrap();
    assert_eq!(c.blob_cache_limit_bytes, 4096);
    assert!(matches!(
        Config::from_toml_str("data_dri = 'typo'"),
        Err(Error::Config { .. })
    ));
    assert!(matches!(
        Config::from_toml_str("max_batch = 0"),
        Err(Error::Config { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bv.toml");
    std::fs::write(&file, "default_retention_days = 7").unwrap();
    assert_eq!(Config::load(Some(&file)).unwrap().default_retention_days, 7);
    assert!(matches!(
        Config::from_toml_file(&dir.path().join("missing.toml")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn environment_overrides_and_bad_numbers_are_errors() {
    let env: HashMap<&str, &str> = [
        ("BV_DATA_DIR", "/data/bv"),
        ("BV_SESSION_MAX_TURNS", "12"),
        ("BV_SESSION_IDLE_SECS", "5"),
        ("BV_BLOB_CACHE_LIMIT_BYTES", "0"),
    ]
    .into();
    let mut c = Config::default();
    c.apply_env(|k| env.get(k).map(|v| v.to_string())).unwrap();
    assert_eq!(c.data_dir, std::path::PathBuf::from("/data/bv"));
    assert_eq!(c.session_max_turns, 12);
    assert_eq!(c.session_idle_timeout, Duration::from_secs(5));
    assert_eq!(c.blob_cache_limit_bytes, 0);
    assert!(c.verify_on_open, "verified by default");
    let off: HashMap<&str, &str> = [("BV_VERIFY_ON_OPEN", "false")].into();
    c.apply_env(|k| off.get(k).map(|v| v.to_string())).unwrap();
    assert!(!c.verify_on_open);
    let from_toml = Config::from_toml_str("verify_on_open = false").unwrap();
    assert!(!from_toml.verify_on_open);
    let bad: HashMap<&str, &str> = [("BV_VERIFY_ON_OPEN", "maybe")].into();
    let e = Config::default()
        .apply_env(|k| bad.get(k).map(|v| v.to_string()))
        .unwrap_err();
    assert!(e.to_string().contains("BV_VERIFY_ON_OPEN"), "{e}");
    let bad: HashMap<&str, &str> = [("BV_MAX_BATCH", "lots")].into();
    let e = Config::default()
        .apply_env(|k| bad.get(k).map(|v| v.to_string()))
        .unwrap_err();
    assert!(e.to_string().contains("BV_MAX_BATCH"), "{e}");
}

#[tokio::test]
async fn open_creates_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/c");
    let store = bharatvoice_store::Store::open(crate::common::config(&nested))
        .await
        .unwrap();
    assert!(nested.join("store.redb").exists());
    assert_eq!(store.db_file(), nested.join("store.redb"));
}
