//! What a person reads from `bvstore`: listings are aligned tables with a
//! header row, sizes are in binary units and times in the local zone
//! (`TZ`), while `--json` keeps exact bytes and RFC 3339 UTC instants.

use std::path::Path;

use crate::blob_cli::{add_user, json, put_file};
use crate::common::{bvstore, bvstore_command, stderr};

/// India's zone as a POSIX rule: no time zone database needed.
const TZ: &str = "IST-5:30";

/// `bvstore ARGS` in the test zone; its stdout, which must be a success.
fn text(d: &Path, args: &[&str]) -> String {
    let o = bvstore_command(d, args)
        .env("TZ", TZ)
        .env_remove("RUST_LOG")
        .output()
        .expect("run bvstore");
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    String::from_utf8(o.stdout).expect("UTF-8 output")
}

/// An RFC 3339 instant as the CLI shows it in the test zone.
fn local(rfc3339: &str) -> String {
    let t: jiff::Timestamp = rfc3339.parse().unwrap();
    let zone = jiff::tz::TimeZone::posix(TZ).unwrap();
    t.to_zoned(zone)
        .strftime("%Y-%m-%d %H:%M:%S IST")
        .to_string()
}

/// The table's header line and rows (the lines before any `more:`).
fn table(out: &str) -> (String, Vec<String>) {
    let mut lines = out.lines().take_while(|l| !l.starts_with("more:"));
    let header = lines.next().expect("a header line").to_string();
    (header, lines.map(str::to_string).collect())
}

/// Asserts `cell` starts in `row` where `column` starts in `header`
/// (a left-aligned column; the test's text is ASCII).
fn starts_under(header: &str, column: &str, row: &str, cell: &str) {
    let at = header
        .find(column)
        .unwrap_or_else(|| panic!("no {column} in {header:?}"));
    assert_eq!(
        row.find(cell),
        Some(at),
        "{cell:?} not under {column}:\n{header}\n{row}"
    );
}

/// Asserts `cell` ends in `row` where `column` ends in `header` (a
/// right-aligned column).
fn ends_under(header: &str, column: &str, row: &str, cell: &str) {
    let end = header.find(column).unwrap() + column.len();
    let at = row
        .find(cell)
        .unwrap_or_else(|| panic!("no {cell:?} in {row:?}"));
    assert_eq!(
        at + cell.len(),
        end,
        "{cell:?} not under {column}:\n{header}\n{row}"
    );
}

#[test]
fn listings_are_aligned_tables_with_local_times_and_binary_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    crate::common::init(&d);
    add_user(&d, "asha");
    add_user(&d, "bhaskar_with_a_long_name");

    // user list: a header, then rows whose cells sit under it.
    let users = json(&bvstore(&d, &["--json", "user", "list"]));
    let (header, rows) = table(&text(&d, &["user", "list"]));
    for column in ["ID", "USERNAME", "EMAIL", "STATUS", "CREATED"] {
        assert!(header.contains(column), "{header}");
    }
    assert_eq!(rows.len(), 2, "{rows:?}");
    for item in users["items"].as_array().unwrap() {
        let name = item["username"].as_str().unwrap();
        let row = rows.iter().find(|r| r.contains(name)).unwrap();
        starts_under(&header, "USERNAME", row, name);
        starts_under(&header, "EMAIL", row, item["email"].as_str().unwrap());
        starts_under(&header, "STATUS", row, "active");
        let created = item["created_at"].as_str().unwrap();
        assert!(created.ends_with('Z'), "JSON keeps UTC: {created}");
        starts_under(&header, "CREATED", row, &local(created));
    }

    // file ls: sizes in KiB, right-aligned under SIZE.
    let input = dir.path().join("clip.wav");
    std::fs::write(&input, vec![7u8; 3000]).unwrap();
    let rec = put_file(&d, &input, "asha", &["--name", "clip.wav"]);
    assert_eq!(rec["plain_bytes"], 3000, "JSON keeps bytes: {rec}");
    let (header, rows) = table(&text(&d, &["file", "ls", "--user", "asha"]));
    assert_eq!(rows.len(), 1, "{rows:?}");
    ends_under(&header, "SIZE", &rows[0], "2.9 KiB");
    starts_under(&header, "NAME", &rows[0], "clip.wav");
    starts_under(
        &header,
        "CREATED",
        &rows[0],
        &local(rec["created_at"].as_str().unwrap()),
    );

    // file put prints the record one field a line.
    let put = text(&d, &["file", "put", input.to_str().unwrap(), "-u", "asha"]);
    assert!(put.lines().any(|l| l == "size:     2.9 KiB"), "{put}");

    // audit tail, jobs, backups, stats: the same shape.
    let (header, rows) = table(&text(&d, &["audit", "tail", "-n", "3"]));
    assert!(header.starts_with("SEQ  TIME"), "{header}");
    assert!(rows.iter().all(|r| r.contains(" IST  ")), "{rows:?}");
    let (header, rows) = table(&text(&d, &["jobs"]));
    assert!(header.starts_with("JOB"), "{header}");
    let rotation = rows.iter().find(|r| r.starts_with("key-rotation")).unwrap();
    ends_under(&header, "EVERY", rotation, "1 h");
    let dest = dir.path().join("backups");
    text(&d, &["backup", dest.to_str().unwrap()]);
    let (header, rows) = table(&text(&d, &["backups", dest.to_str().unwrap()]));
    assert!(
        header.contains("GENERATION") && header.contains("TAKEN"),
        "{header}"
    );
    ends_under(&header, "GENERATION", &rows[0], "1");
    assert!(rows[0].contains(" IST "), "{rows:?}");
    let stats = text(&d, &["stats"]);
    let types = stats
        .lines()
        .position(|l| l.starts_with("CONTENT TYPE"))
        .unwrap_or_else(|| panic!("{stats}"));
    let header = stats.lines().nth(types).unwrap();
    let row = stats.lines().nth(types + 1).unwrap();
    starts_under(header, "CONTENT TYPE", row, "audio/wav");
    ends_under(header, "FILES", row, "2");
}
