//! `bvstore user passwd` and `bvstore user check-password`: the password
//! comes from stdin; a check exits 0 on a match and 1 otherwise.

use crate::blob_cli::{add_user, json};
use crate::common::{bvstore_stdin, stdout};

#[test]
fn a_password_set_from_stdin_is_checked_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    crate::common::init(&d);
    add_user(&d, "mira");

    let check = |pw: &str| bvstore_stdin(&d, &["user", "check-password", "mira"], Some(pw));
    let none = check("anything at all\n");
    assert_eq!(none.status.code(), Some(1));
    assert!(
        stdout(&none).contains("has no password"),
        "{}",
        stdout(&none)
    );

    let set = bvstore_stdin(
        &d,
        &["--json", "user", "passwd", "mira"],
        Some("correct horse battery\n"),
    );
    let set = json(&set);
    assert_eq!(set["replaced"], false);
    let ok = check("correct horse battery\n");
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("matches"));
    let wrong = check("correct horse staple\n");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(stdout(&wrong).contains("does not match"));

    let again = bvstore_stdin(&d, &["user", "passwd", "mira"], Some("a new long secret\n"));
    assert!(again.status.success());
    assert!(stdout(&again).contains("replaced"), "{}", stdout(&again));
    assert_eq!(check("correct horse battery\n").status.code(), Some(1));
    let json_check = json(&bvstore_stdin(
        &d,
        &["--json", "user", "check-password", "mira"],
        Some("a new long secret\n"),
    ));
    assert_eq!(json_check["matches"], true);

    // Too short: refused as invalid input (exit 5), nothing changed.
    let short = bvstore_stdin(&d, &["user", "passwd", "mira"], Some("short\n"));
    assert_eq!(short.status.code(), Some(5));
    assert_eq!(check("a new long secret\n").status.code(), Some(0));
}
