//! Seam for background jobs: retention, purge, GC, erasure, audit, rate
//! limits, watchers. They call `db`, `cache` and `blob` through their APIs.
pub(crate) mod ingest;
