//! The records the store keeps, and the rules for the names in them.
//!
//! These are plain data types; the `db` module stores them.

pub(crate) mod file;
pub(crate) mod metric;
pub(crate) mod profile;
pub(crate) mod session;
pub(crate) mod user;
pub(crate) mod validate;
