//! Shared fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bharatvoice_store::{Config, NewUser, Store, StoreVerifyReport, User, VerifyOptions};

/// A store in a temporary directory, with cheap password hashing.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

pub fn config(dir: &Path) -> Config {
    Config::new(dir).password_cost(8, 1)
}

pub async fn open_store() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(config(dir.path())).await.expect("open store");
    TestStore { dir, store }
}

impl TestStore {
    pub async fn user(&self, name: &str) -> User {
        self.store
            .users()
            .create(
                NewUser::new(name, format!("{name}@example.in"))
                    .consent(bharatvoice_store::ConsentKind::AudioStorage),
            )
            .await
            .expect("create user")
    }

    /// A user who has given no consent (and so has no profile yet).
    pub async fn bare_user(&self, name: &str) -> User {
        self.store
            .users()
            .create(NewUser::new(name, format!("{name}@example.in")))
            .await
            .expect("create user")
    }

    /// Stores `bytes` for `user`, as the user, with `options`.
    pub async fn put_as(
        &self,
        user: &User,
        bytes: &[u8],
        options: bharatvoice_store::PutOptions,
    ) -> bharatvoice_store::AudioFile {
        let me = bharatvoice_store::Actor::User(user.id);
        self.store
            .files()
            .put_bytes(me, user.id, bytes, options)
            .await
            .expect("put")
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// Where a stored file's blob lives under a data directory.
pub fn blob_file(data_dir: &Path, f: &bharatvoice_store::AudioFile) -> PathBuf {
    blob_file_by_hex(data_dir, &f.blob.to_string())
}

/// Where the blob with this hex address lives under a data directory.
pub fn blob_file_by_hex(data_dir: &Path, hex: &str) -> PathBuf {
    data_dir
        .join("blobs")
        .join(&hex[0..2])
        .join(&hex[2..4])
        .join(hex)
}

/// Runs the built `bvstore` with `--data-dir dir` and the given arguments.
pub fn bvstore(dir: &Path, args: &[&str]) -> Output {
    bvstore_stdin(dir, args, None)
}

/// The built `bvstore` with `--data-dir dir`, the arguments and cheap
/// password hashing, not started (for tests that signal it).
pub fn bvstore_command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bvstore"));
    cmd.arg("--data-dir").arg(dir).args(args);
    cmd.env_remove("BV_DATA_DIR")
        .env_remove("BV_CONFIG")
        .env("BV_PASSWORD_MEMORY_KIB", "8")
        .env("BV_PASSWORD_ITERATIONS", "1");
    cmd
}

pub fn bvstore_stdin(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = bvstore_command(dir, args);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("run bvstore");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("bvstore output")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A temporary data directory holding a new store (`bvstore init`): every
/// command but `init` and `demo` refuses a directory without one.
pub fn store_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    init(dir.path());
    dir
}

/// Runs `bvstore init` in `dir`.
pub fn init(dir: &Path) {
    let out = bvstore(dir, &["init"]);
    assert!(out.status.success(), "init: {}", stderr(&out));
}

/// Runs `verify --deep` (every blob read and authenticated) and fails the
/// test, naming `context`, unless it finds nothing.
pub async fn assert_verifies_deep(store: &Store, context: &str) -> StoreVerifyReport {
    let report = store
        .verify(VerifyOptions {
            deep: true,
            ..VerifyOptions::default()
        })
        .await
        .unwrap_or_else(|e| panic!("{context}: verify: {e}"));
    assert!(report.is_clean(), "{context}: {:?}", report.problems);
    report
}

/// `len` bytes of xorshift noise from `seed`: nothing compresses them.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
