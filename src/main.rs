//! `bvstore`: the command line of bharatvoice-store. `main` only parses,
//! runs and maps the outcome to an exit code; each command is in `cli/`.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => return cli::usage_error(e),
    };
    cli::init_tracing(&args);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let json = args.json;
    let code = match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => cli::report_error(&e, json),
    };
    drop(runtime);
    // For memory tests: the peak resident set size, read from /proc.
    if std::env::var_os("BV_REPORT_PEAK_RSS").is_some() {
        cli::report_peak_rss();
    }
    code
}
