//! The sandbox VM's files and its `voice-assistant` service.
//!
//! `DIR/vm/home/azureuser/voice-assistant` is what the VM's
//! `/home/azureuser/voice-assistant` shows to scripts run through `az`. The
//! running service's version is what `config.env` said at the last
//! `systemctl restart voice-assistant`, recorded in `DIR/feed/running.json`:
//! editing `config.env` alone changes nothing the feed serves, as in production.
//!
//! A restart is not instant (the `restart_down_ms` fault: the service is
//! `activating` and the feed answers 502 for that long), and a service can
//! fail to start with a given config (the `service_fail` fault: it stays
//! `failed` until a restart with another config), so that a sync's wait and
//! its restore are exercised against something that can go wrong.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the VM's service directory lives on the real VM.
pub const VM_APP_DIR: &str = "/home/azureuser/voice-assistant";
/// The initial version of a fresh sandbox (the release the layout was read at).
pub const INITIAL_VERSION: &str = "2.0.0.32";
pub const SERVICE: &str = "voice-assistant";

pub fn app_dir(state: &Path) -> PathBuf {
    state.join("vm/home/azureuser/voice-assistant")
}

pub fn manifest_path(state: &Path) -> PathBuf {
    app_dir(state).join("server/updates/manifests/manifest.json")
}

pub fn running_path(state: &Path) -> PathBuf {
    state.join("feed").join("running.json")
}

/// The service as last (re)started.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Running {
    pub version: String,
    pub build: String,
    pub restarted_ms: u64,
    pub previous_version: String,
    pub previous_build: String,
    /// The last restart did not bring the service up (the `service_fail`
    /// fault matched the config it read).
    #[serde(default)]
    pub failed: bool,
}

/// What `systemctl is-active voice-assistant` would say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceState {
    Active,
    /// Within `restart_down_ms` of a restart.
    Activating,
    Failed,
}

impl ServiceState {
    /// The word `systemctl is-active` prints.
    pub fn word(self) -> &'static str {
        match self {
            ServiceState::Active => "active",
            ServiceState::Activating => "activating",
            ServiceState::Failed => "failed",
        }
    }
}

/// The service's state `now_ms`, given the faults in force.
pub fn service_state(r: &Running, faults: &crate::Faults, now_ms: u64) -> ServiceState {
    if r.failed {
        ServiceState::Failed
    } else if now_ms.saturating_sub(r.restarted_ms) < faults.restart_down_ms {
        ServiceState::Activating
    } else {
        ServiceState::Active
    }
}

/// The faults as the separate `az`/`systemctl` processes see them.
pub fn faults_of(state: &Path) -> crate::Faults {
    crate::Faults::load(&state.join("faults.json")).unwrap_or_default()
}

/// `KEY=VALUE` lines (optional `export `, quotes stripped, `#` comments).
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

fn env_value(pairs: &[(String, String)], key: &str) -> Option<String> {
    // The last assignment wins, as when the file is sourced by a shell.
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

pub fn manifest_json(version: &str) -> String {
    let m = serde_json::json!({
        "version": version,
        "build": version,
        "artifact": {
            "type": "dmg",
            "url": "https://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg",
            "size": 275899820u64,
            "sha256": "0".repeat(64),
            "arch": "universal2",
            "min_os": "11.0",
            "ed25519": ""
        },
        "critical": false,
        "auto_install": true,
        "notes_url": "https://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg",
        "release_date": "2026-03-06T02:58:57.245806+00:00"
    });
    // Key order matters to the tools that rewrite this file; serde_json
    // without preserve_order would sort, so build the text by hand from a
    // fixed key list.
    let keys = [
        "version",
        "build",
        "artifact",
        "critical",
        "auto_install",
        "notes_url",
        "release_date",
    ];
    let art_keys = ["type", "url", "size", "sha256", "arch", "min_os", "ed25519"];
    let mut out = String::from("{\n");
    for (i, k) in keys.iter().enumerate() {
        let v = &m[*k];
        if *k == "artifact" {
            out.push_str("  \"artifact\": {\n");
            for (j, ak) in art_keys.iter().enumerate() {
                out.push_str(&format!(
                    "    \"{ak}\": {}{}\n",
                    v[*ak],
                    if j + 1 < art_keys.len() { "," } else { "" }
                ));
            }
            out.push_str(&format!(
                "  }}{}\n",
                if i + 1 < keys.len() { "," } else { "" }
            ));
        } else {
            out.push_str(&format!(
                "  \"{k}\": {v}{}\n",
                if i + 1 < keys.len() { "," } else { "" }
            ));
        }
    }
    out.push_str("}\n");
    out
}

/// Lay out a fresh VM (only files that are missing: state survives restarts).
pub fn init_vm(state: &Path) -> Result<()> {
    let app = app_dir(state);
    let manifests = app.join("server/updates/manifests");
    std::fs::create_dir_all(&manifests)
        .with_context(|| format!("mkdir {}", manifests.display()))?;
    let files = [
        (
            app.join("config.env"),
            format!(
                "GEMINI_API_KEY=sandbox-gemini-key\nSERVER_VERSION={INITIAL_VERSION}\nSERVER_BUILD={INITIAL_VERSION}\n"
            ),
        ),
        (app.join("VERSION"), format!("{INITIAL_VERSION}\n")),
        (manifests.join("manifest.json"), manifest_json(INITIAL_VERSION)),
        (
            manifests.join(format!("manifest_{INITIAL_VERSION}.json")),
            manifest_json(INITIAL_VERSION),
        ),
    ];
    for (p, text) in files {
        if !p.exists() {
            std::fs::write(&p, text).with_context(|| format!("write {}", p.display()))?;
        }
    }
    if !running_path(state).exists() {
        restart_service(state)?;
    }
    Ok(())
}

/// `systemctl restart voice-assistant`: the service re-reads `config.env`;
/// with the `service_fail` fault matching that config, it fails to start.
pub fn restart_service(state: &Path) -> Result<Running> {
    let cfg = app_dir(state).join("config.env");
    let text = std::fs::read_to_string(&cfg).unwrap_or_default();
    let pairs = parse_env_file(&text);
    let failed = faults_of(state)
        .service_fail
        .is_some_and(|f| !f.config_contains.is_empty() && text.contains(&f.config_contains));
    // A failed service serves nothing, so the version it was before is the
    // one a later restart moves from.
    let old = read_running(state).ok().filter(|o| !o.failed);
    let version = env_value(&pairs, "SERVER_VERSION").unwrap_or_default();
    let build = env_value(&pairs, "SERVER_BUILD").unwrap_or_else(|| version.clone());
    let r = Running {
        previous_version: old
            .as_ref()
            .map(|o| o.version.clone())
            .unwrap_or_else(|| version.clone()),
        previous_build: old
            .as_ref()
            .map(|o| o.build.clone())
            .unwrap_or_else(|| build.clone()),
        version,
        build,
        restarted_ms: crate::util::now_ms(),
        failed,
    };
    let text = serde_json::to_string_pretty(&r).context("serialise running")?;
    crate::util::write_atomic(&running_path(state), text.as_bytes())?;
    Ok(r)
}

pub fn read_running(state: &Path) -> Result<Running> {
    let p = running_path(state);
    let text = std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_parse() {
        let p = parse_env_file(
            "# c\nexport A=\"1\"\nSERVER_VERSION=2.0.0.33\nSERVER_VERSION='2.0.0.34'\n",
        );
        assert_eq!(env_value(&p, "A").as_deref(), Some("1"));
        assert_eq!(env_value(&p, "SERVER_VERSION").as_deref(), Some("2.0.0.34"));
    }

    #[test]
    fn a_restart_takes_time_and_can_fail_with_a_given_config() {
        let dir = std::env::temp_dir().join(format!(
            "nexy-sandbox-vm-test-{}-{}",
            std::process::id(),
            crate::util::now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let result = std::panic::catch_unwind(|| restart_cases(&dir));
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    }

    fn restart_cases(dir: &Path) {
        init_vm(dir).unwrap();
        let faults = crate::Faults {
            restart_down_ms: 60_000,
            service_fail: Some(crate::faults::ServiceFail {
                config_contains: "SERVER_VERSION=2.0.0.33".into(),
                restart_exit_code: None,
            }),
            ..crate::Faults::default()
        };
        faults.save(&dir.join("faults.json")).unwrap();
        let r = restart_service(dir).unwrap();
        assert_eq!(
            service_state(&r, &faults, r.restarted_ms + 1),
            ServiceState::Activating
        );
        assert_eq!(
            service_state(&r, &faults, r.restarted_ms + 60_000),
            ServiceState::Active
        );
        let cfg = app_dir(dir).join("config.env");
        std::fs::write(&cfg, "GEMINI_API_KEY=k\nSERVER_VERSION=2.0.0.33\n").unwrap();
        let r = restart_service(dir).unwrap();
        assert!(r.failed);
        assert_eq!(
            service_state(&r, &faults, r.restarted_ms + 60_000),
            ServiceState::Failed
        );
        // Back on the old config it starts, and remembers the version that
        // last ran, not the failed one.
        std::fs::write(&cfg, "GEMINI_API_KEY=k\nSERVER_VERSION=2.0.0.32\n").unwrap();
        let r = restart_service(dir).unwrap();
        assert!(!r.failed);
        assert_eq!(
            (r.version.as_str(), r.previous_version.as_str()),
            ("2.0.0.32", "2.0.0.32")
        );
    }

    #[test]
    fn manifest_is_ordered_json() {
        let t = manifest_json("1.2.3.4");
        assert!(t.starts_with("{\n  \"version\": \"1.2.3.4\",\n  \"build\""));
        let v: serde_json::Value = serde_json::from_str(&t).unwrap();
        assert_eq!(v["artifact"]["min_os"], "11.0");
    }
}
