//! What every wrapper of redb's storage backend forwards unchanged.
//!
//! Three wrappers sit in front of redb's file backend (the page tracker,
//! the fault plans of the tests, the cache's write switch); each must pass
//! `close` and the whole byte-range lock protocol through to the file it
//! wraps, or two opens of one file would not see each other. One copy of
//! that forwarding, for a type with an `inner` backend field.

/// Forwards `close` and the lock methods of `redb::StorageBackend` to
/// `self.inner` (use inside the `impl StorageBackend`; `Bound` and
/// `BackendError` must be in scope).
macro_rules! forward_close_and_locks {
    () => {
        fn close(&self) -> Result<(), std::io::Error> {
            self.inner.close()
        }
        fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
            self.inner.try_lock_range(start, end)
        }
        fn try_lock_shared_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.inner.try_lock_shared_range(start, end)
        }
        fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.inner.lock_range(start, end)
        }
        fn lock_shared_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<(), BackendError> {
            self.inner.lock_shared_range(start, end)
        }
        fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
            self.inner.unlock_range(start, end)
        }
        fn query_lock_range(
            &self,
            start: Bound<u64>,
            end: Bound<u64>,
        ) -> Result<bool, BackendError> {
            self.inner.query_lock_range(start, end)
        }
    };
}

pub(crate) use forward_close_and_locks;
