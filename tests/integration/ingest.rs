//! Watched-folder ingest: real files written into a temporary folder,
//! taken by an `Ingestor` and read back from the store (`bvstore watch`
//! is in `ingest_cli`). Waits poll with a deadline; nothing asserts how
//! long a step took.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bharatvoice_store::{
    Actor, AudioFile, Error, IngestConfig, IngestStats, Ingestor, ListFilter, ListOptions, Store,
    UserId,
};

use crate::common::{TestStore, config, open_store};

/// Small stability time: the tests' files are written at once.
fn fast() -> IngestConfig {
    IngestConfig::default().stable_for(Duration::from_millis(150))
}

/// Waits up to 10 s for `cond`, checking every 20 ms.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Distinct bytes for each test file.
pub(crate) fn audio(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// The names in `dir`, sorted.
pub(crate) fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A store with one user, and an empty folder to ingest from.
struct Inbox {
    t: TestStore,
    user: UserId,
    dir: tempfile::TempDir,
}

impl Inbox {
    async fn new(username: &str) -> Inbox {
        let t = open_store().await;
        let user = t.user(username).await.id;
        let dir = tempfile::tempdir().expect("tempdir");
        Inbox { t, user, dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.dir.path().join(name.as_ref())
    }

    async fn start(&self, config: IngestConfig) -> Ingestor {
        Ingestor::start(self.t.store.clone(), self.path(), self.user, config)
            .await
            .expect("start the ingestor")
    }

    async fn once(&self) -> IngestStats {
        Ingestor::run_once(&self.t.store, self.path(), self.user, fast())
            .await
            .expect("one pass")
    }

    async fn files(&self) -> Vec<AudioFile> {
        files_of(&self.t.store, self.user).await
    }

    /// The user's one stored file and its bytes.
    async fn only_file(&self) -> (AudioFile, Vec<u8>) {
        let mut files = self.files().await;
        assert_eq!(files.len(), 1, "{files:?}");
        let f = files.remove(0);
        let bytes = bytes_of(&self.t.store, self.user, &f).await;
        (f, bytes)
    }
}

async fn files_of(store: &Store, user: UserId) -> Vec<AudioFile> {
    let me = Actor::User(user);
    let page = store
        .files()
        .list(me, user, ListFilter::default(), ListOptions::first(1000))
        .await
        .expect("list files");
    page.items
}

async fn bytes_of(store: &Store, user: UserId, f: &AudioFile) -> Vec<u8> {
    store
        .files()
        .read(Actor::User(user), f.id)
        .await
        .expect("read back")
}

#[tokio::test]
async fn a_file_that_appears_is_stored_with_its_type_and_bytes_then_removed() {
    let inbox = Inbox::new("asha").await;
    let ingestor = inbox.start(fast()).await;
    let pcm = audio(1, 300_000);
    let path = inbox.file("namaste.wav");
    std::fs::write(&path, &pcm).unwrap();
    wait_for("the file to be taken", || !path.exists()).await;
    let stats = ingestor.stop().await.unwrap();
    assert_eq!(
        (stats.stored, stats.already_stored, stats.failed),
        (1, 0, 0)
    );
    let (f, bytes) = inbox.only_file().await;
    assert_eq!(f.name.as_deref(), Some("namaste.wav"));
    assert_eq!(f.content_type, "audio/wav");
    assert!(
        f.tags.iter().any(|t| t.starts_with("ingest:")),
        "{:?}",
        f.tags
    );
    assert_eq!(bytes, pcm);
    assert!(names_in(inbox.path()).is_empty());
}

#[tokio::test]
async fn content_types_come_from_the_extension() {
    let inbox = Inbox::new("ravi").await;
    let cases = [
        ("a.wav", "audio/wav"),
        ("b.opus", "audio/opus"),
        ("c.ogg", "audio/ogg"),
        ("d.mp3", "audio/mpeg"),
        ("e.flac", "audio/flac"),
        ("f.m4a", "audio/mp4"),
        ("g.webm", "audio/webm"),
        ("h.WAV", "audio/wav"),
        ("notes.txt", "application/octet-stream"),
        ("no_extension", "application/octet-stream"),
    ];
    for (i, (name, _)) in cases.iter().enumerate() {
        std::fs::write(inbox.file(name), audio(i as u8, 1000 + i)).unwrap();
    }
    assert_eq!(inbox.once().await.stored, cases.len() as u64);
    let files = inbox.files().await;
    for (i, (name, content_type)) in cases.iter().enumerate() {
        let f = files
            .iter()
            .find(|f| f.name.as_deref() == Some(*name))
            .unwrap_or_else(|| panic!("{name} not stored"));
        assert_eq!(f.content_type, *content_type, "{name}");
        let bytes = bytes_of(&inbox.t.store, inbox.user, f).await;
        assert_eq!(bytes, audio(i as u8, 1000 + i), "{name}");
    }
    assert!(names_in(inbox.path()).is_empty());
}

#[tokio::test]
async fn hidden_staged_linked_and_nested_files_stay_untouched() {
    let inbox = Inbox::new("meena").await;
    let outside = tempfile::tempdir().unwrap();
    let left_alone = [".hidden.wav", "a.wav.part", "b.tmp", "c.CRDOWNLOAD"];
    for name in left_alone {
        std::fs::write(inbox.file(name), b"not yet").unwrap();
    }
    let target = outside.path().join("secret.wav");
    std::fs::write(&target, b"outside the folder").unwrap();
    std::os::unix::fs::symlink(&target, inbox.file("link.wav")).unwrap();
    std::fs::create_dir(inbox.file("sub")).unwrap();
    std::fs::write(inbox.file("sub").join("inner.wav"), b"nested").unwrap();
    std::fs::write(inbox.file("ok.wav"), b"taken").unwrap();

    let stats = inbox.once().await;
    assert_eq!((stats.stored, stats.failed), (1, 0));
    assert_eq!(inbox.only_file().await.0.name.as_deref(), Some("ok.wav"));
    for name in left_alone {
        assert_eq!(
            std::fs::read(inbox.file(name)).unwrap(),
            b"not yet",
            "{name}"
        );
    }
    let link = std::fs::symlink_metadata(inbox.file("link.wav")).unwrap();
    assert!(link.is_symlink());
    assert_eq!(std::fs::read(&target).unwrap(), b"outside the folder");
    assert_eq!(
        std::fs::read(inbox.file("sub/inner.wav")).unwrap(),
        b"nested"
    );
    assert!(!inbox.file("failed").exists());
}

#[tokio::test]
async fn a_staged_file_is_taken_after_its_rename() {
    let inbox = Inbox::new("kiran").await;
    let ingestor = inbox.start(fast()).await;
    let (staged, done) = (inbox.file("take.opus.part"), inbox.file("take.opus"));
    let bytes = audio(7, 50_000);
    std::fs::write(&staged, &bytes).unwrap();
    std::fs::rename(&staged, &done).unwrap();
    wait_for("the renamed file to be taken", || !done.exists()).await;
    assert_eq!(ingestor.stop().await.unwrap().stored, 1);
    let (f, stored) = inbox.only_file().await;
    assert_eq!(f.name.as_deref(), Some("take.opus"));
    assert_eq!(f.content_type, "audio/opus");
    assert_eq!(stored, bytes);
}

#[tokio::test]
async fn a_slow_writer_file_is_taken_only_when_complete() {
    let inbox = Inbox::new("latha").await;
    // Pauses are 60 ms; the stability time is far longer, so that a stall
    // of a busy test machine is not mistaken for the end of the file. The
    // close after the last chunk is what lets the ingestor take it.
    let ingestor = inbox
        .start(IngestConfig::default().stable_for(Duration::from_secs(3)))
        .await;
    let path = inbox.file("slow.wav");
    let mut writer = std::fs::File::create(&path).unwrap();
    let mut written = Vec::new();
    for i in 0..6u8 {
        let chunk = audio(i, 40_000);
        writer.write_all(&chunk).unwrap();
        writer.flush().unwrap();
        written.extend_from_slice(&chunk);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(
            path.exists(),
            "taken after chunk {i}, before it was complete"
        );
        assert!(inbox.files().await.is_empty(), "stored after chunk {i}");
    }
    drop(writer);
    wait_for("the complete file to be taken", || !path.exists()).await;
    let stats = ingestor.stop().await.unwrap();
    assert_eq!((stats.stored, stats.already_stored), (1, 0));
    let (f, stored) = inbox.only_file().await;
    assert_eq!(f.plain_bytes, written.len() as u64);
    assert_eq!(stored, written);
}

#[tokio::test]
async fn files_already_in_the_folder_are_taken_at_start() {
    let inbox = Inbox::new("deepa").await;
    for i in 0..3u8 {
        std::fs::write(inbox.file(format!("old-{i}.wav")), audio(i, 2000)).unwrap();
    }
    let ingestor = inbox.start(fast()).await;
    wait_for("the three files to be taken", || {
        names_in(inbox.path()).is_empty()
    })
    .await;
    assert_eq!(ingestor.stop().await.unwrap().stored, 3);
    let mut names: Vec<_> = inbox
        .files()
        .await
        .into_iter()
        .filter_map(|f| f.name)
        .collect();
    names.sort();
    assert_eq!(names, ["old-0.wav", "old-1.wav", "old-2.wav"]);
}

#[tokio::test]
async fn a_refused_file_goes_to_failed_with_the_reason() {
    let inbox = Inbox::new("sunil").await;
    let control = "bad\u{1b}name.wav";
    let not_utf8 = OsStr::from_bytes(b"caf\xe9.wav");
    std::fs::write(inbox.file(control), b"one").unwrap();
    std::fs::write(inbox.file(not_utf8), b"two").unwrap();
    let stats = inbox.once().await;
    assert_eq!((stats.stored, stats.failed), (0, 2));
    let failed = inbox.file("failed");
    assert_eq!(std::fs::read(failed.join(control)).unwrap(), b"one");
    let why = std::fs::read_to_string(failed.join(format!("{control}.error"))).unwrap();
    assert!(why.contains("invalid file name"), "{why}");
    assert!(why.contains("control or bidi"), "{why}");
    assert_eq!(std::fs::read(failed.join(not_utf8)).unwrap(), b"two");
    let mut error_name = not_utf8.to_os_string();
    error_name.push(".error");
    let why = std::fs::read_to_string(failed.join(error_name)).unwrap();
    assert!(why.contains("not valid UTF-8"), "{why}");

    // The same name failing again does not replace the first.
    std::fs::write(inbox.file(control), b"three").unwrap();
    assert_eq!(inbox.once().await.failed, 1);
    assert_eq!(std::fs::read(failed.join(control)).unwrap(), b"one");
    let again = std::fs::read(failed.join(format!("{control}.1"))).unwrap();
    assert_eq!(again, b"three");
    assert!(failed.join(format!("{control}.1.error")).exists());
    assert!(inbox.files().await.is_empty());
    assert_eq!(names_in(inbox.path()), ["failed"]);
}

#[tokio::test]
async fn files_of_a_user_deleted_meanwhile_go_to_failed() {
    let inbox = Inbox::new("gone").await;
    let ingestor = inbox.start(fast()).await;
    inbox.t.store.users().delete(inbox.user).await.unwrap();
    std::fs::write(inbox.file("late.wav"), b"after the delete").unwrap();
    let failed = inbox.file("failed");
    wait_for("the file to be moved to failed/", || {
        failed.join("late.wav.error").exists() && failed.join("late.wav").exists()
    })
    .await;
    let stats = ingestor.stop().await.unwrap();
    assert_eq!((stats.stored, stats.failed), (0, 1));
    let why = std::fs::read_to_string(failed.join("late.wav.error")).unwrap();
    let id = inbox.user.to_string();
    assert!(why.contains(&id) && why.contains("not found"), "{why}");
    assert!(!inbox.file("late.wav").exists());
}

/// The process dies after the put returned and before the file was
/// removed (the test switch stops the ingestor there); a new process
/// (the store closed and opened again) must not store it a second time,
/// and must remove it.
#[tokio::test]
async fn a_crash_between_store_and_remove_stores_the_file_once() {
    let inbox = Inbox::new("crash").await;
    let path = inbox.file("crash.wav");
    let bytes = audio(9, 120_000);
    std::fs::write(&path, &bytes).unwrap();
    let dying = inbox.start(fast().halt_after_put()).await;
    wait_for("the put", || dying.stats().stored == 1).await;
    assert_eq!(dying.stop().await.unwrap().stored, 1);
    assert!(path.exists(), "the crash came before the removal");
    assert_eq!(inbox.files().await.len(), 1);

    let Inbox { t, user, dir } = inbox;
    t.store.close().await;
    let TestStore { dir: data, store } = t;
    drop(store);
    let t = TestStore {
        store: Store::open(config(data.path())).await.unwrap(),
        dir: data,
    };
    let inbox = Inbox { t, user, dir };
    let again = inbox.start(fast()).await;
    wait_for("the file to be removed", || !path.exists()).await;
    let stats = again.stop().await.unwrap();
    assert_eq!((stats.stored, stats.already_stored), (0, 1));
    assert_eq!(inbox.only_file().await.1, bytes, "stored once, whole");
}

#[tokio::test]
async fn only_the_same_name_and_bytes_count_as_already_stored() {
    let inbox = Inbox::new("again").await;
    let drop_x = |bytes: Vec<u8>| {
        std::fs::write(inbox.file("x.wav"), bytes).unwrap();
        async {
            let stats = inbox.once().await;
            assert!(!inbox.file("x.wav").exists());
            (stats.stored, stats.already_stored)
        }
    };
    assert_eq!(drop_x(audio(1, 5000)).await, (1, 0));
    // The same bytes under the same name: the copy in the store is it.
    assert_eq!(drop_x(audio(1, 5000)).await, (0, 1));
    // Other bytes, or another name, are another file.
    assert_eq!(drop_x(audio(2, 5000)).await, (1, 0));
    std::fs::write(inbox.file("y.wav"), audio(1, 5000)).unwrap();
    assert_eq!(inbox.once().await.stored, 1);
    // Once the stored copy is deleted, the same file is stored again.
    let files = inbox.files().await;
    assert_eq!(files.len(), 3);
    let first = files.iter().rfind(|f| f.name.as_deref() == Some("x.wav"));
    let me = Actor::User(inbox.user);
    let first = first.unwrap().id;
    inbox.t.store.files().delete(me, first).await.unwrap();
    assert_eq!(drop_x(audio(1, 5000)).await, (1, 0));
}

#[tokio::test]
async fn the_folder_must_exist_and_lie_outside_the_data_directory() {
    let inbox = Inbox::new("careful").await;
    let (store, data, user) = (&inbox.t.store, inbox.t.path(), inbox.user);
    for dir in [data.clone(), data.join("blobs")] {
        let err = Ingestor::start(store.clone(), &dir, user, fast())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
        let err = Ingestor::run_once(store, &dir, user, fast())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    }
    assert!(data.join("store.redb").exists());
    let missing = data.join("no-such-folder");
    let err = Ingestor::start(store.clone(), &missing, user, fast())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    let zero = IngestConfig::default().stable_for(Duration::ZERO);
    let err = Ingestor::start(store.clone(), inbox.path(), user, zero)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err}");
}
