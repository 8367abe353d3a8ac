//! `cargo xtask`: Nexy's release tooling.
//!
//! `main` parses the command line, makes the one `Shell` every external
//! command goes through, loads the workspace and dispatches. Exit codes:
//! 0 success, 1 problems found or a step failed, 2 usage or config error.

mod archive;
mod artifact;
mod auth;
mod az;
mod azure_cli;
mod bench;
mod bump;
mod changes;
mod check;
mod cli;
mod clock;
mod config;
mod edit;
mod effect;
mod feed;
mod gh;
mod ghenv;
mod gitobj;
mod grpc;
mod hash;
mod hook;
mod http;
mod init;
mod inspect;
mod journal;
mod lease;
mod linked;
mod lock;
mod macos;
mod manifest;
mod netns;
mod output;
mod platform;
mod preflight;
mod preflight_artifacts;
mod preflight_vm;
mod prepush;
mod proc;
mod progress;
mod promote;
mod publish;
mod rehearse;
mod release;
mod report;
mod rollback;
mod samples;
mod sandbox;
mod scratch;
mod secrets;
mod signing;
mod tempname;
mod util;
mod verify;
mod version;
mod vm;

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

/// Exit 0 when every check passed, 1 otherwise.
fn verdict(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    let sh = Shell::new()?;
    if cli.global.json {
        if !matches!(
            cli.command,
            Command::Check(_)
                | Command::Preflight(_)
                | Command::Verify(_)
                | Command::Release(_)
                | Command::Rehearse(_)
                | Command::Inspect(_)
        ) {
            return Err(UsageError(
                "--json is supported by check, preflight, verify, release, rehearse and inspect"
                    .to_string(),
            )
            .into());
        }
        output::set_json(true);
    }
    // Loaded per command, so that `samples` works outside a workspace.
    let load = || {
        Workspace::load(cli.global.root.as_deref(), cli.global.config.as_deref())
            .map_err(|e| anyhow::Error::new(UsageError(format!("{e:#}"))))
    };
    match cli.command {
        Command::Version => {
            let ws = load()?;
            let text = changes::read_text(&ws.root, &ws.config.version_file)?;
            let v = version::parse_version_file(&text).map_err(|why| {
                anyhow::anyhow!(
                    "{} is unreadable ({why}); repair it with `cargo xtask bump X.Y.Z.W`",
                    ws.config.version_file
                )
            })?;
            println!("{v}");
        }
        Command::Bump(task) => task.run(&sh, &load()?)?,
        Command::Check(args) => return Ok(verdict(prepush::run(&sh, &load()?, &args)?)),
        Command::Init(task) => task.run(
            &sh,
            cli.global.root.as_deref(),
            cli.global.config.as_deref(),
        )?,
        Command::InstallHook(task) => task.run(&sh, &load()?)?,
        Command::Preflight(task) => return Ok(verdict(task.run(&sh, &load()?)?)),
        Command::Publish(task) => task.run(&sh, &load()?)?,
        Command::Verify(task) => return Ok(verdict(task.run(&sh, &load()?)?)),
        Command::Release(task) => return Ok(verdict(task.run(&sh, &load()?)?)),
        Command::Rollback(task) => return Ok(verdict(task.run(&sh, &load()?)?)),
        Command::Inspect(task) => return Ok(verdict(task.run()?)),
        // Outside a workspace it needs --version; inside, VERSION is used.
        Command::Samples(task) => task.run(load().ok().as_ref())?,
        Command::Bench(task) => {
            let ws = load()?;
            task.run(&sh, &ws, &ws.config_path)?;
        }
        Command::Lease(task) => task.run(&sh, &load()?)?,
        Command::Promote(task) => return Ok(verdict(task.run(&sh, &load()?)?)),
        Command::Keygen(task) => {
            let ws = load()?;
            task.run(&ws, &ws.config_path)?;
        }
        Command::Rehearse(task) => {
            let ws = load()?;
            return Ok(verdict(task.run(&sh, &ws, &ws.config_path)?));
        }
        Command::Sandbox(task) => task.run(&sh, &load()?.config_path)?,
    }
    Ok(ExitCode::SUCCESS)
}
