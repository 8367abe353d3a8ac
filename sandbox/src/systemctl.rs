//! The VM's `systemctl` shim (the `nexy-vm-systemctl` binary, linked as
//! `DIR/vm-bin/systemctl`): `restart voice-assistant` restarts the stand-in service,
//! `is-active` and `status` tell its state (starting for a while after a
//! restart, failed when it could not start), every call is logged.

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
            let exit = crate::vm::faults_of(state)
                .service_fail
                .and_then(|f| f.restart_exit_code);
            match crate::vm::restart_service(state) {
                Ok(r) if r.failed && exit.is_some_and(|c| c != 0) => out(
                    exit.unwrap_or(1),
                    String::new(),
                    "Job for voice-assistant.service failed because the control process exited with error code.\nSee \"systemctl status voice-assistant.service\" and \"journalctl -xeu voice-assistant.service\" for details.\n".into(),
                ),
                Ok(_) => out(0, String::new(), String::new()),
                Err(e) => out(1, String::new(), format!("Job failed: {e:#}\n")),
            }
        }
        "is-active" => match current_state(state) {
            Some(crate::vm::ServiceState::Active) => out(0, "active\n".into(), String::new()),
            Some(s) => out(3, format!("{}\n", s.word()), String::new()),
            None => out(3, "inactive\n".into(), String::new()),
        },
        "status" => {
            let r = crate::vm::read_running(state).ok();
            let (code, active) = match current_state(state) {
                Some(crate::vm::ServiceState::Active) => (0, "active (running)"),
                Some(crate::vm::ServiceState::Activating) => (3, "activating (start)"),
                Some(crate::vm::ServiceState::Failed) => (3, "failed (Result: exit-code)"),
                None => (3, "inactive (dead)"),
            };
            out(
                code,
                format!(
                    "● voice-assistant.service - Nexy voice assistant\n     Loaded: loaded (/etc/systemd/system/voice-assistant.service; enabled)\n     Active: {active} version {}\n",
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

/// The service's state now; `None` before it ever ran.
fn current_state(state: &Path) -> Option<crate::vm::ServiceState> {
    let r = crate::vm::read_running(state).ok()?;
    Some(crate::vm::service_state(
        &r,
        &crate::vm::faults_of(state),
        crate::util::now_ms(),
    ))
}
