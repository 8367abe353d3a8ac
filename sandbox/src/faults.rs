//! Fault knobs that tests switch on to see how a tool copes with a flaky
//! GitHub, Azure or update feed.
//!
//! The set of faults is persisted as `DIR/faults.json` so that a restarted
//! stand-in (and a reader of the state dir) sees the same knobs.
//! Counters that say "the Nth upload" live in the server and restart from zero
//! every time the faults are replaced, so a test can reason about "the next
//! upload" without knowing what happened before.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Every knob is optional; an empty object `{}` means "no faults".
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Uploads number `nth` .. `nth+count-1` (1-based, counted from when the
    /// faults were set) answer `status` (a 5xx) after the body was read.
    pub upload_fail: Option<UploadFail>,
    /// Upload number `nth` is cut short: the server reads `after_bytes` of the
    /// body and drops the connection, leaving an asset in state `starter`.
    pub upload_cut: Option<UploadCut>,
    /// Requests whose method matches (any when absent) and whose absolute URL
    /// contains `path_contains` are held `ms` milliseconds before handling.
    pub delays: Vec<Delay>,
    /// For this many seconds after `systemctl restart voice-assistant` the feed's
    /// `/health` and `/status` keep answering the version from before the restart.
    pub feed_stale_secs: u64,
    /// For this many milliseconds after `systemctl restart voice-assistant` the
    /// service is still starting: `systemctl is-active` says `activating`, and
    /// the feed (`/health`, `/status`, `/updates/*`, public and VM-local)
    /// answers 502, as nginx does while its upstream is down.
    pub restart_down_ms: u64,
    /// The service fails to start with a given config: a restart while
    /// `config.env` holds this text leaves it `failed` until the next restart.
    pub service_fail: Option<ServiceFail>,
    /// Azure's run-command POST is held this long before it is answered
    /// (the script has not started; capped at 600 s).
    pub az_hang_ms: u64,
    /// How Azure misbehaves (see `crate::azure_faults`).
    pub azure: crate::azure_faults::AzureFaults,
    /// Asset downloads (API and public/storage URLs) send the full
    /// Content-Length but only `after_bytes` of body, then close.
    pub download_drop: Option<DownloadDrop>,
    /// For this many seconds after an asset of a name changes (deleted, uploaded,
    /// renamed), the public download URL keeps serving the previous bytes.
    pub download_stale_secs: u64,
    /// Requests matching a rule answer its `status` (GitHub's JSON error)
    /// without being handled, as a GitHub front end failing one call does.
    pub fails: Vec<Fail>,
    /// How the gRPC service behind the TLS front answers (see `grpc.rs`).
    pub grpc: Option<GrpcFault>,
    /// A second valid token, of the account `nexy-reader`, that can read the
    /// repositories but not write to them (a fine-grained token with
    /// `Contents: read`; see `tokens`).
    pub read_only_token: Option<String>,
}

/// A request that fails: `method` (any when absent), `path_contains` in
/// the absolute URL and, when set, `body_contains` in the body; `times`
/// times after the faults were set (every time when absent).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Fail {
    #[serde(default)]
    pub method: Option<String>,
    pub path_contains: String,
    #[serde(default)]
    pub body_contains: Option<String>,
    pub status: u16,
    #[serde(default)]
    pub times: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UploadFail {
    pub nth: u32,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default = "bad_gateway")]
    pub status: u16,
}

/// The service fails to start while `config.env` contains `config_contains`
/// (say `SERVER_VERSION=2.0.0.6`). A `Type=simple` unit's restart still
/// exits 0 (the process starts, then dies); with `restart_exit_code` set,
/// `systemctl restart` exits with it as when the start job itself fails.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceFail {
    pub config_contains: String,
    #[serde(default)]
    pub restart_exit_code: Option<i32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UploadCut {
    pub nth: u32,
    #[serde(default)]
    pub after_bytes: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Delay {
    #[serde(default)]
    pub method: Option<String>,
    pub path_contains: String,
    pub ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DownloadDrop {
    pub after_bytes: u64,
    #[serde(default)]
    pub times: Option<u32>,
}

fn one() -> u32 {
    1
}
fn bad_gateway() -> u16 {
    502
}

/// Upper bound for any sleep a fault asks for: every wait must stay bounded.
pub const MAX_SLEEP_MS: u64 = 600_000;

impl Faults {
    pub fn load(path: &Path) -> Result<Faults> {
        if !path.exists() {
            return Ok(Faults::default());
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        if text.trim().is_empty() {
            return Ok(Faults::default());
        }
        serde_json::from_str(&text).with_context(|| format!("parse faults {}", path.display()))
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).context("serialise faults")?;
        crate::util::write_atomic(path, text.as_bytes())
    }

    /// The first `fails` rule that matches a request, by index.
    pub fn fail_for(&self, method: &str, url: &str, body: &[u8]) -> Option<usize> {
        self.fails.iter().position(|f| {
            f.method
                .as_deref()
                .map(|m| m.eq_ignore_ascii_case(method))
                .unwrap_or(true)
                && url.contains(&f.path_contains)
                && f.body_contains
                    .as_deref()
                    .is_none_or(|needle| String::from_utf8_lossy(body).contains(needle))
        })
    }

    /// The delay (ms) that applies to a request, summed over matching rules.
    pub fn delay_for(&self, method: &str, url: &str) -> u64 {
        let total: u64 = self
            .delays
            .iter()
            .filter(|d| {
                d.method
                    .as_deref()
                    .map(|m| m.eq_ignore_ascii_case(method))
                    .unwrap_or(true)
                    && url.contains(&d.path_contains)
            })
            .map(|d| d.ms)
            .sum();
        total.min(MAX_SLEEP_MS)
    }
}

/// How the service behind the TLS front answers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct GrpcFault {
    #[serde(default)]
    pub answer: GrpcAnswer,
    /// `grpc-status` for `answer: status` (3 INVALID_ARGUMENT, 12
    /// UNIMPLEMENTED, 14 UNAVAILABLE, ...).
    #[serde(default)]
    pub status: u32,
    #[serde(default)]
    pub message: String,
    /// The answer is held this long (a slow or hung service).
    #[serde(default)]
    pub delay_ms: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum GrpcAnswer {
    /// The service answers the call.
    #[default]
    Normal,
    /// `voice-assistant` is down and nginx, still up, answers with its
    /// gRPC error page (the nginx documentation's `error_page 502` setup):
    /// HTTP 204, trailers-only, `grpc-status: 14`.
    Down,
    /// `voice-assistant` is down and nginx has no gRPC error page: HTTP
    /// 502 with nginx's HTML body.
    BadGateway,
    /// The front answers a web page (HTTP 200, text/html) where the gRPC
    /// route should be, as nginx's default site does.
    Html,
    /// The service answers `status` and `message` (trailers-only).
    Status,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_shape() {
        let f: Faults = serde_json::from_str(
            r#"{"upload_fail":{"nth":1,"count":4,"status":503},
                "upload_cut":{"nth":2,"after_bytes":10},
                "delays":[{"method":"GET","path_contains":"/releases/tags/","ms":5}],
                "feed_stale_secs":3,"azure":{"busy":{"times":1},"post_error":{"status":500}},
                "az_hang_ms":10,"download_drop":{"after_bytes":7},
                "restart_down_ms":1500,"service_fail":{"config_contains":"SERVER_VERSION=2.0.0.6"},
                "download_stale_secs":4}"#,
        )
        .unwrap();
        assert_eq!(f.upload_fail.as_ref().unwrap().count, 4);
        assert_eq!(f.restart_down_ms, 1500);
        assert_eq!(f.service_fail.as_ref().unwrap().restart_exit_code, None);
        assert_eq!(f.delay_for("get", "http://x/releases/tags/Update"), 5);
        assert_eq!(f.delay_for("POST", "http://x/releases/tags/Update"), 0);
        assert!(serde_json::from_str::<Faults>(r#"{"nope":1}"#).is_err());
        let f: Faults = serde_json::from_str(
            r#"{"fails":[{"method":"PATCH","path_contains":"/releases/assets/",
                "body_contains":"\"name\":\"Nexy.dmg\"}","status":502,"times":1}]}"#,
        )
        .unwrap();
        let url = "http://api.github.localhost/repos/O/R/releases/assets/7";
        assert_eq!(f.fail_for("PATCH", url, br#"{"name":"Nexy.dmg"}"#), Some(0));
        assert_eq!(
            f.fail_for("PATCH", url, br#"{"name":"Nexy.dmg.prev-1"}"#),
            None
        );
        assert_eq!(f.fail_for("DELETE", url, b""), None);
    }
}
