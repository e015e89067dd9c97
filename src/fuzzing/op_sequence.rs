//! The `op_sequence` target: operations on a real store against a plain
//! in-memory model.
//!
//! The bytes are read as a script of at most [`MAX_OPS`] operations, each
//! an op code byte and small indexes into fixed pools (usernames, emails,
//! users made so far, sessions, files, payloads, cache keys and values),
//! so that short inputs mean something: create, update, delete and look up
//! users; start sessions, append turns and read the last one; put files
//! (the same bytes twice from one owner share one blob), read them as
//! anyone, delete, grant and revoke them; set, get, delete and increment
//! cache keys. After every operation the store's answer must be the
//! model's (the same value, or an error of the same kind); at the end every
//! listing must match the model and `verify` must find nothing, reference
//! counts included.
//!
//! With the `fault-injection` feature, one op code arms an I/O failure of
//! the next write, sync or `set_len` of `store.redb`. The operation whose
//! commit meets it must fail (an `Err`, never a panic); the store is then
//! closed and opened again without the fault, and what that one operation
//! did must be all or nothing: the model before it or after it.

mod harness;
mod model;

use harness::Harness;

/// Operations one input runs at most.
pub const MAX_OPS: usize = 64;

const NAMES: [&str; 4] = ["asha", "bala", "chitra", "dev"];
const EMAILS: [&str; 4] = ["a@x.in", "b@x.in", "c@x.in", "d@x.in"];
const TEXTS: [&str; 3] = ["नमस्ते", "வணக்கம்", "hello"];
const KEYS: [&str; 3] = ["k0", "k1", "user:7"];
const VALUES: [&str; 4] = ["5", "-12", "abc", "9223372036854775807"];

/// Payload `i` of the pool: 1 byte to 4 KiB, each distinct.
fn payload(i: usize) -> Vec<u8> {
    let len = [1usize, 100, 1000, 4096][i % 4];
    (0..len).map(|n| (n * 7 + i * 31) as u8).collect()
}

/// One decoded operation. Indexes are taken modulo their pool when run.
#[derive(Debug, Clone, Copy)]
enum Op {
    CreateUser {
        name: usize,
        email: usize,
    },
    UpdateUser {
        user: usize,
        email: usize,
        display: bool,
    },
    DeleteUser {
        user: usize,
    },
    GetUser {
        user: usize,
    },
    StartSession {
        user: usize,
    },
    AppendTurn {
        session: usize,
        text: usize,
    },
    LastTurn {
        session: usize,
    },
    PutFile {
        user: usize,
        payload: usize,
    },
    ReadFile {
        actor: usize,
        file: usize,
    },
    DeleteFile {
        actor: usize,
        file: usize,
    },
    Grant {
        actor: usize,
        file: usize,
        to: usize,
    },
    Revoke {
        actor: usize,
        file: usize,
        from: usize,
    },
    CacheSet {
        key: usize,
        value: usize,
    },
    CacheGet {
        key: usize,
    },
    CacheDelete {
        key: usize,
    },
    CacheIncr {
        key: usize,
        by: i8,
    },
    Fault {
        kind: u8,
    },
    Check,
}

/// Reads the script: an op code byte, then its arguments (missing bytes
/// read as zeros).
fn decode(data: &[u8]) -> Vec<Op> {
    let mut at = 0usize;
    let mut ops = Vec::new();
    while at < data.len() && ops.len() < MAX_OPS {
        let mut arg = || {
            let b = data.get(at).copied().unwrap_or(0);
            at += 1;
            usize::from(b)
        };
        let code = arg();
        let op = match code % 18 {
            0 => Op::CreateUser {
                name: arg(),
                email: arg(),
            },
            1 => {
                let (user, b) = (arg(), arg());
                Op::UpdateUser {
                    user,
                    email: b & 0x7f,
                    display: b & 0x80 != 0,
                }
            }
            2 => Op::DeleteUser { user: arg() },
            3 => Op::GetUser { user: arg() },
            4 => Op::StartSession { user: arg() },
            5 => Op::AppendTurn {
                session: arg(),
                text: arg(),
            },
            6 => Op::LastTurn { session: arg() },
            7 => Op::PutFile {
                user: arg(),
                payload: arg(),
            },
            8 => Op::ReadFile {
                actor: arg(),
                file: arg(),
            },
            9 => Op::DeleteFile {
                actor: arg(),
                file: arg(),
            },
            10 => Op::Grant {
                actor: arg(),
                file: arg(),
                to: arg(),
            },
            11 => Op::Revoke {
                actor: arg(),
                file: arg(),
                from: arg(),
            },
            12 => Op::CacheSet {
                key: arg(),
                value: arg(),
            },
            13 => Op::CacheGet { key: arg() },
            14 => Op::CacheDelete { key: arg() },
            15 => Op::CacheIncr {
                key: arg(),
                by: arg() as u8 as i8,
            },
            16 => Op::Fault { kind: arg() as u8 },
            _ => Op::Check,
        };
        ops.push(op);
    }
    ops
}

/// Runs the script `data` on a fresh store against the model (the fuzz
/// target's entry point); returns the number of operations run. Panics
/// (the fuzzer's signal) when the store and the model disagree.
pub fn op_sequence(data: &[u8]) -> usize {
    op_sequence_counted(data).0
}

/// [`op_sequence`], also returning how many armed failures were met.
pub fn op_sequence_counted(data: &[u8]) -> (usize, usize) {
    let ops = decode(data);
    let mut harness = Harness::new();
    for op in &ops {
        harness.run(*op);
    }
    harness.finish();
    (ops.len(), harness.met)
}

/// Hand-written scripts of every operation, refusal and armed failure, for
/// the seed corpus (`seed-<name>`) and the replay tests.
pub fn sample_op_sequences() -> Vec<(&'static str, Vec<u8>)> {
    let scripts: [(&'static str, &[u8]); 24] = [
        ("empty", &[]),
        (
            "users",
            &[
                0, 0, 0, 0, 1, 1, 0, 0, 2, 0, 2, 1, 3, 0, 3, 1, 1, 0, 0x82, 3, 0, 2, 1, 3, 1, 0, 1,
                3, 17,
            ],
        ),
        (
            "update_conflict",
            &[0, 0, 0, 0, 1, 1, 1, 0, 1, 1, 0, 0x83, 1, 1, 1, 17],
        ),
        (
            "sessions",
            &[
                0, 0, 0, 4, 0, 5, 0, 0, 5, 0, 1, 6, 0, 4, 0, 5, 1, 2, 6, 1, 17,
            ],
        ),
        (
            "session_of_deleted_user",
            &[0, 0, 0, 4, 0, 2, 0, 4, 0, 5, 0, 1, 6, 0, 17],
        ),
        (
            "files_dedup",
            &[0, 0, 0, 7, 0, 1, 7, 0, 1, 7, 0, 2, 8, 1, 0, 8, 0, 1, 17],
        ),
        (
            "files_two_owners",
            &[0, 0, 0, 0, 1, 1, 7, 0, 3, 7, 1, 3, 8, 0, 1, 8, 1, 1, 17],
        ),
        (
            "grant_read_revoke",
            &[
                0, 0, 0, 0, 1, 1, 7, 0, 0, 8, 1, 0, 10, 1, 0, 1, 8, 1, 0, 9, 4, 0, 11, 4, 0, 1, 11,
                1, 0, 1, 8, 1, 0, 17,
            ],
        ),
        ("grant_to_owner", &[0, 0, 0, 7, 0, 0, 10, 1, 0, 0, 17]),
        (
            "grant_to_deleted",
            &[0, 0, 0, 0, 1, 1, 7, 0, 0, 2, 1, 10, 1, 0, 1, 8, 1, 0, 17],
        ),
        (
            "delete_file",
            &[
                0, 0, 0, 7, 0, 1, 7, 0, 1, 9, 1, 0, 8, 0, 0, 8, 0, 1, 9, 1, 0, 17,
            ],
        ),
        (
            "deleted_owner",
            &[0, 0, 0, 7, 0, 1, 2, 0, 7, 0, 1, 8, 0, 0, 9, 1, 0, 17],
        ),
        (
            "cache",
            &[
                12, 0, 0, 13, 0, 15, 0, 3, 13, 0, 12, 1, 2, 15, 1, 1, 14, 1, 14, 1, 15, 2, 0xff,
                12, 0, 3, 15, 0, 1, 13, 0, 17,
            ],
        ),
        ("fault_create_user", &[16, 0, 0, 0, 0, 3, 0, 17]),
        ("fault_put", &[0, 0, 0, 16, 1, 7, 0, 2, 7, 0, 2, 17]),
        (
            "fault_short_write_turn",
            &[0, 0, 0, 4, 0, 16, 2, 5, 0, 0, 6, 0, 17],
        ),
        (
            "fault_grant",
            &[0, 0, 0, 0, 1, 1, 7, 0, 0, 16, 0, 10, 1, 0, 1, 8, 1, 0, 17],
        ),
        ("fault_delete_user", &[0, 0, 0, 16, 1, 2, 0, 3, 0, 17]),
        (
            "fault_refusal",
            &[0, 0, 0, 0, 1, 1, 7, 0, 0, 16, 0, 8, 1, 0, 0, 2, 2, 17],
        ),
        ("fault_update", &[0, 0, 0, 16, 2, 1, 0, 0x81, 3, 0, 17]),
        ("fault_dedup_put", &[0, 0, 0, 7, 0, 3, 16, 0, 7, 0, 3, 17]),
        ("fault_session", &[0, 0, 0, 16, 0, 4, 0, 17]),
        ("fault_delete_file", &[0, 0, 0, 7, 0, 0, 16, 1, 9, 1, 0, 17]),
        (
            "fault_each_kind",
            &[
                16, 0, 0, 0, 0, 16, 1, 0, 1, 1, 16, 2, 7, 0, 0, 12, 0, 0, 16, 0, 15, 0, 2, 11, 1,
                0, 0, 17,
            ],
        ),
    ];
    scripts
        .into_iter()
        .map(|(name, bytes)| (name, bytes.to_vec()))
        .collect()
}
