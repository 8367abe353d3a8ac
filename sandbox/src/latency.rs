//! The latency profile of the stand-in: `fast` (tests: run-commands finish
//! at once, the POST answers once the script is done, so that az's first
//! poll, sent at once, finds the result; az is told to poll again after
//! 1 s should it not) or `production-like` (a
//! run-command stays InProgress 25 s and no Retry-After is sent, so az
//! polls as it does against Azure, every 30 s; GitHub API calls take a
//! round trip and uploads share a real link's bandwidth, `uplink.rs`). Every figure can be
//! set on its own (`--latency key=value` of `nexy-sandbox up`).

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Latency {
    pub name: String,
    /// `Retry-After` on the 202 and the polls; `None` sends none (az then
    /// waits 30 s between polls).
    pub retry_after_secs: Option<u64>,
    /// How long a run-command stays InProgress at least.
    pub run_command_ms: u64,
    /// The runCommand POST answers its 202 once the script has finished,
    /// waiting at most this long (0: at once, as Azure does). An instant
    /// VM's script is then done when az polls, which az does at once;
    /// otherwise az sleeps the whole `Retry-After` (whole seconds) and
    /// then up to 0.5 s more (its LongRunningOperation looks at the
    /// poller every 500 ms), twice what the run-command itself costs.
    pub post_waits_ms: u64,
    /// Added to every GitHub API/uploads request.
    pub github_rtt_ms: u64,
    /// Upload bandwidth in bytes per second, shared by the uploads in
    /// flight (0: unlimited).
    pub upload_bytes_per_sec: u64,
}

impl Default for Latency {
    fn default() -> Latency {
        Latency::fast()
    }
}

impl Latency {
    pub fn fast() -> Latency {
        Latency {
            name: "fast".into(),
            retry_after_secs: Some(1),
            run_command_ms: 0,
            post_waits_ms: 2_000,
            github_rtt_ms: 0,
            upload_bytes_per_sec: 0,
        }
    }

    pub fn production_like() -> Latency {
        Latency {
            name: "production-like".into(),
            retry_after_secs: None,
            run_command_ms: 25_000,
            post_waits_ms: 0,
            github_rtt_ms: 100,
            // 100 Mbit/s up, shared by the uploads in flight (`uplink.rs`).
            upload_bytes_per_sec: 12_500_000,
        }
    }

    pub fn named(name: &str) -> Result<Latency> {
        match name {
            "fast" => Ok(Latency::fast()),
            "production-like" => Ok(Latency::production_like()),
            other => bail!("unknown latency profile `{other}`; use `fast` or `production-like`"),
        }
    }

    /// Applies one `key=value` (`retry_after_secs=none` sends no header).
    pub fn set(&mut self, kv: &str) -> Result<()> {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--latency wants key=value, not `{kv}`"))?;
        let num = || {
            v.parse::<u64>()
                .with_context(|| format!("--latency {k}: `{v}` is not a number"))
        };
        match k {
            "retry_after_secs" => {
                self.retry_after_secs = if v == "none" { None } else { Some(num()?) }
            }
            "run_command_ms" => self.run_command_ms = num()?,
            "post_waits_ms" => self.post_waits_ms = num()?,
            "github_rtt_ms" => self.github_rtt_ms = num()?,
            "upload_bytes_per_sec" => self.upload_bytes_per_sec = num()?,
            other => bail!("unknown --latency key `{other}` (retry_after_secs, run_command_ms, post_waits_ms, github_rtt_ms, upload_bytes_per_sec)"),
        }
        self.name = format!("{}+custom", self.name.trim_end_matches("+custom"));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_overrides() {
        let mut p = Latency::named("production-like").unwrap();
        assert_eq!(p.retry_after_secs, None);
        assert_eq!(p.run_command_ms, 25_000);
        assert_eq!(p.post_waits_ms, 0);
        assert_eq!(p.github_rtt_ms, 100);
        assert_eq!(p.upload_bytes_per_sec, 12_500_000);
        p.set("run_command_ms=100").unwrap();
        assert_eq!(p.run_command_ms, 100);
        assert!(p.set("nope=1").is_err());
        assert!(Latency::named("slow").is_err());
        assert_eq!(Latency::default().retry_after_secs, Some(1));
        assert_eq!(Latency::default().post_waits_ms, 2_000);
    }
}
