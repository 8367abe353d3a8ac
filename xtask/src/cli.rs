//! The command line: every command, its flags and its help text.
//!
//! Parsing lives here and nowhere else; each command's behaviour lives in
//! the module of its runbook step.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Release tooling for Nexy: keeps the version in sync and checks the
/// workspace before it is pushed.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct Global {
    /// Release target configuration (default: ROOT/release.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Workspace root (default: the nearest directory holding release.toml).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version from VERSION.
    Version,
    /// Set the version in VERSION, the manifest and every linked file.
    Bump(Bump),
    /// The pre-push check: version drift, manifest, guide, secrets (offline).
    Check,
    /// Install a git pre-push hook that runs `cargo xtask check`.
    InstallHook(InstallHook),
}

#[derive(Debug, Args)]
pub struct Bump {
    /// The new version, four numbers: X.Y.Z.W
    #[arg(value_name = "X.Y.Z.W")]
    pub version: String,
    /// Print the diff of every change and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a version lower than the current one.
    #[arg(long)]
    pub allow_downgrade: bool,
}

#[derive(Debug, Args)]
pub struct InstallHook {
    /// Replace a pre-push hook that this tool did not write.
    #[arg(long)]
    pub force: bool,
}
