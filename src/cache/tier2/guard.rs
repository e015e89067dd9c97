//! The engine boundary of `cache.redb`: every redb call on it runs here.
//!
//! redb trusts its pages: on a damaged one it may return an error, or
//! panic (an invalid page type, an index out of bounds), at open or on any
//! later read, write, commit or close. A panic must not take the store
//! down, so each call on the cache file goes through [`guard`], which turns
//! a panic into [`Error::Corrupt`] naming the file. Any sign of damage (a
//! caught panic, or an engine error that is not a passing I/O failure) is
//! reported to the tier ([`Shared::note_damage`](super::Shared)): the
//! writer then sets the file aside and rebuilds it empty.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use crate::error::Error;

/// Runs `f` (a call into redb on the file at `path`), turning a panic into
/// [`Error::Corrupt`]. `what` says what was being done ("reading a row").
///
/// The engine's state is not trusted after a panic: the caller stops using
/// the database (the tier degrades and the file is set aside).
pub(crate) fn guard<T>(path: &Path, what: &str, f: impl FnOnce() -> T) -> Result<T, Error> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let message = crate::error::panic_message(panic.as_ref());
        Error::corrupt(
            path.display().to_string(),
            format!("the storage engine panicked while {what}: {message}"),
        )
    })
}

/// Whether an engine error means the file is damaged (or of a shape this
/// build cannot use), as opposed to a failure that may pass: I/O that may
/// succeed later, or a lock held elsewhere.
pub(crate) fn is_damage(e: &redb::Error) -> bool {
    match e {
        redb::Error::Io(io) => !io_is_transient(io),
        redb::Error::PreviousIo
        | redb::Error::DatabaseAlreadyOpen
        | redb::Error::LockProtocolMismatch
        | redb::Error::TransactionInProgress => false,
        _ => true,
    }
}

/// Whether an I/O error may pass (a full disk, permissions, a fault).
pub(crate) fn io_is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::PermissionDenied
            | K::ReadOnlyFilesystem
            | K::StorageFull
            | K::QuotaExceeded
            | K::FileTooLarge
            | K::Other
            | K::Interrupted
            | K::WouldBlock
            | K::OutOfMemory
            | K::NotFound
            | K::ResourceBusy
    )
}
