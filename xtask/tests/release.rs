//! The release end to end: the built xtask drives the real `gh` and the
//! real az against the local stand-in of production.

mod common;

use common::stage::{Stage, MANIFEST};

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(bytes);
    digest.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[test]
fn full_release_meets_the_dod_and_a_rerun_changes_nothing() {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, 3 << 20);
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("preflight: all checks passed"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("verify (DoD): all checks passed"),
        "{}",
        run.stdout
    );

    // The bytes behind the fixed tags are the inbox's, and the manifest
    // (repo and VM, byte for byte) describes them.
    let dmg = st.inbox_bytes("Nexy.dmg");
    assert_eq!(
        st.sb.asset_bytes("Update", "Nexy.dmg").as_deref(),
        Some(dmg.as_slice())
    );
    assert_eq!(
        st.sb.asset_bytes("App", "Nexy.pkg").as_deref(),
        Some(st.inbox_bytes("Nexy.pkg").as_slice())
    );
    let manifest = st.fx.read(MANIFEST);
    assert!(
        manifest.contains(&format!("\"sha256\": \"{}\"", sha256_hex(&dmg))),
        "{manifest}"
    );
    assert!(
        manifest.contains(&format!("\"size\": {}", dmg.len())),
        "{manifest}"
    );
    assert!(manifest.contains("\"version\": \"2.0.0.5\""), "{manifest}");
    assert_eq!(st.vm_manifest(), manifest);
    assert!(
        st.creations().is_empty(),
        "no tag or release created: {:?}",
        st.creations()
    );
    // Azure heard only the real az: its own User-Agent on every ARM call.
    let log = st.sb.requests();
    let arm: Vec<_> = log
        .iter()
        .filter(|r| r.kind == "arm" && r.url.contains("/subscriptions"))
        .collect();
    assert!(
        arm.iter().any(|r| r.url.contains("/runCommand")),
        "no run-command: {arm:?}"
    );
    for r in &arm {
        let ua = r.user_agent.as_deref().unwrap_or("");
        assert!(ua.starts_with("AZURECLI/2.91.0 (PIP)"), "{r:?}");
    }

    // A second run uploads nothing and changes nothing.
    let from = st.log_len();
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Only the release lease is taken (an upload) and released (a
    // delete by id); nothing else changes.
    let mutated = st.mutating_since(from);
    let lease: Vec<&String> = mutated
        .iter()
        .filter(|m| m.contains("name=nexy-release.lease"))
        .collect();
    let rest: Vec<&String> = mutated
        .iter()
        .filter(|m| !m.contains("name=nexy-release.lease"))
        .collect();
    assert_eq!(lease.len(), 1, "rerun mutated: {mutated:?}");
    assert!(
        rest.len() == 1 && rest[0].starts_with("DELETE ") && rest[0].contains("/releases/assets/"),
        "rerun mutated: {mutated:?}"
    );
    assert!(
        run.stdout.contains("skip Nexy.dmg in Update"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("skip VM manifest"), "{}", run.stdout);
    assert_eq!(st.fx.read(MANIFEST), manifest);
}

#[test]
fn rehearse_passes_and_leaves_the_working_tree_untouched() {
    let fx = common::Fixture::new();
    let before = fx.snapshot();
    let run = fx.run(&["rehearse"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for stage in [
        "ok .* release 2.0.0.5",
        "ok .* release 2.0.0.6",
        "ok .* rerun of release 2.0.0.6",
        "ok .* rollback 2.0.0.6 -> 2.0.0.5",
        "ok .* verify --deep of the restored 2.0.0.5",
    ] {
        let (head, tail) = stage.split_once(" .* ").unwrap();
        assert!(
            run.stdout
                .lines()
                .any(|l| l.trim_start().starts_with(head) && l.contains(tail)),
            "missing `{stage}` in:\n{}",
            run.stdout
        );
    }
    assert!(run.stdout.contains("rehearsal passed"), "{}", run.stdout);
    // The stand-in's log: every ARM call was the real az's.
    assert!(
        run.stdout
            .contains("ARM calls, every one with the real az's User-Agent AZURECLI/2.91.0"),
        "{}",
        run.stdout
    );
    // A lease that could not be renewed or released says so in a warning;
    // a rehearsal must take and release each one cleanly.
    let lease_warning = |text: &str| {
        text.lines()
            .any(|l| l.contains("warning:") && l.contains("lease"))
    };
    assert!(
        !lease_warning(&run.stdout) && !lease_warning(&run.stderr),
        "{}\n{}",
        run.stdout,
        run.stderr
    );
    assert_eq!(
        before,
        fx.snapshot(),
        "rehearse must not touch the workspace"
    );
}
