//! The data region: recorded in the store at creation (or at the first
//! open that names one), kept by a copy of the data directory, and a
//! deployment configured for another region is refused.

use bharatvoice_store::{Config, Error, Store};

use crate::common::{bvstore_command, config, stderr, stdout};

async fn region_after_open(config: Config) -> Result<Option<String>, Error> {
    let store = Store::open(config).await?;
    let region = store.region().map(str::to_string);
    store.close().await;
    Ok(region)
}

fn mismatch(r: Result<Option<String>, Error>, want_expected: &str, want_found: &str) {
    match r {
        Err(Error::RegionMismatch {
            expected, found, ..
        }) => assert_eq!(
            (expected.as_str(), found.as_str()),
            (want_expected, want_found)
        ),
        other => panic!("expected RegionMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn the_region_is_recorded_at_creation_and_another_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = || config(dir.path());
    assert_eq!(
        region_after_open(c().region("IN"))
            .await
            .unwrap()
            .as_deref(),
        Some("IN")
    );
    // Kept without the setting, refused with another, fine with the same.
    assert_eq!(region_after_open(c()).await.unwrap().as_deref(), Some("IN"));
    mismatch(region_after_open(c().region("US")).await, "US", "IN");
    mismatch(region_after_open(c().region("IN-KA")).await, "IN-KA", "IN");
    assert_eq!(
        region_after_open(c().region("IN"))
            .await
            .unwrap()
            .as_deref(),
        Some("IN")
    );
    // A copy of the directory carries it.
    let copy = tempfile::tempdir().unwrap();
    for name in ["store.redb", "master.key"] {
        std::fs::copy(dir.path().join(name), copy.path().join(name)).unwrap();
    }
    mismatch(
        region_after_open(config(copy.path()).region("SG")).await,
        "SG",
        "IN",
    );
}

#[tokio::test]
async fn a_store_without_a_region_takes_the_first_one_configured() {
    let dir = tempfile::tempdir().unwrap();
    let c = || config(dir.path());
    assert_eq!(region_after_open(c()).await.unwrap(), None);
    assert_eq!(
        region_after_open(c().region("IN-TN"))
            .await
            .unwrap()
            .as_deref(),
        Some("IN-TN")
    );
    mismatch(region_after_open(c().region("IN")).await, "IN", "IN-TN");
    // A code that is not ISO 3166 is a configuration error.
    for bad in ["india", "in", "IN/../x", ""] {
        let r = region_after_open(c().region(bad)).await;
        assert!(matches!(r, Err(Error::Config { .. })), "{bad}: {r:?}");
    }
    let t = Config::from_toml_str("region = \"IN\"").unwrap();
    assert_eq!(t.region.as_deref(), Some("IN"));
    assert!(Config::from_toml_str("region = \"Bharat\"").is_err());
}

#[test]
fn the_cli_shows_the_region_and_exits_18_on_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let run = |region: &str, args: &[&str]| {
        bvstore_command(dir.path(), args)
            .env("BV_REGION", region)
            .output()
            .unwrap()
    };
    let o = run("IN", &["--json", "init"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["region"], "IN");
    let o = run("US", &["user", "list"]);
    assert_eq!(o.status.code(), Some(18), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("data region IN, not US"),
        "{}",
        stderr(&o)
    );
}

#[tokio::test]
async fn summaries_name_the_data_region() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path()).region("IN")).await.unwrap();
    let u = store
        .users()
        .create(bharatvoice_store::NewUser::new("meera", "meera@example.in"))
        .await
        .unwrap();
    let s = store.privacy().summary(u.id).await.unwrap();
    assert_eq!(s.data_region.as_deref(), Some("IN"));
    let unset = tempfile::tempdir().unwrap();
    let store = Store::open(config(unset.path())).await.unwrap();
    let u = store
        .users()
        .create(bharatvoice_store::NewUser::new("meera", "meera@example.in"))
        .await
        .unwrap();
    assert_eq!(
        store.privacy().summary(u.id).await.unwrap().data_region,
        None
    );
}
