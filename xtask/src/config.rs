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
    /// The release lease held in GitHub (`lease.rs`).
    #[serde(default)]
    pub lease: LeaseConfig,
    /// Ed25519 signing of the DMG (Sparkle's `sparkle:edSignature`).
    #[serde(default)]
    pub signing: Option<SigningConfig>,
    /// When true, `publish --channel stable` is refused: stable only gets
    /// the exact bytes tested on beta, through `promote`.
    #[serde(default)]
    pub stable_requires_promote: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// The base64 public key, as in the app's `SUPublicEDKey`.
    pub public_key: String,
    /// A private key file outside the repository (or `NEXY_ED25519_KEY`).
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
}

/// The release lease (`lease.rs`): how long a lease lives without renewal,
/// how long a second run waits for it, and how often it asks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseConfig {
    /// A lease not renewed for this long (by GitHub's clock) is expired.
    #[serde(default = "default_lease_ttl")]
    pub ttl_secs: u64,
    /// How long a run waits for a lease held by another run.
    #[serde(default = "default_lease_wait")]
    pub wait_secs: u64,
    /// How often a waiting run asks GitHub (240 requests an hour at 15 s,
    /// well inside the 5,000 an hour of an authenticated token).
    #[serde(default = "default_lease_poll")]
    pub poll_secs: u64,
}

fn default_lease_ttl() -> u64 {
    600
}
fn default_lease_wait() -> u64 {
    900
}
fn default_lease_poll() -> u64 {
    15
}

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig {
            ttl_secs: default_lease_ttl(),
            wait_secs: default_lease_wait(),
            poll_secs: default_lease_poll(),
        }
    }
}

/// How long `verify` rides out the feed's caches (max-age 30-60 s) before
/// it declares a source wrong.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    #[serde(default = "default_verify_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_verify_interval")]
    pub interval_ms: u64,
}

fn default_verify_timeout() -> u64 {
    150
}

fn default_verify_interval() -> u64 {
    3000
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            timeout_secs: default_verify_timeout(),
            interval_ms: default_verify_interval(),
        }
    }
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

/// One template such as `SERVER_VERSION={version}` with the number of
/// matches the file must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRule {
    pub find: String,
    pub count: usize,
    #[serde(default)]
    pub first_only: bool,
    #[serde(default)]
    pub anywhere: bool,
    #[serde(default)]
    pub after: Option<String>,
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
        let config: Config = toml::from_str(&text).map_err(|e| {
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
                if rule.find.matches(VERSION_SLOT).count() != 1 {
                    problems.push(format!(
                        "version_files `{}`: template `{}` must hold {VERSION_SLOT} exactly once",
                        file.path, rule.find
                    ));
                }
                if rule.count == 0 {
                    problems.push(format!(
                        "version_files `{}`: template `{}` has count 0; state how many matches the file holds",
                        file.path, rule.find
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
mod tests {
    use super::*;

    fn repo_config_text() -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../release.toml");
        fs::read_to_string(path).unwrap()
    }

    fn parse(text: &str) -> Result<Config> {
        let config: Config = toml::from_str(text)?;
        config.validate()?;
        Ok(config)
    }

    #[test]
    fn repository_config_is_valid() {
        let config = parse(&repo_config_text()).unwrap();
        assert_eq!(config.azure.resource_group, CANONICAL_RESOURCE_GROUP);
        assert_eq!(config.stable().unwrap().dmg_tag, "Update");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = repo_config_text().replace("[azure]\n", "[azure]\nresource_gruop = \"x\"\n");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("resource_gruop"), "{err}");
    }

    #[test]
    fn legacy_targets_are_refused_naming_the_canonical_ones() {
        let text = repo_config_text()
            .replace("\"NexyNewRG\"", "\"NetworkWatcherRG\"")
            .replace("vm_name = \"NexyNew\"", "vm_name = \"nexy-regular\"");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(
            err.contains("NetworkWatcherRG") && err.contains("NexyNewRG"),
            "{err}"
        );
        assert!(
            err.contains("nexy-regular") && err.contains("`NexyNew`"),
            "{err}"
        );
    }

    #[test]
    fn fetch_url_rewrites_only_with_a_download_base() {
        let mut gh = parse(&repo_config_text()).unwrap().github;
        let url = "https://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg";
        assert_eq!(gh.fetch_url(url), url);
        gh.download_base = Some("http://127.0.0.1:9/".into());
        assert_eq!(
            gh.fetch_url(url),
            "http://127.0.0.1:9/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg"
        );
    }

    #[test]
    fn fixed_urls_must_match_repo_and_tag() {
        let text =
            repo_config_text().replace("download/Update/Nexy.dmg", "download/Latest/Nexy.dmg");
        let err = format!("{:#}", parse(&text).unwrap_err());
        assert!(err.contains("channels.stable.dmg_url"), "{err}");
    }
}
