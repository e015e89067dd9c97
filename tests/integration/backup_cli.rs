//! `bvstore backup`, `backups` and `restore`, run as a user would: a
//! store with its embedded key backed up twice, listed, and restored
//! into a new directory with the key file, where the file reads back.

use crate::blob_cli::{add_user, json, put_file};
use crate::common::{bvstore, stderr, stdout};

#[test]
fn backup_list_and_restore_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    crate::common::init(&d);
    add_user(&d, "mira");
    let input = dir.path().join("clip.wav");
    let clip = b"RIFF a clip to back up ".repeat(50);
    std::fs::write(&input, &clip).unwrap();
    let id = put_file(&d, &input, "mira", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dest = dir.path().join("backups");
    let dest_s = dest.to_str().unwrap();

    let first = json(&bvstore(&d, &["--json", "backup", dest_s]));
    assert_eq!(first["generation"], 1);
    assert_eq!(first["blobs"], 1);
    let text = bvstore(&d, &["backup", dest_s, "--keep", "2"]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = stdout(&text);
    assert!(
        text.contains("generation 2") && text.contains("skipped"),
        "{text}"
    );

    let listed = json(&bvstore(&d, &["--json", "backups", dest_s]));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[1]["generation"], 2);

    // Without the key the new directory has none: refused, exit 9.
    let new = dir.path().join("restored");
    let no_key = bvstore(&new, &["restore", dest_s]);
    assert_eq!(no_key.status.code(), Some(9), "{}", stderr(&no_key));
    let key = d.join("master.key");
    let restored = json(&bvstore(
        &new,
        &[
            "--json",
            "restore",
            dest_s,
            "--generation",
            "1",
            "--key-file",
            key.to_str().unwrap(),
        ],
    ));
    assert_eq!(restored["generation"], 1);
    assert_eq!(
        std::fs::read(new.join("master.key")).unwrap(),
        std::fs::read(&key).unwrap()
    );
    let out = dir.path().join("back.wav");
    let got = bvstore(
        &new,
        &[
            "file",
            "get",
            &id,
            "--user",
            "mira",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(got.status.success(), "{}", stderr(&got));
    assert_eq!(std::fs::read(&out).unwrap(), clip);
    let verified = json(&bvstore(&new, &["--json", "verify", "--deep"]));
    assert_eq!(verified["blobs_read"], 1);
    assert_eq!(verified["problems"].as_array().unwrap().len(), 0);

    // A lost blob file: verify exits 8 naming it; --repair marks it.
    let blob = crate::common::blob_file_by_hex(&new, &restored_blob(&new, &id));
    std::fs::remove_file(&blob).unwrap();
    let found = bvstore(&new, &["verify"]);
    assert_eq!(found.status.code(), Some(8), "{}", stderr(&found));
    assert!(
        stdout(&found).contains("missing_blob_file"),
        "{}",
        stdout(&found)
    );
    let repaired = bvstore(&new, &["--json", "verify", "--repair"]);
    assert!(repaired.status.success(), "{}", stderr(&repaired));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&repaired)).unwrap();
    assert_eq!(doc["problems"][0]["repaired"], true);

    // Again into the same directory: refused (exit 5) unless --force,
    // which brings the lost blob back.
    let again = bvstore(&new, &["restore", dest_s]);
    assert_eq!(again.status.code(), Some(5), "{}", stderr(&again));
    let forced = bvstore(&new, &["restore", dest_s, "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(stdout(&forced).contains("every file checked"));
    assert!(blob.exists());
}

/// The blob address of a file, from `file ls --json` in `dir`.
fn restored_blob(dir: &std::path::Path, id: &str) -> String {
    let listed = json(&bvstore(dir, &["--json", "file", "ls", "--user", "mira"]));
    let items = listed["items"].as_array().cloned().unwrap_or_default();
    let f = items
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("{id} not listed: {listed}"));
    f["blob"].as_str().unwrap().to_string()
}
