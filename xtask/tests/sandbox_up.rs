//! `cargo xtask sandbox up` as a user runs it: the stand-in starts, writes
//! its release target and env, answers the real gh, and stops on a signal.

mod common;

use std::{
    os::unix::process::CommandExt,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

#[test]
fn sandbox_up_writes_a_usable_target_and_stops_on_sigterm() {
    let fx = common::Fixture::new();
    let state = fx.path("stand-in");
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "sandbox",
            "up",
            "--state",
            state.to_str().unwrap(),
            "--root",
            fx.root().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let config = state.join("release.toml");
    let deadline = Instant::now() + Duration::from_secs(240);
    while !config.is_file() {
        assert!(
            Instant::now() < deadline,
            "sandbox up did not write {}",
            config.display()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "sandbox up exited early"
        );
        thread::sleep(Duration::from_millis(50));
    }
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
    let group = format!("-{}", child.id());
    Command::new("kill")
        .args(["-s", "TERM", "--", &group])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sandbox up did not stop on SIGTERM"
        );
        thread::sleep(Duration::from_millis(20));
    }
}
