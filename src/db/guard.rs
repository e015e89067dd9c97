//! The engine boundary: where a damaged `store.redb` becomes an error.
//!
//! redb checks page checksums only when it repairs a file or is asked for
//! an integrity check; on an ordinary read a damaged page can make it
//! return `Corrupted`, or panic (an index out of bounds in a page that no
//! longer parses: seen for single flipped bytes at offsets 4096–65536 of a
//! small store). Every call into redb from the `db` module runs inside
//! [`guarded`], which turns both into [`Error::Corrupt`] naming the file,
//! so a damaged page never crashes the process or the writer thread.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use crate::error::Error;

/// Runs `f`, turning a panic inside it and redb's `Corrupted` errors into
/// [`Error::Corrupt`] about `path`.
pub(crate) fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(|e| corrupt_if_damaged(path, e)),
        Err(payload) => Err(panicked(path, payload.as_ref())),
    }
}

/// The error for a panic met while working on `path`.
pub(crate) fn panicked(path: &Path, payload: &(dyn Any + Send)) -> Error {
    let message = crate::error::panic_message(payload);
    damaged(path, format!("the storage engine failed on it ({message})"))
}

/// [`Error::Corrupt`] for the database file at `path`.
pub(crate) fn damaged(path: &Path, detail: String) -> Error {
    Error::Corrupt {
        what: format!("database file {}", path.display()),
        detail: format!(
            "{detail}; the file is damaged: restore it from a backup (user data is not trusted until then)"
        ),
    }
}

/// The error for a failed open of the database file at `path`: held by
/// another handle is [`Error::Locked`]; a file that is not a redb database
/// (its magic number damaged, say: redb reports it as an I/O error of kind
/// `InvalidData`) is [`Error::Corrupt`]; other I/O errors stay
/// [`Error::Io`].
pub(crate) fn open_error(path: &Path, e: redb::DatabaseError) -> Error {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => Error::Locked {
            path: path.to_path_buf(),
        },
        redb::DatabaseError::Storage(redb::StorageError::Io(io))
            if io.kind() == std::io::ErrorKind::InvalidData =>
        {
            damaged(path, format!("opening it: {io}"))
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) => {
            Error::io(format!("opening {}", path.display()), io)
        }
        other => Error::storage(format!("opening {}", path.display()), other),
    }
}

/// Maps redb's `Corrupted` (and a transaction it poisoned) to
/// [`Error::Corrupt`]; other errors pass unchanged.
pub(crate) fn corrupt_if_damaged(path: &Path, e: Error) -> Error {
    match &e {
        Error::Storage { source, context }
            if matches!(
                source.downcast_ref::<redb::Error>(),
                Some(redb::Error::Corrupted(_) | redb::Error::TransactionPoisoned)
            ) =>
        {
            damaged(path, format!("{context}: {source}"))
        }
        _ => e,
    }
}
