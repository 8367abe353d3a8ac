//! Running a script in the VM's root, for the Azure stand-in's
//! run-command, and the VM's `systemctl` shim.
//!
//! VM path mapping: when running as root with `unshare` available, the script
//! runs in a private mount namespace where a tmpfs covers `/home` and the
//! state's `vm/home/azureuser/voice-assistant` is bind-mounted at
//! `/home/azureuser/voice-assistant`, so scripts see the real absolute path
//! (also through `cd`, `readlink -f`, `$PWD`, globbing). Nothing changes
//! outside the namespace. Otherwise (not root, no unshare, or a state dir under
//! `/home` that the tmpfs would hide) the path is rewritten in the script text,
//! which is less faithful (paths built at run time are missed).

use crate::reqlog::LoggedRequest;
use anyhow::{Context, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Real run-command keeps this many bytes of each stream.
pub const TAIL_BYTES: u64 = 4096;

/// What the shim prints and how it exits.
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

fn out(code: i32, stdout: String, stderr: String) -> Outcome {
    Outcome {
        code,
        stdout,
        stderr,
    }
}

fn tail(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let len = f.metadata().context("stat")?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .context("seek")?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).context("read tail")?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Whether the namespace mapping can be used here (Linux, as root, with
/// util-linux's unshare).
#[cfg(target_os = "linux")]
fn can_use_namespace(state: &Path) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && !state.starts_with("/home")
        && Path::new("/usr/bin/unshare").exists()
        && std::env::var_os("NEXY_SANDBOX_NO_NAMESPACE").is_none()
}

/// macOS has no mount namespaces: the VM's paths in a script are mapped
/// to the state directory instead, as for a non-root user on Linux.
#[cfg(not(target_os = "linux"))]
fn can_use_namespace(_state: &Path) -> bool {
    false
}

const NS_INIT: &str = r#"set -e
mount -t tmpfs -o mode=755 nexy-vm-home /home
mkdir -p /home/azureuser/voice-assistant
mount --bind "$1" /home/azureuser/voice-assistant
set +e
exec /bin/bash "$2"
"#;

/// Run the script as the VM's root would; returns the tails of stdout/stderr.
pub fn execute(state: &Path, script: &str) -> Result<(String, String)> {
    execute_with(state, script, can_use_namespace(state))
}

/// `execute`, saying whether the mount namespace may be used (`false`: the
/// path is rewritten in the script text).
pub fn execute_with(state: &Path, script: &str, use_ns: bool) -> Result<(String, String)> {
    let app = crate::vm::app_dir(state);
    std::fs::create_dir_all(&app).with_context(|| format!("mkdir {}", app.display()))?;
    let run_dir: PathBuf = state.join("vm").join("run-command").join(format!(
        "{}-{}",
        crate::util::now_ms(),
        std::process::id()
    ));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("mkdir {}", run_dir.display()))?;
    let text = if use_ns {
        script.to_string()
    } else {
        script.replace(crate::vm::VM_APP_DIR, &app.display().to_string())
    };
    let script_path = run_dir.join("script.sh");
    std::fs::write(&script_path, &text).context("write script")?;
    let out_path = run_dir.join("stdout");
    let err_path = run_dir.join("stderr");
    let stdout = std::fs::File::create(&out_path).context("create stdout")?;
    let stderr = std::fs::File::create(&err_path).context("create stderr")?;
    let mut cmd = if use_ns {
        let mut c = Command::new("/usr/bin/unshare");
        c.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/bash",
            "-c",
        ])
        .arg(NS_INIT)
        .arg("nexy-vm")
        .arg(&app)
        .arg(&script_path);
        c
    } else {
        let mut c = Command::new("/bin/bash");
        c.arg(&script_path);
        c
    };
    // A VM's root environment, with the systemctl shim first on PATH; the
    // shim needs NEXY_SANDBOX_STATE to find the service state.
    cmd.env_clear()
        .env(
            "PATH",
            format!(
                "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                state.join("vm-bin").display()
            ),
        )
        .env("HOME", "/root")
        .env("USER", "root")
        .env("LANG", "C.UTF-8")
        .env("NEXY_SANDBOX_STATE", state)
        .current_dir(&run_dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    let mut child = cmd.spawn().context("spawn script")?;
    let limit = Duration::from_secs(
        std::env::var("NEXY_SANDBOX_RUN_COMMAND_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600),
    );
    let start = Instant::now();
    loop {
        if child.try_wait().context("wait script")?.is_some() {
            break;
        }
        if start.elapsed() > limit {
            // SAFETY: kill the process group we created for the script.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let _ = child.wait();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&err_path)
                .context("open stderr")?;
            writeln!(f, "nexy-sandbox: script killed after {}s", limit.as_secs())
                .context("note timeout")?;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok((tail(&out_path)?, tail(&err_path)?))
}

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
