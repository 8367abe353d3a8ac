//! The optional sections of `release.toml` (`[app]`, `[signing]`,
//! `[lease]`, `[verify]`, `[vm]`), each with its defaults: the tuning a
//! release target may leave out. Kept apart from `config.rs`, which holds
//! the target itself and its validation.

use std::path::PathBuf;

use serde::Deserialize;

/// The app bundle inside Nexy.dmg and Nexy.pkg, as preflight checks it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// `CFBundleIdentifier` of the app.
    #[serde(default = "default_bundle_id")]
    pub bundle_id: String,
    /// What `CFBundleShortVersionString` must be for VERSION X.Y.Z.W:
    /// `{version}` (the whole version, the default) or a template of
    /// `{major}`, `{minor}`, `{patch}`, `{build}` such as
    /// `{major}.{minor}.{patch}`.
    #[serde(default = "default_version_template")]
    pub short_version: String,
    /// The same for `CFBundleVersion`.
    #[serde(default = "default_version_template")]
    pub build_version: String,
    /// The Developer ID Team ID; when set, an executable not signed by
    /// this team is an error, not a warning.
    #[serde(default)]
    pub team_id: Option<String>,
}

fn default_bundle_id() -> String {
    "com.nexy.assistant".to_string()
}

fn default_version_template() -> String {
    "{version}".to_string()
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            bundle_id: default_bundle_id(),
            short_version: default_version_template(),
            build_version: default_version_template(),
            team_id: None,
        }
    }
}

impl AppConfig {
    fn render(template: &str, v: &crate::version::Version) -> String {
        let [a, b, c, d] = v.0;
        template
            .replace("{version}", &v.to_string())
            .replace("{major}", &a.to_string())
            .replace("{minor}", &b.to_string())
            .replace("{patch}", &c.to_string())
            .replace("{build}", &d.to_string())
    }

    pub fn short_version_for(&self, v: &crate::version::Version) -> String {
        Self::render(&self.short_version, v)
    }

    pub fn build_version_for(&self, v: &crate::version::Version) -> String {
        Self::render(&self.build_version, v)
    }
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

/// The release lease (`lease/`): how long a lease lives without renewal,
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

/// The VM sync's restart and backups (`[vm]`). The URLs are the service's
/// own ports as seen on the VM (not through nginx), which the sync script
/// asks after a restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VmConfig {
    /// How long a restart may take to answer with the new version.
    pub restart_wait_secs: u64,
    /// How many `manifest.json.backup.<time>` files to keep per manifest.
    pub backups_keep: u32,
    /// The service's `/health` on the VM.
    pub health_url: String,
    /// The feed's `/updates/health` on the VM.
    pub feed_health_url: String,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            restart_wait_secs: 30,
            backups_keep: 20,
            health_url: "http://127.0.0.1:8080/health".into(),
            feed_health_url: "http://127.0.0.1:8081/updates/health".into(),
        }
    }
}

/// The longest restart wait accepted: the sync script waits at most twice
/// this (the restart, then the restore) inside one run-command, after up
/// to 60 s for the manifest lock, and az's run-command is given 300 s.
pub const MAX_RESTART_WAIT_SECS: u64 = 90;
