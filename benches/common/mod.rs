//! Helpers shared by the benchmark binaries (each includes this module).

/// A temporary directory for a benchmark's store, under `BV_BENCH_DIR` if
/// set (to measure another disk), else the system's temporary directory.
pub fn temp_dir(label: &str) -> tempfile::TempDir {
    let mut builder = tempfile::Builder::new();
    builder.prefix(label);
    match std::env::var_os("BV_BENCH_DIR") {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .expect("temporary directory")
}
