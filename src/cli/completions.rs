//! `bvstore completions SHELL`: a completion script on stdout, made from
//! the same argument definitions the parser uses (so it never drifts). It
//! needs no store.
//!
//! ```text
//! bvstore completions bash > ~/.local/share/bash-completion/completions/bvstore
//! bvstore completions zsh  > "${fpath[1]}/_bvstore"
//! bvstore completions fish > ~/.config/fish/completions/bvstore.fish
//! ```

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Out, Outcome, done};

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

/// `bvstore completions SHELL`; with `--json`, `{"shell", "script"}`.
pub(crate) async fn run(args: &CompletionsArgs, out: &Out) -> Outcome {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "bvstore", &mut script);
    let script = String::from_utf8_lossy(&script);
    let doc = serde_json::json!({ "shell": args.shell.to_string(), "script": script });
    done(out.emit(&doc, || script.trim_end().to_string()))
}
