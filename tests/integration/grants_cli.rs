//! `bvstore file grants` lists who may read a file; a revoke of a grant
//! that does not exist says it changed nothing.

use crate::blob_cli::{add_user, json, put_file};
use crate::common::{bvstore, stdout};

#[test]
fn grants_are_listed_and_a_revoke_of_nothing_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    crate::common::init(&d);
    add_user(&d, "mira");
    let nikhil = add_user(&d, "nikhil");
    add_user(&d, "ravi");
    let input = dir.path().join("clip.wav");
    std::fs::write(&input, b"RIFF a short clip").unwrap();
    let id = put_file(&d, &input, "mira", &[])["id"]
        .as_str()
        .unwrap()
        .to_string();

    let none = stdout(&bvstore(&d, &["file", "grants", &id, "--user", "mira"]));
    assert!(none.contains("granted to no one"), "{none}");
    json(&bvstore(
        &d,
        &[
            "--json", "file", "grant", &id, "--user", "mira", "--to", "nikhil",
        ],
    ));
    let listed = json(&bvstore(
        &d,
        &["--json", "file", "grants", &id, "--user", "mira"],
    ));
    assert_eq!(listed[0]["user"], nikhil.as_str());
    assert_eq!(listed[0]["username"], "nikhil");
    let text = stdout(&bvstore(&d, &["file", "grants", &id, "--user", "mira"]));
    assert!(text.contains("nikhil"), "{text}");
    // Only the owner asks: a grantee may not, a stranger does not see it.
    let grantee = bvstore(&d, &["file", "grants", &id, "--user", "nikhil"]);
    assert_eq!(grantee.status.code(), Some(10));
    let stranger = bvstore(&d, &["file", "grants", &id, "--user", "ravi"]);
    assert_eq!(stranger.status.code(), Some(3));

    let revoked = json(&bvstore(
        &d,
        &[
            "--json", "file", "revoke", &id, "--user", "mira", "--from", "nikhil",
        ],
    ));
    assert_eq!(revoked["changed"], true);
    let again = bvstore(
        &d,
        &["file", "revoke", &id, "--user", "mira", "--from", "nikhil"],
    );
    assert!(again.status.success());
    assert!(
        stdout(&again).contains("nothing changed"),
        "{}",
        stdout(&again)
    );
    let empty = json(&bvstore(
        &d,
        &["--json", "file", "grants", &id, "--user", "mira"],
    ));
    assert_eq!(empty.as_array().unwrap().len(), 0);
}
