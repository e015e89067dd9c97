//! Seam for encrypted, compressed, content-addressed blob storage. It will
//! own `blobs/` and `tmp/` and record references through `db`
//! ([`FileRecords`](crate::FileRecords) and the `files_by_blob` index).
