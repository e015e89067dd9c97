//! The admin socket: a store held by this process answers `bvstore`
//! commands run in another one; commands that write data are refused.

use bharatvoice_store::{AdminClient, AdminRequest, Error, NewUser, SCHEMA_VERSION, Store};

use crate::common::{bvstore, config, stderr, stdout};

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

/// Runs `bvstore` off the runtime's threads: the store in this process
/// must keep serving while the child waits for it.
async fn run(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        bvstore(&dir, &args)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operator_command_reaches_a_store_another_process_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    let socket = store
        .admin_socket()
        .expect("the admin socket serves by default");
    {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let meta = std::fs::symlink_metadata(&socket).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let asha = store
        .users()
        .create(NewUser::new("asha", "asha@example.in"))
        .await
        .unwrap();
    store.cache().set("greeting", "namaste").await.unwrap();
    assert!(store.users().get(asha.id).is_ok());
    store.flush().await.unwrap();
    let d = dir.path();

    let health = json(&run(d, &["--json", "health"]).await);
    assert_eq!(health["status"], "healthy", "{health}");
    let stats = json(&run(d, &["--json", "stats"]).await);
    assert_eq!(stats["users"], 1, "{stats}");
    let metrics = json(&run(d, &["--json", "metrics"]).await);
    assert!(metrics["snapshot"].is_null(), "{metrics}");
    let ops = metrics["now"]["operations"].as_array().unwrap();
    let create = ops
        .iter()
        .find(|o| o["op"] == "users.create")
        .expect("users.create counted");
    assert_eq!(create["calls"], 1);
    assert!(create["p99_us"].as_f64().unwrap() > 0.0);
    let cache = json(&run(d, &["--json", "cache", "stats"]).await);
    assert_eq!(cache["inserts"], 1, "{cache}");
    let jobs = json(&run(d, &["--json", "jobs"]).await);
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .any(|j| j["name"] == "metrics-snapshot"),
        "{jobs}"
    );
    let audit = json(&run(d, &["--json", "audit", "tail"]).await);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "user.create"),
        "{audit}"
    );
    let migrate = json(&run(d, &["--json", "migrate", "status"]).await);
    assert_eq!(migrate["applied"], SCHEMA_VERSION, "{migrate}");
    assert_eq!(migrate["latest"], SCHEMA_VERSION, "{migrate}");
    assert_eq!(migrate["pending"], serde_json::json!([]), "{migrate}");
    let live_migrate = migrate;
    let live_metrics = metrics;
    let verify = json(&run(d, &["--json", "verify", "--deep"]).await);
    assert_eq!(
        verify["problems"].as_array().map(Vec::len),
        Some(0),
        "{verify}"
    );
    assert_eq!(verify["users"], 1);
    let backups = tempfile::tempdir().unwrap();
    let dest = backups.path().join("b");
    let backup = json(&run(d, &["--json", "backup", dest.to_str().unwrap()]).await);
    assert_eq!(backup["generation"], 1, "{backup}");
    assert!(dest.join("generations").exists());
    let gc = json(&run(d, &["--json", "gc", "--dry-run"]).await);
    assert!(
        gc.as_array().unwrap().iter().all(|r| r["dry_run"] == true),
        "{gc}"
    );

    // The human form says where the answer came from.
    let out = run(d, &["health"]).await;
    assert!(out.status.success());
    assert!(stderr(&out).contains("admin socket") || stderr(&out).contains("admin.sock"));
    assert!(stdout(&out).contains("store: healthy"), "{}", stdout(&out));
    // ... and prints as the local command would, not as raw fields.
    let text = |args: &'static [&'static str]| async move {
        let out = run(d, args).await;
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let health = text(&["health"]).await;
    assert!(
        health.lines().nth(1).unwrap().starts_with("PART"),
        "{health}"
    );
    let stats = text(&["stats"]).await;
    assert!(stats.starts_with("users "), "{stats}");
    assert!(!stats.contains("by_content_type"), "{stats}");
    let audit = text(&["audit", "tail"]).await;
    assert!(audit.starts_with("SEQ  TIME"), "{audit}");
    assert!(audit.contains("user.create"), "{audit}");
    let cache = text(&["cache", "stats"]).await;
    assert!(cache.starts_with("lookups "), "{cache}");
    let verify = text(&["verify"]).await;
    assert!(verify.starts_with("checked 1 users"), "{verify}");
    let dest2 = backups.path().join("c");
    let backup = run(d, &["backup", dest2.to_str().unwrap()]).await;
    assert!(
        stdout(&backup).starts_with("generation 1 written to"),
        "{}",
        stdout(&backup)
    );

    // Writes are not served: the lock's error, exit 6.
    let add = run(
        d,
        &[
            "user",
            "add",
            "--username",
            "ravi",
            "--email",
            "ravi@example.in",
        ],
    )
    .await;
    assert_eq!(add.status.code(), Some(6), "{}", stderr(&add));
    assert!(store.users().get_by_username("ravi").is_err());
    let repair = run(d, &["verify", "--repair"]).await;
    assert_eq!(repair.status.code(), Some(6), "{}", stderr(&repair));
    // A refusal in the serving process keeps its kind and exit code: a
    // destination that holds other things is invalid input (5) there as
    // here.
    let cluttered = backups.path().join("cluttered");
    std::fs::create_dir(&cluttered).unwrap();
    std::fs::write(cluttered.join("notes.txt"), b"mine").unwrap();
    let refused = run(d, &["--json", "backup", cluttered.to_str().unwrap()]).await;
    assert_eq!(refused.status.code(), Some(5), "{}", stderr(&refused));
    let err: serde_json::Value =
        serde_json::from_str(stderr(&refused).trim().lines().last().unwrap()).unwrap();
    assert_eq!(
        (err["kind"].as_str(), err["code"].as_u64()),
        (Some("invalid_input"), Some(5)),
        "{err}"
    );

    // Closing removes the socket; the commands then open the store.
    store.close().await;
    drop(store);
    assert!(!socket.exists());
    let stats = json(&run(d, &["--json", "stats"]).await);
    assert_eq!(stats["users"], 1);
    // ... with the same JSON shape as the running store gave.
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let migrate = json(&run(d, &["--json", "migrate", "status"]).await);
    assert_eq!(
        keys(&migrate),
        keys(&live_migrate),
        "{migrate} / {live_migrate}"
    );
    let metrics = json(&run(d, &["--json", "metrics"]).await);
    assert_eq!(keys(&metrics), keys(&live_metrics), "{metrics}");
    assert_eq!(
        keys(&metrics["now"]),
        keys(&live_metrics["now"]),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_errors_and_a_stale_socket_is_replaced() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    // A socket left by a process that died: bound, never removed.
    let path = dir.path().join("admin.sock");
    std::fs::create_dir_all(dir.path()).unwrap();
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(store.admin_socket().as_deref(), Some(path.as_path()));
    let client = AdminClient::new(dir.path());
    let health = client.request(&AdminRequest::Health).await.unwrap();
    assert_eq!(health["status"], "healthy");
    let relative = AdminRequest::Backup {
        dest: "relative/dir".into(),
        keep: None,
        no_links: false,
        allow_region_change: false,
    };
    match client.request(&relative).await {
        Err(Error::Remote { kind, .. }) => assert_eq!(kind, "invalid_input"),
        other => panic!("{other:?}"),
    }
    for junk in [
        &b"{\"op\":\"user_add\"}\n"[..],
        b"not json\n",
        &[b'x'; 70_000],
    ] {
        let mut s = tokio::net::UnixStream::connect(&path).await.unwrap();
        s.write_all(junk).await.unwrap();
        let _ = s.shutdown().await;
        let mut answer = String::new();
        match s.read_to_string(&mut answer).await {
            Ok(_) => {
                let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
                assert_eq!(v["error"]["kind"], "invalid_input", "{answer}");
            }
            // Past the limit the server answers and closes with the rest
            // unread, which the kernel may report as a reset.
            Err(e) if junk.len() > 65_536 => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset)
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Still serving after the junk.
    assert!(client.request(&AdminRequest::Stats).await.is_ok());
    store.close().await;
}

#[tokio::test]
async fn a_file_where_the_socket_goes_is_left_alone_and_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path().join("admin.sock"), b"mine").unwrap();
    let store = Store::open(config(dir.path())).await.unwrap();
    assert_eq!(store.admin_socket(), None);
    assert_eq!(
        std::fs::read(dir.path().join("admin.sock")).unwrap(),
        b"mine"
    );
    store.close().await;
    let other = tempfile::tempdir().unwrap();
    let off = Store::open(config(other.path()).admin_socket(false))
        .await
        .unwrap();
    assert_eq!(off.admin_socket(), None);
    assert!(!other.path().join("admin.sock").exists());
    off.close().await;
}

/// Whatever listens on the socket, a client reads a bounded answer: an
/// endless line is refused as corrupt, a closed connection is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reads_a_bounded_answer_from_whatever_listens() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::UnixListener::bind(dir.path().join("admin.sock")).unwrap();
    let server = tokio::spawn(async move {
        // First an answer that never ends, then none at all.
        for endless in [true, false] {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 64];
            let _ = s.read(&mut request).await.unwrap();
            if endless {
                let chunk = vec![b'7'; 1 << 20];
                while s.write_all(&chunk).await.is_ok() {}
            }
        }
    });
    let client = AdminClient::new(dir.path());
    match client.request(&AdminRequest::Health).await {
        Err(Error::Corrupt { detail, .. }) => {
            assert!(detail.contains("longer than 16777216 bytes"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    match client.request(&AdminRequest::Health).await {
        Err(Error::Corrupt { detail, .. }) => {
            assert!(detail.contains("without an answer"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    server.await.unwrap();
}
