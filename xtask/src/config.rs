//! The release target configuration (`release.toml`), typed.
//!
//! Everything the runbook calls the canonical release target lives in one
//! TOML file, parsed into these structs with unknown keys refused: a typo in
//! a key must fail loudly rather than fall back to a default that points a
//! release somewhere else. Which files carry the version is data here too,
//! so adding a file needs no Rust.

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

mod sections;
pub use sections::{
    AppConfig, LeaseConfig, SigningConfig, VerifyConfig, VmConfig, MAX_RESTART_WAIT_SECS,
};

/// The canonical production target; named in every legacy refusal.
pub const CANONICAL_RESOURCE_GROUP: &str = "NexyNewRG";
pub const CANONICAL_VM: &str = "NexyNew";
const LEGACY_RESOURCE_GROUPS: &[&str] = &["NetworkWatcherRG"];
const LEGACY_VMS: &[&str] = &["Nexy", "nexy-regular"];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file that owns the version, relative to the workspace root.
    pub version_file: String,
    /// The runbook whose `release_target:` block and marker must agree.
    pub guide: String,
    pub azure: Azure,
    pub server: Server,
    pub grpc: Grpc,
    pub github: Github,
    pub channels: BTreeMap<String, Channel>,
    #[serde(default)]
    pub version_files: Vec<VersionFile>,
    #[serde(default)]
    pub check: CheckConfig,
    #[serde(default)]
    pub verify: VerifyConfig,
    /// How a VM sync restarts the service and keeps manifest backups.
    #[serde(default)]
    pub vm: VmConfig,
    /// The release lease held in GitHub (`lease/`).
    #[serde(default)]
    pub lease: LeaseConfig,
    /// Ed25519 signing of the DMG (Sparkle's `sparkle:edSignature`).
    #[serde(default)]
    pub signing: Option<SigningConfig>,
    /// When true, `publish --channel stable` is refused: stable only gets
    /// the exact bytes tested on beta, through `promote`.
    #[serde(default)]
    pub stable_requires_promote: bool,
    /// What the app inside the artifacts must say (`[app]`).
    #[serde(default)]
    pub app: AppConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Azure {
    pub resource_group: String,
    pub vm_name: String,
    pub remote_base: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub host: String,
    pub base_url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grpc {
    pub endpoint: String,
    pub tls: bool,
    /// Extra CA certificates (PEM) to trust, for a stand-in with its own CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Where to connect instead of the endpoint's own address (`host:port`),
    /// keeping the endpoint's name for TLS, like curl's `--connect-to`.
    #[serde(default)]
    pub connect: Option<String>,
    /// How long the deploy check's gRPC call may take, in milliseconds.
    #[serde(default = "default_grpc_timeout")]
    pub timeout_ms: u64,
}

fn default_grpc_timeout() -> u64 {
    10_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Github {
    pub host: String,
    pub assets_repo: String,
    pub code_repo: String,
    /// Where the fixed public URLs are fetched from when that is not their
    /// own origin (`https://github.com`): the local stand-in. The URLs in
    /// the manifest stay the production ones.
    #[serde(default)]
    pub download_base: Option<String>,
}

impl Github {
    /// The URL to fetch for a fixed public URL.
    pub fn fetch_url(&self, url: &str) -> String {
        match (&self.download_base, url.split_once("://")) {
            (Some(base), Some((_, rest))) => {
                let path = rest.find('/').map_or("", |i| &rest[i..]);
                format!("{}{path}", base.trim_end_matches('/'))
            }
            _ => url.to_string(),
        }
    }
}

/// One update channel: its fixed tags, fixed URLs and manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    pub dmg_tag: String,
    pub pkg_tag: String,
    pub manifest: String,
    pub dmg_url: String,
    pub pkg_url: String,
}

/// A file that carries the version, and the edits that keep it in sync.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionFile {
    pub path: String,
    pub edits: Vec<EditRule>,
}

/// One edit of a linked file: which values carry the version (exactly one
/// of `find`, `yaml` or `env`) and how many the file must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRule {
    /// A literal template such as `**Release:** `v{version}``.
    #[serde(default)]
    pub find: Option<String>,
    /// A YAML key path such as `server.version`: the value of that key,
    /// unquoted, single- or double-quoted.
    #[serde(default)]
    pub yaml: Option<String>,
    /// An env-file key such as `SERVER_VERSION`: the value of its
    /// uncommented `KEY=` lines.
    #[serde(default)]
    pub env: Option<String>,
    pub count: usize,
    /// "Zero or `count`": a file without the value is fine, any other
    /// number is still an error.
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub first_only: bool,
    #[serde(default)]
    pub anywhere: bool,
    #[serde(default)]
    pub after: Option<String>,
}

/// What an edit looks for, once the rule is known to be well formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditKind<'a> {
    Template(&'a str),
    Yaml(&'a str),
    Env(&'a str),
}

impl EditRule {
    /// The kind of this edit, or why the rule is malformed.
    pub fn kind(&self) -> Result<EditKind<'_>, String> {
        let kind = match (&self.find, &self.yaml, &self.env) {
            (Some(find), None, None) => {
                if find.matches(VERSION_SLOT).count() != 1 {
                    return Err(format!(
                        "template `{find}` must hold {VERSION_SLOT} exactly once"
                    ));
                }
                return Ok(EditKind::Template(find));
            }
            (None, Some(key), None) => {
                if key.split('.').any(|part| part.trim().is_empty()) {
                    return Err(format!(
                        "YAML key path `{key}` has an empty part; write it as `server.version`"
                    ));
                }
                EditKind::Yaml(key)
            }
            (None, None, Some(key)) => {
                let ok = key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    return Err(format!(
                        "env key `{key}` is not a variable name such as SERVER_VERSION"
                    ));
                }
                EditKind::Env(key)
            }
            _ => {
                return Err(
                    "an edit needs exactly one of `find` (a template), `yaml` (a key path) or `env` (a variable)"
                        .to_string(),
                )
            }
        };
        if self.anywhere || self.after.is_some() {
            return Err("`anywhere` and `after` apply to `find` templates only".to_string());
        }
        Ok(kind)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    #[serde(default)]
    pub secret_allowlist: Vec<AllowEntry>,
}

/// A secret-scan finding known to be harmless.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    /// A file path, or a directory when it ends with `/`.
    pub path: String,
    /// A rule id such as `github-token`; all rules when absent.
    #[serde(default)]
    pub rule: Option<String>,
}

/// The placeholder that stands for "the version" in edit templates.
pub const VERSION_SLOT: &str = "{version}";

impl Config {
    /// Reads and validates the configuration at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the release config {}; pass --config FILE or run from the Nexy workspace",
                path.display()
            )
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates a configuration's text; `path` names it in
    /// errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let config: Config = toml::from_str(text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a valid release config: {}",
                path.display(),
                e.to_string().trim_end()
            )
        })?;
        config
            .validate()
            .with_context(|| format!("invalid release config {}", path.display()))?;
        Ok(config)
    }

    /// Refuses legacy targets and inconsistent channel data; all problems
    /// are reported together.
    fn validate(&self) -> Result<()> {
        let mut problems = Vec::new();
        if LEGACY_RESOURCE_GROUPS.contains(&self.azure.resource_group.as_str()) {
            problems.push(format!(
                "azure.resource_group `{}` is a legacy target; use the canonical `{CANONICAL_RESOURCE_GROUP}`",
                self.azure.resource_group
            ));
        }
        if LEGACY_VMS.contains(&self.azure.vm_name.as_str()) {
            problems.push(format!(
                "azure.vm_name `{}` is a legacy VM; use the canonical `{CANONICAL_VM}` (resource group `{CANONICAL_RESOURCE_GROUP}`)",
                self.azure.vm_name
            ));
        }
        if !self.azure.remote_base.starts_with('/') {
            problems.push(format!(
                "azure.remote_base `{}` must be an absolute path on the VM",
                self.azure.remote_base
            ));
        }
        if !(1..=MAX_RESTART_WAIT_SECS).contains(&self.vm.restart_wait_secs) {
            problems.push(format!(
                "vm.restart_wait_secs {} must be between 1 and {MAX_RESTART_WAIT_SECS}",
                self.vm.restart_wait_secs
            ));
        }
        if self.vm.backups_keep == 0 {
            problems.push(
                "vm.backups_keep 0 would delete every manifest backup; keep at least 1".to_string(),
            );
        }
        for (key, url) in [
            ("vm.health_url", &self.vm.health_url),
            ("vm.feed_health_url", &self.vm.feed_health_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                problems.push(format!("{key} `{url}` must be an http(s) URL"));
            }
        }
        if !(self.server.base_url.starts_with("https://")
            || self.server.base_url.starts_with("http://"))
        {
            problems.push(format!(
                "server.base_url `{}` must be an http(s) URL",
                self.server.base_url
            ));
        }
        if self.github.host.is_empty() || self.github.host.contains('/') {
            problems.push(format!(
                "github.host `{}` must be a bare host name such as github.com",
                self.github.host
            ));
        }
        if self.github.assets_repo == self.github.code_repo {
            problems.push(format!(
                "github.assets_repo and github.code_repo are both `{}`; assets and code never share a repository",
                self.github.assets_repo
            ));
        }
        if self.channels.is_empty() {
            problems.push("no [channels.*] table; add [channels.stable]".to_string());
        }
        for (name, ch) in &self.channels {
            for (key, url, tag, asset) in [
                ("dmg_url", &ch.dmg_url, &ch.dmg_tag, "Nexy.dmg"),
                ("pkg_url", &ch.pkg_url, &ch.pkg_tag, "Nexy.pkg"),
            ] {
                let tail = format!(
                    "/{}/releases/download/{tag}/{asset}",
                    self.github.assets_repo
                );
                if !url.ends_with(&tail) {
                    problems.push(format!(
                        "channels.{name}.{key} `{url}` must end with `{tail}` (the assets repository and the channel's fixed tag)"
                    ));
                }
            }
        }
        for file in &self.version_files {
            for rule in &file.edits {
                if let Err(why) = rule.kind() {
                    problems.push(format!("version_files `{}`: {why}", file.path));
                }
                if rule.count == 0 {
                    problems.push(format!(
                        "version_files `{}`: an edit has count 0; state how many matches the file holds (with `optional = true` for \"none or that many\")",
                        file.path
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", problems.join("\n"))
        }
    }

    /// The stable channel, which `bump` and `check` keep in sync.
    pub fn stable(&self) -> Result<&Channel> {
        self.channels
            .get("stable")
            .context("the release config has no [channels.stable]; add it")
    }
}

/// Where the workspace is: `--root`, or the nearest directory at or above
/// the current one that holds `release.toml`.
pub fn find_root(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(root) = explicit {
        if !root.is_dir() {
            bail!("--root {} is not a directory", root.display());
        }
        return Ok(root.to_path_buf());
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    cwd.ancestors()
        .find(|dir| dir.join("release.toml").is_file())
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "no release.toml in {} or above; run inside the Nexy workspace or pass --root DIR",
                cwd.display()
            )
        })
}

/// The workspace a command works on: its root and its release target.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
    /// The file the config was read from (the stand-in's config is
    /// derived from it, `keygen` writes the public key into it).
    pub config_path: PathBuf,
    pub config: Config,
}

impl Workspace {
    /// Finds the root and loads the configuration named by `--root` and
    /// `--config` (default `ROOT/release.toml`).
    pub fn load(root: Option<&Path>, config: Option<&Path>) -> Result<Workspace> {
        let root = find_root(root)?;
        let config_path = config.map_or_else(|| root.join("release.toml"), Path::to_path_buf);
        let config = Config::load(&config_path)?;
        Ok(Workspace {
            root,
            config_path,
            config,
        })
    }

    /// The channel named on the command line.
    pub fn channel(&self, name: &str) -> Result<&Channel> {
        self.config.channels.get(name).with_context(|| {
            let known: Vec<&str> = self.config.channels.keys().map(String::as_str).collect();
            format!(
                "unknown channel `{name}`; the config has {}",
                known.join(", ")
            )
        })
    }

    /// Where a channel's artifacts are dropped: `release_inbox/` for
    /// stable, `release_inbox/<channel>/` for the others.
    pub fn inbox_dir(&self, channel: &str) -> PathBuf {
        let inbox = PathBuf::from(INBOX);
        if channel == "stable" {
            inbox
        } else {
            inbox.join(channel)
        }
    }
}

/// The inbox directory, relative to the workspace root.
pub const INBOX: &str = "release_inbox";

#[cfg(test)]
mod tests;
