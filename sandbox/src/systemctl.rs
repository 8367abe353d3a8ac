//! The VM's `systemctl` shim (the az stand-in binary invoked as
//! `systemctl`): `restart voice-assistant` restarts the stand-in service,
//! every call is logged.

use crate::outcome::{out, Outcome};
use crate::reqlog::LoggedRequest;
use std::path::Path;

/// The VM's `systemctl` shim. `args` excludes argv[0].
pub fn systemctl_main(args: &[String], state: Option<&Path>) -> Outcome {
    let Some(state) = state else {
        return out(
            1,
            String::new(),
            "systemctl shim: NEXY_SANDBOX_STATE not set\n".into(),
        );
    };
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let verb = words.first().copied().unwrap_or("");
    let units: Vec<&str> = words.iter().skip(1).copied().collect();
    let known = |u: &str| u.trim_end_matches(".service") == crate::vm::SERVICE;
    let o = match verb {
        "daemon-reload" | "" => out(0, String::new(), String::new()),
        _ if units.is_empty() => out(1, String::new(), "Too few arguments.\n".to_string()),
        _ if !units.iter().all(|u| known(u)) => {
            let bad = units.iter().find(|u| !known(u)).copied().unwrap_or("");
            let unit = if bad.ends_with(".service") {
                bad.to_string()
            } else {
                format!("{bad}.service")
            };
            let what = match verb {
                "is-active" => return out(4, "inactive\n".into(), String::new()),
                v => v,
            };
            out(
                5,
                String::new(),
                format!("Failed to {what} {unit}: Unit {unit} not found.\n"),
            )
        }
        "restart" | "start" | "reload-or-restart" | "try-restart" | "reload" => {
            match crate::vm::restart_service(state) {
                Ok(_) => out(0, String::new(), String::new()),
                Err(e) => out(1, String::new(), format!("Job failed: {e:#}\n")),
            }
        }
        "is-active" => out(0, "active\n".into(), String::new()),
        "status" => {
            let r = crate::vm::read_running(state).ok();
            out(
                0,
                format!(
                    "● voice-assistant.service - Nexy voice assistant\n     Loaded: loaded (/etc/systemd/system/voice-assistant.service; enabled)\n     Active: active (running) version {}\n",
                    r.map(|r| r.version).unwrap_or_default()
                ),
                String::new(),
            )
        }
        "stop" | "enable" | "disable" => out(0, String::new(), String::new()),
        other => out(1, String::new(), format!("Unknown command verb {other}.\n")),
    };
    let mut entry = LoggedRequest::new(
        "systemctl",
        verb,
        &format!("systemctl {}", args.join(" ")),
        o.code as i64,
        b"",
    );
    entry.command = Some(
        std::iter::once("systemctl".to_string())
            .chain(args.iter().cloned())
            .collect(),
    );
    if let Err(e) = entry.append_to(&state.join("requests.jsonl")) {
        eprintln!("systemctl shim: log: {e:#}");
    }
    o
}
