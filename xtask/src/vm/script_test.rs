//! The VM scripts run by bash on a temporary service directory, with a
//! `systemctl` and a `curl` that stand for the unit and its two ports
//! (the service answers with the SERVER_VERSION it was restarted with, the
//! feed with the manifest on disk; a version listed in `fail-<version>`
//! does not start). The end-to-end tests run the same scripts on the
//! stand-in VM through az.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use super::*;

const SYSTEMCTL: &str = r#"#!/bin/sh
d=$(dirname "$0")
echo "$*" >> "$d/calls"
case "$1" in
  restart)
    v=$(grep '^SERVER_VERSION=' "$NEXY_TEST_BASE/config.env" | tail -n 1 | cut -d= -f2)
    if [ -f "$d/fail-$v" ]; then echo failed > "$d/state"; else echo active > "$d/state"; fi
    echo "$v" > "$d/running" ;;
  is-active)
    s=$(cat "$d/state" 2>/dev/null || echo inactive); echo "$s"; [ "$s" = active ] ;;
esac
"#;

const CURL: &str = r#"#!/bin/sh
d=$(dirname "$0")
for a; do url=$a; done
echo "$url" >> "$d/curls"
[ "$(cat "$d/state" 2>/dev/null)" = active ] || exit 7
case "$url" in
  *updates*) v=$(sed -n 's/.*"version": "\([^"]*\)".*/\1/p' "$NEXY_TEST_BASE/server/updates/manifests/manifest.json" | head -n 1) ;;
  *) v=$(cat "$d/running") ;;
esac
printf '{"status":"OK","latest_version":"%s"}' "$v"
"#;

const KEY: &str = "AIzaSy-not-a-real-key-but-not-empty";

struct Vm {
    dir: tempfile::TempDir,
}

impl Vm {
    /// A VM running `version` with a real-looking key.
    fn new(version: &str) -> Vm {
        let vm = Vm {
            dir: tempfile::tempdir().unwrap(),
        };
        let bin = vm.bin();
        fs::create_dir(&bin).unwrap();
        for (name, text) in [("systemctl", SYSTEMCTL), ("curl", CURL)] {
            fs::write(bin.join(name), text).unwrap();
            Command::new("chmod")
                .arg("755")
                .arg(bin.join(name))
                .status()
                .unwrap();
        }
        fs::write(
            vm.base().join("config.env"),
            format!("GEMINI_API_KEY={KEY}\nSERVER_VERSION={version}\nSERVER_BUILD={version}\n"),
        )
        .unwrap();
        fs::write(vm.base().join("VERSION"), format!("{version}\n")).unwrap();
        fs::create_dir_all(vm.manifests()).unwrap();
        fs::write(vm.manifests().join("manifest.json"), manifest(version)).unwrap();
        fs::write(bin.join("state"), "active\n").unwrap();
        fs::write(bin.join("running"), format!("{version}\n")).unwrap();
        vm
    }

    fn base(&self) -> &Path {
        self.dir.path()
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    fn manifests(&self) -> PathBuf {
        self.base().join("server/updates/manifests")
    }

    fn target(&self) -> Target {
        Target {
            base: self.base().to_str().unwrap().to_string(),
            manifest_file: "manifest.json".into(),
            health_url: "http://127.0.0.1:8080/health".into(),
            feed_health_url: "http://127.0.0.1:8081/updates/health".into(),
            restart_wait_secs: 1,
            backups_keep: 20,
        }
    }

    fn run(&self, script: &str) -> ScriptOutput {
        let out = Command::new("bash")
            .arg("-c")
            .arg(script)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.bin().display(),
                    std::env::var("PATH").unwrap()
                ),
            )
            .env("NEXY_TEST_BASE", self.base())
            .output()
            .unwrap();
        ScriptOutput {
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    fn sync(&self, version: &str, restart: bool) -> (ScriptOutput, Result<Synced>) {
        let m = manifest(version);
        let out = self.run(&self.target().sync_script(version, &m, restart));
        let checked = check_synced(&out, &m, restart);
        (out, checked)
    }

    fn read(&self) -> VmState {
        parse_state(&self.run(&self.target().read_script())).unwrap()
    }

    fn file(&self, rel: &str) -> String {
        fs::read_to_string(self.base().join(rel)).unwrap_or_default()
    }

    fn restarts(&self) -> usize {
        self.file("bin/calls")
            .lines()
            .filter(|l| *l == "restart voice-assistant")
            .count()
    }

    fn backups(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.manifests())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("manifest.json.backup."))
            .collect();
        names.sort();
        names
    }

    /// Every file under the service directory but the test's own bin.
    fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.base().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p == self.bin() {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((p.display().to_string(), fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }
}

fn manifest(version: &str) -> String {
    format!("{{\n  \"version\": \"{version}\",\n  \"x\": \"'$(rm -rf /)`\\\"\"\n}}\n")
}

#[test]
fn reads_the_state_from_the_markers() {
    let manifest = "{\"version\": \"2.0.0.5\"}\n";
    let out = ScriptOutput {
        stdout: format!(
            "NEXY_MARK:manifest_b64:{}\nNEXY_MARK:server_version:2.0.0.5\nNEXY_MARK:running_version:2.0.0.4\nNEXY_MARK:gate:refused:key-placeholder version-lines:2\nNEXY_MARK:read:ok\n",
            BASE64.encode(manifest)
        ),
        stderr: String::new(),
    };
    assert_eq!(
        parse_state(&out).unwrap(),
        VmState {
            manifest: Some(manifest.into()),
            server_version: Some("2.0.0.5".into()),
            running_version: Some("2.0.0.4".into()),
            gate: Gate::Refused(vec![
                Problem::KeyPlaceholder,
                Problem::VersionLines("2".into())
            ]),
        }
    );
    let empty = ScriptOutput {
        stdout: "NEXY_MARK:manifest_b64:\nNEXY_MARK:server_version:\nNEXY_MARK:read:ok\n".into(),
        stderr: String::new(),
    };
    assert_eq!(parse_state(&empty).unwrap(), VmState::default());
    let cut = ScriptOutput {
        stdout: "NEXY_MARK:manifest_b64:\n".into(),
        stderr: String::new(),
    };
    assert!(parse_state(&cut).is_err());
}

#[test]
fn a_sync_confirms_only_the_manifest_sent() {
    let m = "{}\n";
    let ok = ScriptOutput {
        stdout: format!(
            "NEXY_MARK:backups:0:1\nNEXY_MARK:restart:none:not-asked\nNEXY_MARK:sync:ok:{}\n",
            hash::bytes_sha256(m.as_bytes())
        ),
        stderr: String::new(),
    };
    assert_eq!(
        check_synced(&ok, m, false).unwrap().restart,
        Restart::NotAsked
    );
    assert!(check_synced(&ok, "{ }\n", false).is_err());
    let locked = ScriptOutput {
        stdout: "NEXY_MARK:sync:locked\n".into(),
        stderr: String::new(),
    };
    assert!(check_synced(&locked, m, false).is_err());
}

#[test]
fn a_stable_sync_moves_the_version_and_restarts_once_and_a_repeat_does_not() {
    let vm = Vm::new("2.0.0.4");
    let before_cfg = vm.file("config.env");
    let (out, synced) = vm.sync("2.0.0.5", true);
    let synced = synced.unwrap_or_else(|e| panic!("{e:#}\n{out:?}"));
    assert!(
        matches!(&synced.restart, Restart::Done { version, .. } if version == "2.0.0.5"),
        "{synced:?}"
    );
    assert_eq!(vm.restarts(), 1);
    let m = manifest("2.0.0.5");
    assert_eq!(vm.file("server/updates/manifests/manifest.json"), m);
    assert_eq!(vm.file("server/updates/manifests/manifest_2.0.0.5.json"), m);
    assert_eq!(
        vm.file("config.env"),
        format!("GEMINI_API_KEY={KEY}\nSERVER_VERSION=2.0.0.5\nSERVER_BUILD=2.0.0.5\n")
    );
    assert_eq!(vm.file("VERSION"), "2.0.0.5\n");
    // The previous config is kept for a restore, and not world-readable.
    assert_eq!(vm.file(".nexy-restore/config.env"), before_cfg);
    assert_eq!(vm.file(".nexy-restore/for"), "2.0.0.5\n");
    assert!(
        !out.stdout.contains(KEY) && !out.stderr.contains(KEY),
        "{out:?}"
    );
    // The service was waited for: the unit, then both ports. With the
    // version moving, nothing is asked before the restart (it restarts
    // whatever the unit says), and one poll finds it up.
    assert_eq!(
        vm.file("bin/calls"),
        "restart voice-assistant\nis-active voice-assistant\n"
    );
    assert_eq!(
        vm.file("bin/curls").lines().count(),
        2,
        "{}",
        vm.file("bin/curls")
    );
    assert!(vm.file("bin/curls").contains("8081/updates/health"));
    assert_eq!(vm.backups().len(), 1);

    // A repeat (a retry after a 5xx) finds the work done.
    let (_, again) = vm.sync("2.0.0.5", true);
    assert_eq!(again.unwrap().restart, Restart::AlreadyRunning);
    assert_eq!(vm.restarts(), 1);
    assert_eq!(
        vm.backups().len(),
        1,
        "the same manifest is not backed up twice"
    );
    assert_eq!(vm.file(".nexy-restore/config.env"), before_cfg);

    // The read script reports what the sync installed.
    let state = vm.read();
    assert_eq!(state.manifest.as_deref(), Some(m.as_str()));
    assert_eq!(state.server_version.as_deref(), Some("2.0.0.5"));
    assert_eq!(state.running_version.as_deref(), Some("2.0.0.5"));
    assert_eq!(state.gate, Gate::Ok);
}

#[test]
fn a_manifest_only_sync_never_touches_the_service() {
    let vm = Vm::new("2.0.0.4");
    let cfg = vm.file("config.env");
    let (_, synced) = vm.sync("2.0.0.6", false);
    assert_eq!(synced.unwrap().restart, Restart::NotAsked);
    assert_eq!(vm.restarts(), 0);
    assert!(vm.file("bin/calls").is_empty(), "{}", vm.file("bin/calls"));
    assert_eq!(vm.file("config.env"), cfg);
    assert_eq!(vm.file("VERSION"), "2.0.0.4\n");
    assert_eq!(
        vm.file("server/updates/manifests/manifest.json"),
        manifest("2.0.0.6")
    );
}

#[test]
fn a_config_that_cannot_start_the_service_is_refused_before_any_change() {
    let cases: [(&str, Option<&str>, Vec<Problem>); 6] = [
        ("no config", None, vec![Problem::NoConfig]),
        (
            "empty key",
            Some("GEMINI_API_KEY=\nSERVER_VERSION=2.0.0.4\n"),
            vec![Problem::KeyMissing],
        ),
        (
            "quoted empty key",
            Some("GEMINI_API_KEY=\"\"\nSERVER_VERSION=2.0.0.4\n"),
            vec![Problem::KeyMissing],
        ),
        (
            "no key line",
            Some("SERVER_VERSION=2.0.0.4\n"),
            vec![Problem::KeyMissing],
        ),
        (
            "placeholder",
            Some("GEMINI_API_KEY='YOUR_GEMINI_API_KEY_HERE'\nSERVER_VERSION=2.0.0.4\n"),
            vec![Problem::KeyPlaceholder],
        ),
        (
            "placeholder and bad version lines",
            Some("GEMINI_API_KEY=YOUR_GEMINI_API_KEY_HERE\nexport SERVER_VERSION=2.0.0.4\nSERVER_BUILD=2.0.0.4 \n"),
            vec![Problem::KeyPlaceholder, Problem::VersionLines("2".into())],
        ),
    ];
    for (what, cfg, want) in cases {
        let vm = Vm::new("2.0.0.4");
        match cfg {
            Some(text) => fs::write(vm.base().join("config.env"), text).unwrap(),
            None => fs::remove_file(vm.base().join("config.env")).unwrap(),
        }
        assert_eq!(vm.read().gate, Gate::Refused(want.clone()), "{what}");
        let before = vm.files();
        let (out, synced) = vm.sync("2.0.0.5", true);
        let err = format!("{:#}", synced.unwrap_err());
        assert!(
            err.contains("refused to restart voice-assistant and changed nothing"),
            "{what}: {err}"
        );
        for problem in &want {
            assert!(err.contains(&problem.describe()), "{what}: {err}");
        }
        assert!(vm.files() == before, "{what}: the VM changed");
        assert_eq!(vm.restarts(), 0, "{what}");
        assert!(out.marker("sync").is_none(), "{what}: {out:?}");
    }
    // A key that is set passes, whatever its quotes.
    let vm = Vm::new("2.0.0.4");
    fs::write(
        vm.base().join("config.env"),
        format!("GEMINI_API_KEY=\"{KEY}\"\nSERVER_VERSION=\"2.0.0.4\"\n"),
    )
    .unwrap();
    assert_eq!(vm.read().gate, Gate::Ok);
}

#[test]
fn a_line_appended_to_a_config_without_a_final_newline_stays_its_own() {
    let vm = Vm::new("2.0.0.4");
    fs::write(
        vm.base().join("config.env"),
        format!("GEMINI_API_KEY={KEY}"),
    )
    .unwrap();
    let (out, synced) = vm.sync("2.0.0.5", true);
    synced.unwrap_or_else(|e| panic!("{e:#}\n{out:?}"));
    assert_eq!(
        vm.file("config.env"),
        format!("GEMINI_API_KEY={KEY}\nSERVER_VERSION=2.0.0.5\nSERVER_BUILD=2.0.0.5\n")
    );
}

#[test]
fn a_service_that_does_not_start_is_put_back_on_the_previous_config() {
    let vm = Vm::new("2.0.0.4");
    let cfg = vm.file("config.env");
    fs::write(vm.bin().join("fail-2.0.0.5"), "").unwrap();
    let (out, synced) = vm.sync("2.0.0.5", true);
    let synced = synced.unwrap_or_else(|e| panic!("{e:#}\n{out:?}"));
    let Restart::Failed {
        version,
        seen,
        restore,
    } = &synced.restart
    else {
        panic!("{synced:?}\n{out:?}")
    };
    assert_eq!(version, "2.0.0.5");
    assert!(seen.contains("is-active=failed"), "{seen}");
    assert_eq!(
        restore,
        &Restore::Done {
            version: "2.0.0.4".into()
        }
    );
    assert_eq!(vm.restarts(), 2);
    assert_eq!(vm.file("config.env"), cfg);
    assert_eq!(vm.file("VERSION"), "2.0.0.4\n");
    assert_eq!(vm.file("bin/running"), "2.0.0.4\n");
    // The manifest stays as published.
    assert_eq!(
        vm.file("server/updates/manifests/manifest.json"),
        manifest("2.0.0.5")
    );
    let why = synced.failure(1).unwrap();
    for part in [
        "did not come back on 2.0.0.5 within 1s",
        "put back the previous config.env and VERSION (2.0.0.4)",
        "answers on 2.0.0.4 again",
        "The manifest stays as published",
        "`cargo xtask rollback --to 2.0.0.4`",
        "rerun `cargo xtask publish`",
    ] {
        assert!(why.contains(part), "{part:?} not in {why}");
    }
    assert_eq!(
        synced.journal_step(),
        "restart into 2.0.0.5 failed; restored 2.0.0.4"
    );

    // Fixed, the rerun restarts into the new version, restoring from the
    // same kept copy if needed.
    fs::remove_file(vm.bin().join("fail-2.0.0.5")).unwrap();
    let (_, again) = vm.sync("2.0.0.5", true);
    assert!(matches!(again.unwrap().restart, Restart::Done { .. }));
    assert_eq!(vm.restarts(), 3);
}

#[test]
fn a_restore_that_does_not_start_either_says_the_service_is_down() {
    let vm = Vm::new("2.0.0.4");
    fs::write(vm.bin().join("fail-2.0.0.5"), "").unwrap();
    fs::write(vm.bin().join("fail-2.0.0.4"), "").unwrap();
    let (_, synced) = vm.sync("2.0.0.5", true);
    let synced = synced.unwrap();
    assert!(matches!(
        &synced.restart,
        Restart::Failed {
            restore: Restore::Failed { version, .. },
            ..
        } if version == "2.0.0.4"
    ));
    let why = synced.failure(1).unwrap();
    assert!(why.contains("voice-assistant is DOWN"), "{why}");
}

#[test]
fn backups_are_pruned_to_the_newest_n_per_manifest() {
    let vm = Vm::new("2.0.0.4");
    // 25 backups of differing ages (names in an older format, so that the
    // order is the files' times, not their names), and a beta backup.
    for i in 0..25 {
        let p = vm
            .manifests()
            .join(format!("manifest.json.backup.old-{:02}", 24 - i));
        fs::write(&p, "{}").unwrap();
        let stamp = format!("2026-01-01 00:{i:02}:00");
        assert!(Command::new("touch")
            .args(["-d", &stamp])
            .arg(&p)
            .status()
            .unwrap()
            .success());
    }
    let beta = vm
        .manifests()
        .join("manifest_beta.json.backup.20260101T000000Z");
    fs::write(&beta, "{}").unwrap();
    let (_, synced) = vm.sync("2.0.0.5", false);
    // 25 + the backup of the live manifest, down to 20.
    assert_eq!(synced.unwrap().backups, (6, 20));
    let left = vm.backups();
    assert_eq!(left.len(), 20);
    // The oldest (by time: old-24 .. old-19) are gone.
    for gone in 19..25 {
        assert!(
            !left.contains(&format!("manifest.json.backup.old-{gone:02}")),
            "{gone} {left:?}"
        );
    }
    assert!(beta.exists(), "another manifest's backups are its own");
    let (_, again) = vm.sync("2.0.0.5", false);
    assert_eq!(again.unwrap().backups, (0, 20));
}
