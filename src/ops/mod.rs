//! Seam for operations: backup, restore, verify, health, metrics export.

pub(crate) mod backup;
pub(crate) mod compact;
pub(crate) mod metrics;
pub(crate) mod stats;
pub(crate) mod verify;
