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
    /// One JSON document on stdout (check, preflight, verify, release, rehearse);
    /// human lines go to stderr.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the version from VERSION.
    Version,
    /// Set the version in VERSION, the manifest and every linked file.
    Bump(Bump),
    /// The pre-push check: version drift, manifest, guide, secrets (offline).
    Check(CheckArgs),
    /// Propose `[[version_files]]` for every tracked file holding the version.
    Init(Init),
    /// Install a git pre-push hook that runs `cargo xtask check`.
    InstallHook(InstallHook),
    /// Every check before a release: gh, inbox, server, VM key, tags, version.
    Preflight(Preflight),
    /// Upload the artifacts to the fixed tags (no 404 window), write and sync the manifest.
    Publish(Publish),
    /// The Definition of Done: assets, manifest and feed agree.
    Verify(Verify),
    /// preflight, publish and verify as stages.
    Release(Release),
    /// Republish an archived version to the fixed tags and verify.
    Rollback(Rollback),
    /// What is inside DMGs and PKGs: apps, versions, bundle ids, signatures.
    Inspect(Inspect),
    /// Write real sample artifacts: an HFS+ DMG and a xar PKG holding Nexy.app.
    Samples(Samples),
    /// The local stand-in of production (GitHub, the Azure VM, the feed).
    Sandbox(SandboxCmd),
    /// The whole release against the stand-in: bump, release twice, rollback, verify.
    Rehearse(Rehearse),
    /// Benchmarks: hashing, the release against the stand-in, availability, check, inspect.
    Bench(Bench),
    /// Create an Ed25519 signing key pair (Sparkle's format).
    Keygen(Keygen),
    /// Copy the exact bytes tested on one channel to another (beta -> stable).
    Promote(Promote),
    /// Show the release lease held in GitHub; `--break` removes a stuck one.
    Lease(LeaseCmd),
}

#[derive(Debug, Args)]
pub struct LeaseCmd {
    /// Remove the lease (after asking), e.g. one left by a crashed run.
    #[arg(long = "break")]
    pub break_: bool,
    /// Do not ask (for non-interactive use with --break).
    #[arg(long)]
    pub yes: bool,
}

/// What `check` reads: the working tree (default), the index, or a push.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Run as git's pre-push hook: read the hook's stdin (local ref, local
    /// sha, remote ref, remote sha per line) and scan only the commits the
    /// push adds to REMOTE (the hook's first argument); the tree checks run
    /// on each pushed tip.
    #[arg(long, value_name = "REMOTE", num_args = 0..=1, default_missing_value = "origin", conflicts_with = "staged")]
    pub pre_push: Option<String>,
    /// With --pre-push, after the push happened (CI): the pushed refs' own
    /// remote-tracking refs do not count as already on the remote.
    #[arg(long, requires = "pre_push")]
    pub after_push: bool,
    /// Check the index (what `git commit` would record), for a pre-commit
    /// hook: the tree checks on the staged files, the scan on the staged lines.
    #[arg(long)]
    pub staged: bool,
}

#[derive(Debug, Args)]
pub struct Promote {
    #[arg(long, default_value = "beta")]
    pub from: String,
    #[arg(long, default_value = "stable")]
    pub to: String,
    /// Print what would be copied; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct Keygen {
    /// Where to write the private key (mode 0600, outside the repository;
    /// default ~/.config/nexy/sparkle_ed25519.key).
    #[arg(long, value_name = "FILE", conflicts_with = "print")]
    pub out: Option<PathBuf>,
    /// Print the private key once (for a secret store) instead of writing it.
    #[arg(long)]
    pub print: bool,
    /// Replace an existing private key file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct Bench {
    /// Size of the hashing benchmark's file, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub hash_mib: u64,
    /// Size of the second file for the peak-memory comparison, in MiB.
    #[arg(long, default_value_t = 4096)]
    pub big_mib: u64,
    /// Size of the DMG of the release benchmark, in MB.
    #[arg(long, default_value_t = 270)]
    pub dmg_mb: u64,
    /// Size of the PKG of the release benchmark, in MB.
    #[arg(long, default_value_t = 100)]
    pub pkg_mb: u64,
    /// Where to put the large scratch files (default: the system temp dir).
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// Run only these sections (comma-separated; default: all).
    #[arg(long, value_delimiter = ',', value_name = "SECTIONS")]
    pub only: Vec<BenchPart>,
    /// `loopback` (the sections above) or `production-like`: the release
    /// against a stand-in with production's latencies, stable and beta,
    /// beside its floor, the old scripts' flow and the naive one.
    #[arg(long, value_enum, default_value = "loopback")]
    pub profile: BenchProfile,
    /// One figure of the production-like stand-in, repeatable:
    /// run_command_ms=25000, retry_after_secs=none, post_waits_ms=0,
    /// github_rtt_ms=100, upload_bytes_per_sec=12500000.
    #[arg(long, value_name = "KEY=VALUE")]
    pub latency: Vec<String>,
}

/// The stand-in `cargo xtask bench` measures against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchProfile {
    Loopback,
    ProductionLike,
}

/// The sections of `cargo xtask bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchPart {
    Hashing,
    /// The release against the stand-in and availability (one run).
    Release,
    Check,
    /// The secret scan of a push, next to detect-secrets.
    Secrets,
    /// Reading the app out of a 270 MB DMG and a PKG, next to `7zz l`.
    Inspect,
}

#[derive(Debug, Args)]
pub struct Rehearse {}

#[derive(Debug, Args)]
pub struct SandboxCmd {
    #[command(subcommand)]
    pub sub: SandboxSub,
}

#[derive(Debug, Subcommand)]
pub enum SandboxSub {
    /// Start the stand-in in the foreground and write STATE/release.toml.
    Up {
        /// Where the stand-in keeps releases, assets and the VM's files.
        #[arg(long, default_value = "target/sandbox")]
        state: PathBuf,
        /// Port to listen on (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Write STATE/release.toml for a stand-in that is already running.
    Config {
        #[arg(long)]
        state: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct Inspect {
    /// DMG or PKG files (judged by their bytes, not their names).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct Samples {
    /// Where to write Nexy.dmg and Nexy.pkg.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Size of the DMG in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub dmg_size: u64,
    /// Size of the PKG in bytes.
    #[arg(long, default_value_t = 2 << 20)]
    pub pkg_size: u64,
    /// Makes different runs produce different bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The app's version X.Y.Z.W (default: VERSION of the workspace),
    /// mapped to its Info.plist keys as release.toml's [app] says.
    #[arg(long, value_name = "X.Y.Z.W")]
    pub version: Option<String>,
    /// The app's CFBundleIdentifier (default: [app] bundle_id).
    #[arg(long, value_name = "ID")]
    pub bundle_id: Option<String>,
    /// The app's LSMinimumSystemVersion.
    #[arg(long, value_name = "X.Y", default_value = "11.0")]
    pub min_os: String,
}

#[derive(Debug, Args)]
pub struct Preflight {
    /// The update channel (a [channels.*] table of the config).
    #[arg(long, default_value = "stable")]
    pub channel: String,
}

#[derive(Debug, Args)]
pub struct Publish {
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Print the plan with the equivalent commands; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct Verify {
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Download the fixed URL and hash what a client receives.
    #[arg(long)]
    pub deep: bool,
    /// Seconds to keep retrying failing sources (default: [verify] in the config).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct Release {
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// Run preflight and print the publish plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct Rollback {
    #[arg(long, default_value = "stable")]
    pub channel: String,
    /// The archived version to restore (default: the newest below the live one).
    #[arg(long, value_name = "X.Y.Z.W")]
    pub to: Option<String>,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
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
pub struct Init {
    /// Append the proposed entries to release.toml (files it lists already are kept as they are).
    #[arg(long)]
    pub write: bool,
    /// The version to look for (default: the version file's).
    #[arg(long, value_name = "X.Y.Z.W")]
    pub version: Option<String>,
}

#[derive(Debug, Args)]
pub struct InstallHook {
    /// Replace a pre-push hook that this tool did not write.
    #[arg(long)]
    pub force: bool,
}
