//! `cargo xtask`: Nexy's release tooling.
//!
//! `main` parses the command line, makes the one `Shell` every external
//! command goes through, loads the workspace and dispatches. Exit codes:
//! 0 success, 1 problems found or a step failed, 2 usage or config error.

mod bump;
mod changes;
mod check;
mod cli;
mod config;
mod hook;
mod linked;
mod manifest;
mod secrets;
mod template;
mod version;

use std::process::ExitCode;

use clap::Parser;
use xshell::Shell;

use crate::{cli::Command, config::Workspace};

/// An error in how the tool was called (bad argument, bad config): exit 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    let sh = Shell::new()?;
    let ws = Workspace::load(cli.global.root.as_deref(), cli.global.config.as_deref())
        .map_err(|e| UsageError(format!("{e:#}")))?;
    match cli.command {
        Command::Version => {
            let text = changes::read_text(&ws.root, &ws.config.version_file)?;
            let v = version::parse_version_file(&text).map_err(|why| {
                anyhow::anyhow!(
                    "{} is unreadable ({why}); repair it with `cargo xtask bump X.Y.Z.W`",
                    ws.config.version_file
                )
            })?;
            println!("{v}");
        }
        Command::Bump(bump) => bump.run(&sh, &ws)?,
        Command::Check => {
            if !check::run(&sh, &ws)? {
                return Ok(ExitCode::from(1));
            }
        }
        Command::InstallHook(hook) => hook.run(&sh, &ws)?,
    }
    Ok(ExitCode::SUCCESS)
}
