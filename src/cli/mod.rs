//! Argument parsing, dispatch and output for `bvstore`.
//!
//! Exit codes: 0 success; 1 any other failure (and, for `cache`, a missing
//! key or a `set --nx/--xx` that did not write); 2 bad usage (from clap);
//! 3 not found; 4 conflict (name or email taken); 5 invalid input (or a
//! cached value of the wrong type, e.g. `incr` on text); 6 store locked by
//! another process; 7 store from a newer version; 8 corrupt data or a
//! failed integrity check (or `audit verify` finding the chain broken);
//! 9 wrong, missing or insecure master key;
//! 10 permission denied; 11 no store in the data directory (only `init`
//! and `demo` create one); 12 the store is incomplete (`store.redb`
//! missing or empty beside its other files); 13 the cache's disk tier
//! (`cache.redb`) cannot commit (a full disk, say), so a cache command that
//! must be durable (`del`, `clear`, `invalidate-tag`, a write-through
//! `set`) or must read it (`set --nx/--xx`, `incr` of a key not in memory)
//! was refused and changed nothing; 14 a write refused because the store is
//! open read-only (its data directory is not writable by this process).
//! `health` alone exits by the store's status: 0 healthy, 1 degraded,
//! 2 unhealthy; `verify` exits 8 when a problem is left.

mod audit;
mod backup;
mod cache;
mod cache_keyspace;
mod completions;
mod debug;
mod debug_crash;
mod demo;
mod demo_cache;
mod demo_files;
mod demo_lifecycle;
mod demo_ops;
mod demo_people;
mod demo_phase;
mod demo_privacy;
mod demo_summary;
mod file;
mod file_transfer;
mod gc;
mod human;
mod jobs;
mod keys;
mod metrics;
mod migrate;
mod ops;
mod output;
mod progress;
mod remote;
mod session;
mod table;
mod trash;
mod user;
mod user_export;
mod user_password;
mod verify;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use bharatvoice_store::{Config, Error, OpenMode, Store};
use clap::{Args, Parser, Subcommand};

pub(crate) use output::{Out, clean, clean_path, page_table};

/// bvstore: the embedded store of the BharatVoice assistant.
#[derive(Debug, Parser)]
#[command(name = "bvstore", version, long_version = long_version(), about, long_about = None)]
#[command(after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Data directory (default ./bharatvoice-data; an empty value means
    /// the default, as an empty BV_DATA_DIR does).
    #[arg(
        short = 'd',
        long,
        global = true,
        value_name = "DIR",
        env = "BV_DATA_DIR",
        value_parser = data_dir_parser()
    )]
    pub data_dir: Option<PathBuf>,
    /// A TOML configuration file.
    #[arg(
        short = 'c',
        long,
        global = true,
        value_name = "FILE",
        env = "BV_CONFIG"
    )]
    pub config: Option<PathBuf>,
    /// Print one JSON document instead of text.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,
    /// No progress bars, hints or notes, and only error logs; results and
    /// errors still print.
    #[arg(short = 'q', long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More logs on stderr: -v this tool's info lines, -vv its debug lines
    /// (RUST_LOG, when set, wins).
    #[arg(short = 'v', long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Apply the per-user rate limits of the configuration ([rate_limits],
    /// BV_RATE_*); an operator's commands run without them otherwise.
    #[arg(long, global = true)]
    pub rate_limits: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the data directory and the store (does nothing if it exists).
    Init(InitArgs),
    /// Manage users, their profiles and consents.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Store, read, list and share files.
    #[command(subcommand)]
    File(file::FileCommand),
    /// A user's conversation sessions: list, show the turns, end.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Key status and rotation.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Show or run schema migrations.
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
    /// Get, set and manage the tiered cache.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// The tamper-evident audit log: verify the chain, read its tail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Expire, purge and collect orphans now (or show what would go).
    Gc(gc::GcArgs),
    /// Each part's health; exits 0 healthy, 1 degraded, 2 unhealthy.
    Health,
    /// The background jobs: interval, passes, failures, last report.
    Jobs,
    /// What the store holds: counts, sizes, compression by content type,
    /// dedup savings, the largest users, cache hit ratio, settings.
    Stats,
    /// Operation counts, errors and latency, and the parts' gauges (live
    /// from a running store, else its last snapshot).
    Metrics(metrics::MetricsArgs),
    /// Give the free pages of store.redb and cache.redb back to the disk.
    Compact,
    /// Back the store up into a directory: a consistent snapshot taken
    /// while it is in use, only new blobs copied.
    Backup(backup::BackupArgs),
    /// List the backup generations in a directory.
    Backups(backup::BackupsArgs),
    /// Restore a backup into --data-dir after checking every file.
    Restore(backup::RestoreArgs),
    /// Check the whole store (fsck); exits 8 if a problem is left.
    Verify(verify::VerifyArgs),
    /// Store each file that appears in a folder for a user, then remove it
    /// from the folder; runs until Ctrl-C or SIGTERM.
    Watch(watch::WatchArgs),
    /// Run a day of a voice assistant (users, conversations, clips, cache,
    /// lifecycle, privacy, backup, verify) and print a summary table.
    Demo(demo::DemoArgs),
    /// Print a shell completion script (bash, zsh, fish, ...).
    Completions(completions::CompletionsArgs),
    /// Commands for crash tests.
    #[command(subcommand, hide = true)]
    Debug(debug::DebugCommand),
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Create a new, empty store even where store.redb is missing or
    /// empty beside other store files (their blobs become unreachable).
    #[arg(long)]
    force: bool,
}

/// Logs go to stderr: warnings and errors, only errors with `--quiet`,
/// this crate's info (`-v`), debug (`-vv`) or trace (`-vvv`) lines too.
/// `RUST_LOG`, when set, sets the filter instead.
pub(crate) fn init_tracing(cli: &Cli) {
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "warn,bharatvoice_store=info,bvstore=info",
        (false, 2) => "warn,bharatvoice_store=debug,bvstore=debug",
        _ => "warn,bharatvoice_store=trace,bvstore=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

pub(crate) fn config_of(cli: &Cli) -> Result<Config, Error> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir.as_ref().filter(|d| !d.as_os_str().is_empty()) {
        config = config.data_dir(dir);
    }
    if !cli.rate_limits {
        config = config.rate_limits(bharatvoice_store::RateLimitConfig::off());
    }
    Ok(config)
}

/// Opens an existing store for a command that ends in a moment: every
/// command but `init`, `demo` and `watch`. It does not watch `blobs/` for
/// tampering: setting the watch up walks every blob directory (about a
/// second for 65 536 of them), and a command this short would hear
/// nothing; nor does it serve the admin socket.
pub(crate) async fn open(cli: &Cli) -> Result<Store, Error> {
    let mut config = config_of(cli)?.open_mode(OpenMode::MustExist);
    // Nobody would reach a socket that lives a moment.
    config.admin_socket = false;
    let lifecycle = config.lifecycle.clone().tamper_watch(false);
    Store::open(config.lifecycle(lifecycle)).await
}

/// Opens an existing store for a command that runs until it is stopped
/// (`watch`): with everything its configuration asks for.
pub(crate) async fn open_long_running(cli: &Cli) -> Result<Store, Error> {
    Store::open(config_of(cli)?.open_mode(OpenMode::MustExist)).await
}

/// Opens the store, creating it where there is none.
pub(crate) async fn open_or_create(cli: &Cli, mode: OpenMode) -> Result<Store, Error> {
    Store::open(config_of(cli)?.open_mode(mode)).await
}

/// The exit codes, under `--help`.
const EXIT_CODES: &str = "Exit codes:
  0   success (health: healthy)
  1   other failure; a missing cache key; cache set --nx/--xx not written (health: degraded)
  2   bad usage (health: unhealthy)
  3   not found
  4   conflict: a name or email already used
  5   invalid input, or a cached value of the wrong type
  6   store locked by another process
  7   store from a newer version
  8   corrupt data or a failed integrity check (verify: a problem left)
  9   wrong, missing or insecure master key
  10  permission denied
  11  no store in the data directory (run bvstore init)
  12  store incomplete (store.redb missing or empty)
  13  the cache's disk tier cannot be read or commit
  14  store open read-only
  15  quota or free-space floor reached
  16  consent required
  17  rate limited (with --rate-limits)
  18  store made for another data region";

/// `--version`: the crate's version with the schema and blob format
/// versions this build writes.
fn long_version() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| {
        format!(
            "{} (store schema {}, blob format {})",
            env!("CARGO_PKG_VERSION"),
            bharatvoice_store::SCHEMA_VERSION,
            bharatvoice_store::BLOB_FORMAT_VERSION
        )
    })
}

/// `--data-dir`: any path, the empty one too (clap's path parser refuses
/// it; [`config_of`] reads it as the default).
fn data_dir_parser() -> impl clap::builder::TypedValueParser<Value = PathBuf> {
    use clap::builder::TypedValueParser;
    clap::builder::OsStringValueParser::new().map(PathBuf::from)
}

/// The `--limit` of a listing: a page of 1 to 1000 items (the library
/// reads 0 as its default and caps larger pages, which on a command line
/// would only surprise).
pub(crate) fn page_limit() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000)
}

/// What every command comes to: an exit code, or an error that picks one.
pub(crate) type Outcome = Result<ExitCode, Error>;

/// A command that succeeds or fails, and nothing between: the outcome of
/// its last step (most often printing the result).
pub(crate) fn done(result: Result<(), Error>) -> Outcome {
    result.map(|()| ExitCode::SUCCESS)
}

/// One line per group, all of one shape: each group's `run` opens what it
/// needs and calls the function of the subcommand.
pub(crate) async fn run(cli: Cli) -> Outcome {
    let out = Out::new(cli.json, cli.quiet);
    match &cli.command {
        Command::Init(args) => init(&cli, args, &out).await,
        Command::User(cmd) => user::run(&cli, cmd, &out).await,
        Command::File(cmd) => file::run(&cli, cmd, &out).await,
        Command::Keys(cmd) => keys::run(&cli, cmd, &out).await,
        Command::Gc(args) => gc::run(&cli, args, &out).await,
        Command::Health => ops::health(&cli, &out).await,
        Command::Jobs => jobs::run(&cli, &out).await,
        Command::Stats => ops::stats(&cli, &out).await,
        Command::Compact => ops::compact(&cli, &out).await,
        Command::Metrics(args) => metrics::run(&cli, args, &out).await,
        Command::Backup(args) => backup::backup(&cli, args, &out).await,
        Command::Backups(args) => backup::list(&cli, args, &out).await,
        Command::Restore(args) => backup::restore(&cli, args, &out).await,
        Command::Verify(args) => verify::run(&cli, args, &out).await,
        Command::Migrate(cmd) => migrate::run(&cli, cmd, &out).await,
        Command::Cache(cmd) => cache::run(&cli, cmd, &out).await,
        Command::Audit(cmd) => audit::run(&cli, cmd, &out).await,
        Command::Session(cmd) => session::run(&cli, cmd, &out).await,
        Command::Watch(args) => watch::run(&cli, args, &out).await,
        Command::Demo(args) => demo::run(&cli, args, &out).await,
        Command::Completions(args) => completions::run(args, &out).await,
        Command::Debug(cmd) => debug::run(&cli, cmd, &out).await,
    }
}

/// `bvstore init [--force]`.
async fn init(cli: &Cli, args: &InitArgs, out: &Out) -> Outcome {
    let mode = if args.force {
        OpenMode::ForceNew
    } else {
        OpenMode::OpenOrCreate
    };
    let store = open_or_create(cli, mode).await?;
    let report = serde_json::json!({
        "data_dir": store.config().data_dir,
        "db_file": store.db_file(),
        "schema_version": store.schema_version()?,
        "region": store.region(),
    });
    done(out.emit(&report, || {
        format!(
            "store ready at {} (schema version {}, data region {})",
            clean_path(&store.config().data_dir),
            store.schema_version().unwrap_or_default(),
            store.region().unwrap_or("not set")
        )
    }))
}

/// The kind `--json` reports: [`Error::kind`], except that an error the
/// store's process answered through its admin socket keeps that error's
/// kind (a refusal there is the same refusal as here).
fn kind_of(e: &Error) -> &str {
    match e {
        Error::Remote { kind, .. } => kind,
        e => e.kind(),
    }
}

fn exit_code(e: &Error) -> u8 {
    code_of_kind(kind_of(e))
}

/// The exit code of an error kind (the table in `bvstore --help`).
fn code_of_kind(kind: &str) -> u8 {
    match kind {
        "not_found" => 3,
        "conflict" => 4,
        "invalid_input" | "wrong_type" => 5,
        "locked" => 6,
        "version_too_new" => 7,
        "corrupt" | "integrity" => 8,
        "wrong_key" | "missing_key" | "invalid_key" | "insecure_key_file" => 9,
        "permission_denied" => 10,
        "no_store" => 11,
        "store_incomplete" => 12,
        "cache_unavailable" => 13,
        "read_only" => 14,
        "quota_exceeded" => 15,
        "consent_required" => 16,
        "rate_limited" => 17,
        "region_mismatch" => 18,
        _ => 1,
    }
}

/// The error's kind as `--json` names it: stable, one per exit code and
/// finer (`io`, `storage`, `busy` ... all exit 1).
/// Prints the error with its chain to stderr and picks the exit code.
pub(crate) fn report_error(e: &Error, json: bool) -> ExitCode {
    if output::is_broken_pipe(e) {
        return ExitCode::SUCCESS;
    }
    let mut chain = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    if json {
        let doc = serde_json::json!({ "error": e.to_string(), "kind": kind_of(e), "code": exit_code(e), "causes": chain });
        eprintln!("{doc}");
    } else {
        eprintln!("error: {}", clean(&e.to_string()));
        for c in chain {
            eprintln!("  caused by: {}", clean(&c));
        }
    }
    ExitCode::from(exit_code(e))
}

/// A command line clap refuses: with `--json` among the arguments, the
/// error is one JSON object on stderr like every other error (kind
/// `usage`, exit 2, clap's code for it); otherwise clap prints it. Help
/// and version requests are printed by clap either way.
pub(crate) fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let json = std::env::args_os().any(|a| a == "--json");
    if !json
        || matches!(
            e.kind(),
            ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        )
    {
        e.exit()
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first);
    let doc = serde_json::json!({ "error": message, "kind": "usage", "code": 2, "causes": [] });
    eprintln!("{doc}");
    ExitCode::from(2)
}

/// Prints `peak_rss_kib=N` (VmHWM of /proc/self/status) to stderr.
pub(crate) fn report_peak_rss() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    match kib {
        Some(k) => eprintln!("peak_rss_kib={k}"),
        None => eprintln!("peak_rss_kib=unknown"),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::{Cli, config_of, exit_code};

    /// The configured rate limits apply to `bvstore` only with
    /// `--rate-limits`; a refusal exits with 17.
    #[test]
    fn rate_limits_apply_only_with_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("limits.toml");
        std::fs::write(&cfg, "[rate_limits]\nops_per_sec = 5\n").unwrap();
        let cfg = cfg.to_str().unwrap();
        let parse = |flag: Option<&str>| {
            let mut args = vec!["bvstore", "--config", cfg];
            args.extend(flag);
            args.push("init");
            Cli::try_parse_from(args).unwrap()
        };
        assert!(!config_of(&parse(None)).unwrap().rate_limits.is_on());
        let on = config_of(&parse(Some("--rate-limits"))).unwrap();
        assert_eq!(on.rate_limits.ops_per_sec, 5);
        let refused = bharatvoice_store::Error::RateLimited {
            user: bharatvoice_store::UserId::new(),
            limit: bharatvoice_store::RateLimit::Operations,
            retry_after: std::time::Duration::from_millis(5),
        };
        assert_eq!(exit_code(&refused), 17);
    }
}
