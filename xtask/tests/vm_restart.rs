//! The VM side of a release, end to end with the real gh and the stand-in:
//! a beta publish never restarts `voice-assistant`, a stable release
//! restarts it exactly once and waits until it answers, a config.env that
//! could not start it stops publish before anything changes, a service
//! that fails to start is put back on its previous config, and manifest
//! backups are pruned. The stand-in's request log is the record of every
//! `systemctl` call the VM scripts made.

mod common;
#[path = "common/more.rs"]
mod more;

use std::fs;

use common::stage::{Stage, MANIFEST};
use more::{
    all_assets, edit_config, journal, journal_has, mutating_apart_from_lease_and_temporaries, tree,
};
use nexy_sandbox::{faults::ServiceFail, Faults};

const MIB: u64 = 1 << 20;
const KEY: &str = "sandbox-key-not-real";

/// The `systemctl restart` calls on the VM since log index `from`.
fn restarts_since(st: &Stage, from: usize) -> usize {
    st.sb
        .requests()
        .iter()
        .skip(from)
        .filter(|r| r.kind == "systemctl" && r.method == "restart")
        .count()
}

/// `latest_version` of a public feed path.
fn feed_version(st: &Stage, path: &str) -> String {
    let r = more::get(&format!("{}{path}", st.sb.feed_url()), true);
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["latest_version"].as_str().unwrap_or_default().to_string()
}

fn vm_file(st: &Stage, rel: &str) -> String {
    fs::read_to_string(st.sb.vm_app_dir().join(rel)).unwrap_or_default()
}

fn journal_steps(st: &Stage) -> Vec<String> {
    journal(st)
        .iter()
        .filter_map(|j| j["step"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_beta_publish_syncs_its_manifest_without_a_restart() {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples_in("release_inbox/beta", 3, MIB);
    let running = fs::read(st.state_dir().join("feed/running.json")).unwrap();

    // The dry run says so, and why.
    let dry = st.run(&["publish", "--channel", "beta", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}\n{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout
            .contains("no restart: this channel's manifest is served from disk beside the server"),
        "{}",
        dry.stdout
    );
    assert!(!dry.stdout.contains("systemctl restart"), "{}", dry.stdout);

    let from = st.log_len();
    let run = st.run(&["publish", "--channel", "beta"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("voice-assistant not restarted (manifest only)"),
        "{}",
        run.stdout
    );
    assert_eq!(
        restarts_since(&st, from),
        0,
        "a beta publish restarted the service"
    );
    assert!(
        !st.sb
            .requests()
            .iter()
            .skip(from)
            .any(|r| r.kind == "systemctl"),
        "a beta sync called systemctl"
    );
    assert!(
        fs::read(st.state_dir().join("feed/running.json")).unwrap() == running,
        "the service was restarted"
    );
    assert!(vm_file(&st, "config.env").contains("SERVER_VERSION=2.0.0.4"));
    let steps = journal_steps(&st);
    assert!(
        steps.contains(&"sync manifest 2.0.0.5".to_string()),
        "{steps:?}"
    );
    assert!(
        steps.contains(&"no restart (manifest only)".to_string()),
        "{steps:?}"
    );
    assert!(
        !steps.iter().any(|s| s.starts_with("sync vm ")),
        "{steps:?}"
    );
}

#[test]
fn a_stable_release_restarts_once_and_waits_until_it_answers() {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, MIB);
    // A restart takes 1.5 s, during which the feed answers 502.
    st.sb
        .set_faults(Faults {
            restart_down_ms: 1500,
            ..Faults::default()
        })
        .unwrap();
    // The stand-in's own restart (when it was staged) is over first.
    assert!(more::wait_until(std::time::Duration::from_secs(10), || {
        more::get(&format!("{}/health", st.sb.feed_url()), false).status == 200
    }));
    let dry = st.run(&["publish", "--dry-run"]);
    assert!(
        dry.stdout.contains(
            "restart: SERVER_VERSION moves from 2.0.0.4 to 2.0.0.5: config.env checked first"
        ),
        "{}",
        dry.stdout
    );
    let from = st.log_len();
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(restarts_since(&st, from), 1);
    // The sync waited: the unit was asked after the restart until it was
    // active, and the output says how long that took.
    let log = st.sb.requests();
    let restart = log
        .iter()
        .skip(from)
        .position(|r| r.kind == "systemctl" && r.method == "restart")
        .unwrap()
        + from;
    let asked: Vec<i64> = log[restart..]
        .iter()
        .filter(|r| r.kind == "systemctl" && r.method == "is-active")
        .map(|r| r.status)
        .collect();
    assert!(
        asked.len() >= 2 && asked[0] != 0 && *asked.last().unwrap() == 0,
        "is-active after the restart: {asked:?}"
    );
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("voice-assistant restarted once"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert!(
        line.contains("answer 2.0.0.5 after 1s") || line.contains("answer 2.0.0.5 after 2s"),
        "{line}"
    );
    assert_eq!(feed_version(&st, "/health"), "2.0.0.5");
    assert!(journal_has(
        &st,
        "note",
        "restarted voice-assistant into 2.0.0.5"
    ));
    assert_eq!(vm_file(&st, "VERSION"), "2.0.0.5\n");

    // Run again: everything is live, nothing restarts.
    let from = st.log_len();
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("skip VM manifest"), "{}", run.stdout);
    assert_eq!(restarts_since(&st, from), 0);
}

#[test]
fn a_config_env_without_a_real_key_stops_publish_before_anything_changes() {
    for (what, config, problem) in [
        (
            "placeholder",
            "GEMINI_API_KEY=YOUR_GEMINI_API_KEY_HERE\nSERVER_VERSION=2.0.0.4\nSERVER_BUILD=2.0.0.4\n".to_string(),
            "GEMINI_API_KEY in config.env is the placeholder YOUR_GEMINI_API_KEY_HERE",
        ),
        (
            "empty",
            "GEMINI_API_KEY=\nSERVER_VERSION=2.0.0.4\nSERVER_BUILD=2.0.0.4\n".to_string(),
            "GEMINI_API_KEY is missing or empty in config.env",
        ),
        (
            "bad version line",
            format!("GEMINI_API_KEY={KEY}\nexport SERVER_VERSION=2.0.0.4\n"),
            "1 SERVER_VERSION/SERVER_BUILD line(s) in config.env are not of the form",
        ),
    ] {
        let st = Stage::new();
        assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
        st.samples(1, MIB);
        fs::write(st.sb.vm_app_dir().join("config.env"), &config).unwrap();
        let vm = tree(&st.sb.vm_app_dir());
        let workspace = st.fx.read(MANIFEST);
        let from = st.log_len();
        let assets = all_assets(&st);
        // publish alone, without preflight.
        let run = st.run(&["publish"]);
        assert_eq!(run.code, 1, "{what}: {}\n{}", run.stdout, run.stderr);
        for part in [
            "the VM cannot restart voice-assistant into 2.0.0.5",
            problem,
            "no fixed asset was replaced, nothing was written, and the VM is untouched",
            "then rerun `cargo xtask publish`",
        ] {
            assert!(run.stderr.contains(part), "{what}: {part:?} not in {}", run.stderr);
        }
        assert!(
            !run.stdout.contains(KEY) && !run.stderr.contains(KEY),
            "{what}: the key was printed"
        );
        assert!(
            run.stdout
                .contains("the 2 upload(s) begun beside the VM read were removed"),
            "{what}: {}",
            run.stdout
        );
        // Only the release lease was taken and released, and the uploads
        // begun beside the VM read removed: every asset is the one that
        // was there, by id and digest, and no lease or temporary is left.
        let changes = mutating_apart_from_lease_and_temporaries(&st, from, &assets);
        assert!(changes.is_empty(), "{what}: {changes:?}");
        assert_eq!(all_assets(&st), assets, "{what}");
        assert!(st.sb.asset_bytes("Update", "Nexy.dmg").is_none(), "{what}");
        assert!(tree(&st.sb.vm_app_dir()) == vm, "{what}: the VM changed");
        assert!(
            !st.sb
                .requests()
                .iter()
                .skip(from)
                .any(|r| r.kind == "systemctl"),
            "{what}"
        );
        assert_eq!(st.fx.read(MANIFEST), workspace, "{what}");
    }
}

#[test]
fn a_service_that_fails_to_start_is_restored_and_the_release_fails_saying_so() {
    let st = Stage::new();
    edit_config(&st, "restart_wait_secs = 30", "restart_wait_secs = 3");
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, MIB);
    let config_before = vm_file(&st, "config.env");
    let version_before = vm_file(&st, "VERSION");
    st.sb
        .set_faults(Faults {
            restart_down_ms: 300,
            service_fail: Some(ServiceFail {
                config_contains: "SERVER_VERSION=2.0.0.5".into(),
                restart_exit_code: None,
            }),
            ..Faults::default()
        })
        .unwrap();
    let from = st.log_len();
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    for part in [
        "voice-assistant did not come back on 2.0.0.5 within 3s after the restart (is-active=failed",
        "the VM put back the previous config.env and VERSION (2.0.0.4) and restarted it, and it answers on 2.0.0.4 again",
        "The manifest stays as published, so the assets and the manifest agree and clients get the new build; only the server's own version is still 2.0.0.4",
        "`cargo xtask rollback --to 2.0.0.4`",
        "rerun `cargo xtask publish` to finish",
    ] {
        assert!(run.stderr.contains(part), "{part:?} not in {}", run.stderr);
    }
    assert_eq!(
        restarts_since(&st, from),
        2,
        "the restart and the restore's"
    );
    // The VM is back on its previous config, the feed answers again: the
    // server on 2.0.0.4, the manifest as published.
    assert_eq!(vm_file(&st, "config.env"), config_before);
    assert_eq!(vm_file(&st, "VERSION"), version_before);
    assert_eq!(feed_version(&st, "/health"), "2.0.0.4");
    assert_eq!(feed_version(&st, "/updates/health"), "2.0.0.5");
    assert_eq!(st.vm_manifest(), st.fx.read(MANIFEST));
    assert_eq!(
        st.sb.asset_bytes("Update", "Nexy.dmg").unwrap(),
        st.inbox_bytes("Nexy.dmg")
    );
    assert!(journal_has(
        &st,
        "note",
        "restart into 2.0.0.5 failed; restored 2.0.0.4"
    ));

    // Fixed, the rerun finishes: one restart, and verify passes.
    st.sb.set_faults(Faults::default()).unwrap();
    let from = st.log_len();
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("restart: SERVER_VERSION moves from 2.0.0.4 to 2.0.0.5"),
        "{}",
        run.stdout
    );
    assert_eq!(restarts_since(&st, from), 1);
    let verify = st.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}

#[test]
fn manifest_backups_are_pruned_to_the_newest_n() {
    let st = Stage::new();
    edit_config(&st, "backups_keep = 20", "backups_keep = 3");
    let dir = st.sb.vm_app_dir().join("server/updates/manifests");
    for i in 0..5 {
        fs::write(
            dir.join(format!("manifest.json.backup.2026010{i}T000000Z")),
            "{}",
        )
        .unwrap();
    }
    fs::write(dir.join("manifest_beta.json.backup.20260101T000000Z"), "{}").unwrap();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, MIB);
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Five old ones and the backup of the live manifest, down to three.
    assert!(
        run.stdout
            .contains("manifest backups: 3 old one(s) removed, 3 kept"),
        "{}",
        run.stdout
    );
    let left: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("manifest.json.backup."))
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(dir
        .join("manifest_beta.json.backup.20260101T000000Z")
        .exists());
}
