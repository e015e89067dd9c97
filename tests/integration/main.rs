//! The integration tests: one binary, a module per part.

mod common;

mod access;
mod blob_cli;
mod blobs;
mod cache;
mod cache_alloc;
mod cache_cli;
mod cache_crash;
mod cache_faults;
mod cache_fuzz;
mod cache_model;
mod cache_race;
mod cache_tiers;
mod cli;
mod cli_safety;
mod config;
mod corrupt;
mod crash;
mod direct_io;
mod disk_full;
mod files;
mod fuzz_corpus;
mod input_safety;
mod keys;
mod locking;
mod metrics;
mod migrate;
mod migrate_v5;
mod model;
mod page_cache;
mod profiles;
mod sessions;
mod tamper;
mod users;
mod writer;
