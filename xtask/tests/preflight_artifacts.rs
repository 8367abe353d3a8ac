//! preflight against the stand-in refuses bytes that are not the release:
//! a DMG or PKG whose app carries another version or bundle id, a PKG of
//! another version than the DMG, a Team ID other than the configured one.
//! The artifacts are real images written by `samples` (other versions of
//! them with `--version`/`--bundle-id`), read back by the reader.

mod common;
#[path = "common/more.rs"]
mod more;

use std::{fs, path::Path};

use common::stage::Stage;
use more::edit_config;
use serde_json::Value;

fn ready() -> Stage {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, 1 << 20);
    st
}

/// `preflight --json`: the exit code and the checks by id.
fn preflight(st: &Stage) -> (i32, Vec<Value>) {
    let run = st.run(&["preflight", "--json"]);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    (run.code, doc["checks"].as_array().unwrap().clone())
}

fn with_status<'a>(checks: &'a [Value], status: &str) -> Vec<&'a str> {
    checks
        .iter()
        .filter(|c| c["status"] == status)
        .map(|c| c["id"].as_str().unwrap())
        .collect()
}

fn check<'a>(checks: &'a [Value], id: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id}: {checks:?}"))
}

/// Writes samples of another version or bundle id into `dir`.
fn other_samples(st: &Stage, dir: &Path, args: &[&str]) {
    let mut all = vec![
        "samples",
        "--out",
        dir.to_str().unwrap(),
        "--dmg-size",
        "1048576",
        "--pkg-size",
        "524288",
    ];
    all.extend(args);
    let run = st.run(&all);
    assert_eq!(run.code, 0, "{run:?}");
}

#[test]
fn the_release_passes_with_signing_warnings() {
    let st = ready();
    let (code, checks) = preflight(&st);
    assert_eq!(code, 0, "{checks:#?}");
    for id in ["app-dmg", "app-pkg", "app-pair", "pkg-versions"] {
        assert_eq!(check(&checks, id)["status"], "pass", "{id}: {checks:#?}");
    }
    let dmg = check(&checks, "app-dmg")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        dmg.contains("com.nexy.assistant") && dmg.contains("2.0.0.5") && dmg.contains("universal2"),
        "{dmg}"
    );
    // The samples are not signed: warnings, not failures.
    assert_eq!(with_status(&checks, "warn"), ["signing-dmg", "signing-pkg"]);
    let w = check(&checks, "signing-dmg")["message"].as_str().unwrap();
    assert!(
        w.contains("not code-signed") && w.contains("no UDIF code signature"),
        "{w}"
    );
}

#[test]
fn a_stale_dmg_of_another_version_is_refused() {
    let st = ready();
    let other = tempfile::tempdir().unwrap();
    other_samples(&st, other.path(), &["--version", "2.0.0.4"]);
    fs::copy(
        other.path().join("Nexy.dmg"),
        st.fx.path("release_inbox/Nexy.dmg"),
    )
    .unwrap();
    let (code, checks) = preflight(&st);
    assert_eq!(code, 1);
    assert_eq!(
        with_status(&checks, "fail"),
        ["app-dmg", "app-pair"],
        "{checks:#?}"
    );
    let c = check(&checks, "app-dmg");
    let msg = c["message"].as_str().unwrap();
    assert!(
        msg.contains("release_inbox/Nexy.dmg is not the release"),
        "{msg}"
    );
    assert!(
        msg.contains("CFBundleVersion is 2.0.0.4, VERSION 2.0.0.5 means 2.0.0.5"),
        "{msg}"
    );
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains("copy the 2.0.0.5 build"),
        "{c}"
    );
    let pair = check(&checks, "app-pair")["message"].as_str().unwrap();
    assert!(
        pair.contains("2.0.0.4") && pair.contains("2.0.0.5"),
        "{pair}"
    );
}

#[test]
fn a_pkg_of_another_version_than_the_dmg_is_refused() {
    let st = ready();
    let other = tempfile::tempdir().unwrap();
    other_samples(&st, other.path(), &["--version", "2.0.0.6"]);
    fs::copy(
        other.path().join("Nexy.pkg"),
        st.fx.path("release_inbox/Nexy.pkg"),
    )
    .unwrap();
    let (code, checks) = preflight(&st);
    assert_eq!(code, 1);
    assert_eq!(
        with_status(&checks, "fail"),
        ["app-pkg", "app-pair"],
        "{checks:#?}"
    );
    // Its product and component versions disagree too: a warning.
    let w = check(&checks, "pkg-versions");
    assert_eq!(w["status"], "warn", "{w}");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("product version is 2.0.0.6"),
        "{w}"
    );
}

#[test]
fn a_wrong_bundle_id_and_a_foreign_team_are_refused() {
    let st = ready();
    let other = tempfile::tempdir().unwrap();
    other_samples(&st, other.path(), &["--bundle-id", "com.example.other"]);
    for name in ["Nexy.dmg", "Nexy.pkg"] {
        fs::copy(
            other.path().join(name),
            st.fx.path("release_inbox").join(name),
        )
        .unwrap();
    }
    edit_config(
        &st,
        "build_version = \"{version}\"",
        "build_version = \"{version}\"\nteam_id = \"ABCDE12345\"",
    );
    let (code, checks) = preflight(&st);
    assert_eq!(code, 1);
    assert_eq!(
        with_status(&checks, "fail"),
        ["app-dmg", "signing-dmg", "app-pkg", "signing-pkg"],
        "{checks:#?}"
    );
    let msg = check(&checks, "app-pkg")["message"].as_str().unwrap();
    assert!(msg.contains("its bundle id is com.example.other, release.toml [app] bundle_id is com.nexy.assistant"), "{msg}");
    let team = check(&checks, "signing-dmg")["message"].as_str().unwrap();
    assert!(
        team.contains(
            "Team ID (none: unsigned or ad hoc), release.toml [app] team_id is ABCDE12345"
        ),
        "{team}"
    );
}

#[test]
fn a_team_that_maps_the_short_version_to_three_numbers() {
    let st = ready();
    edit_config(
        &st,
        "short_version = \"{version}\"",
        "short_version = \"{major}.{minor}.{patch}\"",
    );
    // The samples carry the full version in both keys: refused.
    let (code, checks) = preflight(&st);
    assert_eq!(code, 1);
    let msg = check(&checks, "app-dmg")["message"].as_str().unwrap();
    assert!(
        msg.contains("CFBundleShortVersionString is 2.0.0.5, VERSION 2.0.0.5 means 2.0.0"),
        "{msg}"
    );
    // Samples written under that config carry 2.0.0 and 2.0.0.5: accepted.
    let inbox = st.fx.path("release_inbox");
    other_samples(&st, &inbox, &[]);
    let (code, checks) = preflight(&st);
    assert_eq!(code, 0, "{checks:#?}");
}

#[test]
fn rollback_refuses_archived_bytes_of_another_version() {
    let st = ready();
    assert_eq!(st.run(&["release"]).code, 0);
    assert_eq!(st.run(&["bump", "2.0.0.6"]).code, 0);
    st.samples(2, (1 << 20) + 4096);
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{run:?}");
    // The archive of 2.0.0.5 as a release without this check could have
    // left it: a stale 2.0.0.4 DMG under a manifest written for its bytes.
    let dir = st.fx.path("release_inbox/.archive/2.0.0.5");
    let other = tempfile::tempdir().unwrap();
    other_samples(&st, other.path(), &["--version", "2.0.0.4"]);
    let old = fs::read(dir.join("Nexy.dmg")).unwrap();
    let new = fs::read(other.path().join("Nexy.dmg")).unwrap();
    fs::write(dir.join("Nexy.dmg"), &new).unwrap();
    let manifest = dir.join("manifest.json");
    let text = fs::read_to_string(&manifest).unwrap();
    let text = text
        .replace(&more::sha256_hex(&old), &more::sha256_hex(&new))
        .replace(
            &format!("\"size\": {}", old.len()),
            &format!("\"size\": {}", new.len()),
        );
    fs::write(&manifest, text).unwrap();
    let from = st.log_len();
    let run = st.run(&["rollback", "--to", "2.0.0.5"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("the archive of 2.0.0.5 holds other bytes: Nexy.dmg holds Nexy.app 2.0.0.4"),
        "{}",
        run.stderr
    );
    assert!(
        st.mutating_since(from).is_empty(),
        "{:?}",
        st.mutating_since(from)
    );
}

#[test]
fn the_manifest_says_what_the_app_says_and_verify_deep_reads_it() {
    let st = ready();
    // An app that needs macOS 12.3: publish writes it, not a constant.
    other_samples(&st, &st.fx.path("release_inbox"), &["--min-os", "12.3"]);
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{run:?}");
    let manifest = st.fx.read(common::stage::MANIFEST);
    for m in [manifest.clone(), st.vm_manifest()] {
        assert!(
            m.contains("\"arch\": \"universal2\"") && m.contains("\"min_os\": \"12.3\""),
            "{m}"
        );
    }
    let run = st.run(&["verify", "--deep", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let checks = doc["checks"].as_array().unwrap();
    let app = check(checks, "dmg-app");
    assert_eq!(app["status"], "pass", "{app}");
    assert!(
        app["message"].as_str().unwrap().contains("macOS 12.3+"),
        "{app}"
    );
    // A manifest that promises another min_os than the bytes: refused.
    st.fx.write(
        common::stage::MANIFEST,
        manifest.replace("\"min_os\": \"12.3\"", "\"min_os\": \"11.0\""),
    );
    let run = st.run(&["verify", "--deep", "--json", "--timeout", "1"]);
    assert_eq!(run.code, 1, "{run:?}");
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let app = check(doc["checks"].as_array().unwrap(), "dmg-app").clone();
    assert_eq!(app["status"], "fail", "{app}");
    assert!(
        app["message"].as_str().unwrap().contains(
            "its LSMinimumSystemVersion is 12.3, the manifest's artifact.min_os says `11.0`"
        ),
        "{app}"
    );
}
