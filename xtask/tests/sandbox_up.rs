//! `cargo xtask sandbox up` as a user runs it: the stand-in starts, writes
//! its release target and env, answers the real gh, and stops on a signal.

mod common;

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// A running `sandbox up` that a failing assertion cannot leave behind:
/// dropped before it was stopped (a panic unwinding the test), it kills
/// the process group of `sandbox up` and the stand-in it started (which
/// runs in a group of its own), and reaps `sandbox up`.
struct Up {
    child: Child,
    state: PathBuf,
}

impl Up {
    /// The stand-in's pid as `sandbox up` recorded it, when it has.
    fn stand_in_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.state.join("sandbox.json")).ok()?;
        let info: serde_json::Value = serde_json::from_str(&text).ok()?;
        Some(info["pid"].as_u64()? as u32)
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        // The group of `sandbox up` only while it is not reaped: after
        // that its id may name another process's group.
        if matches!(self.child.try_wait(), Ok(None)) {
            let group = format!("-{}", self.child.id());
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &group])
                .status();
            let _ = self.child.wait();
        }
        // Only a live process that is still our stand-in: the pid of one
        // that already ended may belong to another process by now.
        if let Some(pid) = self.stand_in_pid().filter(|&p| is_stand_in(p)) {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Whether `pid` is a live `nexy-sandbox` process.
fn is_stand_in(pid: u32) -> bool {
    alive(pid)
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains("nexy-sandbox"))
}

/// Starts `xtask sandbox up` on a copy of the workspace, in a process
/// group of its own (so that only the signals a test sends reach it), and
/// waits (bounded) until it has written its release target.
fn sandbox_up(fx: &common::Fixture, state: &Path) -> Up {
    let child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["sandbox", "up", "--state", state.to_str().unwrap()])
        .arg("--root")
        .arg(fx.root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut up = Up {
        child,
        state: state.to_path_buf(),
    };
    let config = state.join("release.toml");
    let deadline = Instant::now() + Duration::from_secs(240);
    while !config.is_file() {
        assert!(
            Instant::now() < deadline,
            "sandbox up did not write {}",
            config.display()
        );
        assert!(
            up.child.try_wait().unwrap().is_none(),
            "sandbox up exited early"
        );
        thread::sleep(Duration::from_millis(50));
    }
    up
}

#[test]
fn sandbox_up_writes_a_usable_target_and_stops_on_sigterm() {
    let fx = common::Fixture::new();
    let state = fx.path("stand-in");
    let mut up = sandbox_up(&fx, &state);
    let config = state.join("release.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("host = \"github.localhost\""), "{text}");
    assert!(text.contains("resource_group = \"NexyNewRG\""), "{text}");
    let env = std::fs::read_to_string(state.join("env")).unwrap();
    for key in [
        "GH_HOST",
        "GH_TOKEN",
        "https_proxy",
        "GH_CONFIG_DIR",
        "PATH",
    ] {
        assert!(
            env.contains(&format!("export {key}=")),
            "{key} missing from env:\n{env}"
        );
    }
    assert!(state.join("ca.pem").is_file());

    // The release target works with the real gh through the env file.
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            ". {}/env && gh release view Update -R github.localhost/Seregawpn/Nexy_production --json assets && az account show",
            state.display()
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"assets\""));

    // SIGTERM to the group stops the stand-in (bounded).
    let group = format!("-{}", up.child.id());
    Command::new("kill")
        .args(["-s", "TERM", "--", &group])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if up.child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sandbox up did not stop on SIGTERM"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is a live process (a zombie, dead but not yet reaped by
/// whoever inherited it, serves nothing and counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// What an ended `sandbox up` printed (its pipes, read to the end).
fn read_output(child: &mut Child) -> String {
    use std::io::Read;
    let mut said = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut said);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut said);
    }
    said
}

fn serving(port: u64) -> bool {
    std::net::TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// `sandbox up` ended by each signal a user or a dying terminal or CI
/// runner sends it leaves no stand-in behind: no process, nothing on its
/// port. TERM, INT and HUP are handled (it stops the stand-in and exits
/// 0); KILL cannot be, and the stand-in's own parent watch ends it.
#[test]
fn sandbox_up_leaves_nothing_serving_whichever_signal_ends_it() {
    for signal in ["TERM", "INT", "HUP", "KILL"] {
        let fx = common::Fixture::new();
        let state = fx.path("stand-in");
        // The stand-in must learn of the signal from `sandbox up`, which
        // alone gets it (its own process group).
        let mut up = sandbox_up(&fx, &state);
        let info: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(state.join("sandbox.json")).unwrap())
                .unwrap();
        let pid = info["pid"].as_u64().unwrap() as u32;
        let port = info["port"].as_u64().unwrap();
        assert!(alive(pid) && serving(port), "{signal}: not serving");

        Command::new("kill")
            .args(["-s", signal, &up.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = up.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "{signal}: sandbox up still runs");
            thread::sleep(Duration::from_millis(20));
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) || serving(port) {
            if Instant::now() > deadline {
                // `up` kills what is left as the panic unwinds.
                panic!(
                    "{signal}: the stand-in (pid {pid}) still runs or port {port} still answers"
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        let out = read_output(&mut up.child);
        let said = out;
        if signal == "KILL" {
            assert_eq!(status.code(), None, "{signal}: {said}");
        } else {
            assert!(
                status.success(),
                "{signal}: sandbox up did not handle the signal ({status}): {said}"
            );
            assert!(said.contains("stopping the stand-in"), "{signal}: {said}");
        }
    }
}
