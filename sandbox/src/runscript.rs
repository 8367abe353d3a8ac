//! Running a run-command script as the VM's root would: in a private mount
//! namespace where the VM's service directory sits at its real path (or,
//! where that cannot be had, with the path rewritten in the script), with a
//! VM's environment, bounded, keeping the last 4,096 bytes of each stream
//! as real run-command does.

use anyhow::{Context, Result};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Real run-command keeps this many bytes of each stream.
pub const TAIL_BYTES: u64 = 4096;

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
