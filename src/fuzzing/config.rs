//! The `config_file` target: the configuration a deployment writes. The
//! bytes as a TOML file ([`Config::from_toml_str`], what
//! [`Config::from_toml_file`] parses) and as `NAME=VALUE` lines of the
//! environment ([`Config::apply_env`] over the defaults): a configuration
//! that validates, or [`Error::Config`] (and, for `BV_MASTER_KEY`,
//! [`Error::InvalidKey`]), never a panic.

use crate::Config;
use crate::error::Error;

fn toml(text: &str) -> bool {
    match Config::from_toml_str(text) {
        Ok(config) => {
            config.validate().expect("a loaded configuration validates");
            true
        }
        Err(Error::Config { .. }) => false,
        Err(other) => panic!("loading TOML returned a non-Config error: {other}"),
    }
}

fn env(text: &str) -> bool {
    let vars: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('=')).collect();
    // The last assignment wins, as in a shell; names compare as the
    // environment does (exactly).
    let get = |name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    };
    let mut config = Config::default();
    match config.apply_env(get) {
        Ok(()) => {
            config.validate().expect("an applied environment validates");
            true
        }
        Err(Error::Config { .. } | Error::InvalidKey { .. }) => false,
        Err(other) => panic!("applying the environment returned an unexpected error: {other}"),
    }
}

/// Reads `data` as a TOML configuration and as environment lines; returns
/// how many readings accepted it. Panics (the fuzzer's signal) only if a
/// reader misbehaves. Bytes that are not UTF-8 are refused before either
/// parser sees them (a file by `read_to_string`, a variable by the OS).
pub fn config_file(data: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(data) else {
        return 0;
    };
    usize::from(toml(text)) + usize::from(env(text))
}

/// Valid TOML configurations and environments, for the seed corpus and
/// the replay tests.
pub fn sample_configs() -> Vec<(&'static str, Vec<u8>)> {
    let full = r#"data_dir = "/var/lib/bharatvoice"
max_batch = 256
write_queue = 4096
db_cache_bytes = 33554432
session_idle_timeout_secs = 900
session_max_turns = 24
session_max_context_bytes = 8192
password_memory_kib = 19456
password_iterations = 2
default_retention_days = 30
blob_chunk_bytes = 262144
blob_cache_limit_bytes = 1048576
master_key_file = "/etc/bharatvoice/master.key"
verify_on_open = false
region = "IN-KA"
admin_socket = true

[cache]
memory_bytes = 67108864
eviction = "lru"
default_ttl_secs = 3600
tier2 = true
tier2_bytes = 1073741824
write_mode = "write-behind"
write_delay_ms = 20
sweep_interval_secs = 60
retry_interval_ms = 500

[lifecycle]
access_interval_secs = 60
expiry_interval_secs = 300
purge_interval_secs = 3600
purge_grace_secs = 86400
orphan_interval_secs = 3600
orphan_grace_secs = 86400
metric_retention_secs = 2592000
batch = 500
tamper_watch = true
tamper_debounce_ms = 250

[privacy]
require_consent = true
consent_notice_secs = 604800
erasure_interval_secs = 60

[quota]
user_bytes = 10737418240
min_free_bytes = 1073741824

[audit]
enabled = true
retention_secs = 31536000
read_flush_interval_ms = 1000

[rate_limits]
ops_per_sec = 50
ops_burst = 100
bytes_per_sec = 10485760
bytes_burst = 20971520

[metrics]
snapshot_interval_secs = 60
textfile = "/var/lib/node_exporter/bv.prom"
textfile_interval_secs = 15
anomaly_window_secs = 300
refusal_burst = 20
rate_limit_burst = 50
integrity_burst = 1
growth_bytes_per_hour = 1073741824
"#;
    let minimal = "data_dir = '/srv/bv'\nmax_batch = 64\n";
    let through = "[cache]\nwrite_mode = \"through\"\neviction = \"tinylfu\"\n";
    let environment = "BV_DATA_DIR=/srv/bv
BV_REGION=IN
BV_ADMIN_SOCKET=off
BV_METRICS_TEXTFILE=/tmp/bv.prom
BV_MAX_BATCH=128
BV_DB_CACHE_BYTES=16777216
BV_SESSION_IDLE_SECS=600
BV_SESSION_MAX_TURNS=16
BV_SESSION_MAX_CONTEXT_BYTES=4096
BV_PASSWORD_MEMORY_KIB=8
BV_PASSWORD_ITERATIONS=1
BV_DEFAULT_RETENTION_DAYS=7
BV_BLOB_CHUNK_BYTES=65536
BV_BLOB_CACHE_LIMIT_BYTES=0
BV_MASTER_KEY=4242424242424242424242424242424242424242424242424242424242424242
BV_MASTER_KEY_FILE=/etc/bv/master.key
BV_VERIFY_ON_OPEN=yes
BV_CACHE_MEMORY_BYTES=1048576
BV_CACHE_EVICTION=lru
BV_CACHE_DEFAULT_TTL_SECS=60
BV_CACHE_WRITE_MODE=write-through
BV_CACHE_WRITE_DELAY_MS=5
BV_CACHE_SWEEP_SECS=30
BV_CACHE_RETRY_MS=100
BV_QUOTA_USER_BYTES=1073741824
BV_QUOTA_MIN_FREE_BYTES=0
BV_PRIVACY_REQUIRE_CONSENT=true
BV_PRIVACY_CONSENT_NOTICE_SECS=86400
BV_AUDIT_ENABLED=1
BV_AUDIT_RETENTION_SECS=86400
BV_AUDIT_READ_FLUSH_MS=250
BV_RATE_OPS_PER_SEC=10
BV_RATE_OPS_BURST=20
BV_RATE_BYTES_PER_SEC=1048576
BV_RATE_BYTES_BURST=2097152
";
    vec![
        ("full_toml", full.into()),
        ("minimal_toml", minimal.into()),
        ("write_through_toml", through.into()),
        ("environment", environment.into()),
    ]
}
