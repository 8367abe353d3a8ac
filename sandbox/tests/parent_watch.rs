//! `nexy-sandbox up` never outlives the process that started it: started
//! on behalf of a parent that is already gone (the race the death signal
//! alone would lose), it refuses to serve.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn refuses_to_serve_for_a_parent_that_is_already_gone() {
    let state = tempfile_dir();
    // pid 1 is never our parent: it stands for a parent that died before
    // the stand-in could arm its watch, whose orphan init inherited.
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_nexy-sandbox"))
        .args(["up", "--state"])
        .arg(&state)
        .args(["--port", "0", "--parent-pid", "1"])
        .output()
        .unwrap();
    let served = state.join("sandbox.json").exists();
    let _ = std::fs::remove_dir_all(&state);
    assert!(
        !out.status.success() && !served,
        "it served for a dead parent"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(pid 1) is gone"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("nexy-parent-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
