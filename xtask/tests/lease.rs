//! The release lease across machines: two clones of the workspace (two
//! temporary copies of the tracked tree) against one stand-in, with the
//! real gh. One release at a time; a killed holder's lease is taken over
//! after its expiry, a live holder's never.

mod common;
#[path = "common/more.rs"]
mod more;

use std::{
    fs,
    os::unix::process::CommandExt,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use common::{stage::Stage, Fixture};
use more::{manifest_field, release_json, sha256_hex, wait_until};
use nexy_sandbox::{faults::Delay, Faults};

const LEASE: &str = "nexy-release.lease";

/// Short lifetimes for the tests: a lease not renewed for 3 s is expired.
fn lease_config(st: &Stage, ttl: u64, wait: u64) {
    let mut text = fs::read_to_string(&st.config).unwrap();
    if let Some(at) = text.find("\n[lease]") {
        text.truncate(at + 1);
    }
    text.push_str(&format!(
        "\n[lease]\nttl_secs = {ttl}\nwait_secs = {wait}\npoll_secs = 1\n"
    ));
    fs::write(&st.config, text).unwrap();
}

/// xtask in the clone at `root`, against the stand-in.
fn xtask_in(st: &Stage, root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args)
        .arg("--config")
        .arg(&st.config)
        .arg("--root")
        .arg(root)
        .envs(st.env())
        .current_dir(root)
        .stdin(Stdio::null());
    cmd
}

/// xtask in `root`, in its own process group, its output in `log`.
fn spawn_in(st: &Stage, root: &Path, args: &[&str], log: &Path) -> Child {
    xtask_in(st, root, args)
        .stdout(fs::File::create(log.with_extension("out")).unwrap())
        .stderr(fs::File::create(log).unwrap())
        .process_group(0)
        .spawn()
        .unwrap()
}

fn run_in(st: &Stage, root: &Path, args: &[&str]) -> (i32, String) {
    let out = xtask_in(st, root, args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Waits for `child` at most `limit`; kills its group when it overruns.
fn finish(child: &mut Child, limit: Duration) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() >= deadline {
            kill_group(child);
            panic!("a release overran {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// A second clone: a fresh copy of the tracked tree with its own inbox.
fn second_clone(st: &Stage, version: &str, seed: u64) -> Fixture {
    let fx = Fixture::new();
    assert_eq!(run_in(st, fx.root(), &["bump", version]).0, 0);
    // Made in clone B, so that the apps inside carry B's VERSION (the
    // samples are real images whose embedded version preflight reads).
    let inbox = fx.path("release_inbox");
    let (seed, dmg, pkg) = (
        seed.to_string(),
        (2u64 << 20).to_string(),
        (1u64 << 20).to_string(),
    );
    let (code, out) = run_in(
        st,
        fx.root(),
        &[
            "samples",
            "--out",
            inbox.to_str().unwrap(),
            "--seed",
            &seed,
            "--dmg-size",
            &dmg,
            "--pkg-size",
            &pkg,
        ],
    );
    assert_eq!(code, 0, "{out}");
    fx
}

/// The lease asset of `Update`: `(id, updated_at, label)`.
fn lease_of(st: &Stage) -> Option<(u64, String, String)> {
    release_json(st, "Update")["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == LEASE)
        .map(|a| {
            (
                a["id"].as_u64().unwrap(),
                a["updated_at"].as_str().unwrap().to_string(),
                a["label"].as_str().unwrap_or("").to_string(),
            )
        })
}

fn live_dmg_sha(st: &Stage) -> String {
    release_json(st, "Update")["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "Nexy.dmg")
        .and_then(|a| a["digest"].as_str())
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string()
}

fn public_dmg_sha(st: &Stage, dir: &Path) -> String {
    let out = st.gh(&[
        "release",
        "download",
        "Update",
        "-R",
        "github.localhost/Seregawpn/Nexy_production",
        "--pattern",
        "Nexy.dmg",
        "--dir",
        dir.to_str().unwrap(),
        "--clobber",
    ]);
    assert!(out.status.success(), "{out:?}");
    sha256_hex(&fs::read(dir.join("Nexy.dmg")).unwrap())
}

#[test]
fn two_releases_from_two_clones_run_one_at_a_time() {
    let st = Stage::new();
    lease_config(&st, 10, 240);
    // Clone A (the stage's own workspace) and clone B, bumped to two versions.
    assert_eq!(st.run(&["bump", "2.0.0.33"]).code, 0);
    st.samples(33, 2 << 20);
    let b = second_clone(&st, "2.0.0.34", 34);
    let logs = tempfile::tempdir().unwrap();
    let (la, lb) = (logs.path().join("a.log"), logs.path().join("b.log"));
    let mut a = spawn_in(&st, st.fx.root(), &["release"], &la);
    let mut bc = spawn_in(&st, b.root(), &["release"], &lb);
    let (ca, cb) = (
        finish(&mut a, Duration::from_secs(400)),
        finish(&mut bc, Duration::from_secs(400)),
    );
    let (oa, ob) = (
        fs::read_to_string(&la).unwrap() + &fs::read_to_string(la.with_extension("out")).unwrap(),
        fs::read_to_string(&lb).unwrap() + &fs::read_to_string(lb.with_extension("out")).unwrap(),
    );
    let both = format!("--- A (2.0.0.33), exit {ca}:\n{oa}\n--- B (2.0.0.34), exit {cb}:\n{ob}");
    eprintln!("{both}");
    // The higher version ends live whatever the order: B published first
    // and A was refused under the lease, or A first and B after it.
    assert_eq!(cb, 0, "{both}");
    if ca != 0 {
        // `release` takes the lease before its preflight, which then sees
        // the higher live version; a publish alone refuses under it.
        let by_preflight = oa.contains("2.0.0.33 is older than the live 2.0.0.34")
            && oa.contains("release stopped at preflight: production is untouched");
        let by_publish = oa.contains("refusing to publish: 2.0.0.33 is lower than 2.0.0.34")
            && oa.contains("nothing was changed");
        assert!(by_preflight || by_publish, "{both}");
    }
    assert!(
        oa.contains("waiting for the release lease")
            || ob.contains("waiting for the release lease"),
        "the two releases never met at the lease: {both}"
    );
    assert!(!both.contains("404"), "a message speaks of a 404: {both}");
    // The VM's manifest, the live asset's digest and the public bytes agree.
    let manifest = st.vm_manifest();
    assert_eq!(manifest_field(&manifest, "/version"), "2.0.0.34");
    let b_sha = sha256_hex(&fs::read(b.path("release_inbox/Nexy.dmg")).unwrap());
    assert_eq!(
        manifest_field(&manifest, "/artifact/sha256"),
        b_sha.as_str()
    );
    assert_eq!(live_dmg_sha(&st), b_sha);
    assert_eq!(public_dmg_sha(&st, logs.path()), b_sha);
    assert_eq!(lease_of(&st), None, "the lease was not released");
    assert!(st.creations().is_empty(), "{:?}", st.creations());
}

#[test]
fn a_live_holders_lease_is_never_taken_and_a_killed_ones_is_after_expiry() {
    let st = Stage::new();
    lease_config(&st, 3, 4);
    assert_eq!(st.run(&["bump", "2.0.0.40"]).code, 0);
    st.samples(40, 2 << 20);
    let b = second_clone(&st, "2.0.0.41", 41);
    // A's DMG upload takes 20 s: A holds the lease well past its 3 s
    // lifetime, renewing it.
    st.sb
        .set_faults(Faults {
            delays: vec![Delay {
                method: Some("POST".into()),
                path_contains: "name=Nexy.next-".into(),
                ms: 20_000,
            }],
            ..Faults::default()
        })
        .unwrap();
    let logs = tempfile::tempdir().unwrap();
    let la = logs.path().join("a.log");
    let mut a = spawn_in(&st, st.fx.root(), &["publish"], &la);
    assert!(
        wait_until(Duration::from_secs(60), || lease_of(&st).is_some()),
        "A never took the lease: {}",
        fs::read_to_string(&la).unwrap_or_default()
    );
    let (held_id, first_update, _) = lease_of(&st).unwrap();
    // A's own uploads: its artifacts under their temporary names
    // (`Nexy.next-<sha12>.dmg`, tempname.rs).
    let a_uploads: Vec<String> = [("Nexy.dmg", "dmg"), ("Nexy.pkg", "pkg")]
        .iter()
        .map(|(n, ext)| {
            let sha = sha256_hex(&st.inbox_bytes(n));
            format!("name=Nexy.next-{}.{ext}", &sha[..12])
        })
        .collect();
    let before = st.log_len();
    // B waits its 4 s for a live holder, then fails before any change.
    let (code, out) = run_in(&st, b.root(), &["publish"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("another release holds the lease"), "{out}");
    assert!(
        out.contains("command=publish") || out.contains("publish (gh login"),
        "{out}"
    );
    assert!(out.contains("cargo xtask publish"), "{out}");
    assert!(!out.contains("404"), "{out}");
    let (id_now, renewed_at, _) = lease_of(&st).expect("a live holder's lease was removed");
    assert_eq!(id_now, held_id);
    assert_ne!(
        renewed_at, first_update,
        "the holder never renewed its lease"
    );
    let b_changes: Vec<String> = st
        .mutating_since(before)
        .into_iter()
        // A's own calls: its renewals of the held lease and its upload.
        .filter(|m| !m.starts_with(&format!("PATCH http://api.github.localhost/repos/Seregawpn/Nexy_production/releases/assets/{held_id} ")))
        .filter(|m| !a_uploads.iter().any(|n| m.contains(n.as_str())))
        .collect();
    assert!(
        b_changes.is_empty(),
        "B changed something while A held the lease: {b_changes:?}"
    );
    assert!(a.try_wait().unwrap().is_none(), "A ended early");
    // A is killed while it holds the lease; B takes it over after expiry.
    kill_group(&mut a);
    st.sb.set_faults(Faults::default()).unwrap();
    lease_config(&st, 3, 60);
    let began = Instant::now();
    let (code, out) = run_in(&st, b.root(), &["release"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("expired; taking it over"), "{out}");
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    let journal = fs::read_to_string(b.path("release_inbox/.journal.jsonl")).unwrap();
    assert!(
        journal.contains(&format!("lease takeover {held_id} expired")),
        "{journal}"
    );
    assert_eq!(lease_of(&st), None);
    let b_sha = sha256_hex(&fs::read(b.path("release_inbox/Nexy.dmg")).unwrap());
    assert_eq!(
        manifest_field(&st.vm_manifest(), "/artifact/sha256"),
        b_sha.as_str()
    );
    assert_eq!(live_dmg_sha(&st), b_sha);
    assert_eq!(public_dmg_sha(&st, logs.path()), b_sha);
    // A's clone, run again, refuses its lower version under the lease.
    let (code, out) = run_in(&st, st.fx.root(), &["publish"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("2.0.0.40 is lower than 2.0.0.41"), "{out}");
}

#[test]
fn preflight_dry_run_and_the_lease_command() {
    let st = Stage::new();
    lease_config(&st, 600, 5);
    st.samples(9, 1 << 20);
    let free = st.run(&["lease"]);
    assert_eq!(free.code, 0, "{free:?}");
    assert!(
        free.all()
            .contains("nexy-release.lease on the `Update` release"),
        "{free:?}"
    );
    assert!(free.all().contains(": free"), "{free:?}");
    // A stuck lease left by someone else (a crashed run of another machine).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(LEASE);
    fs::write(&file, "{}\n").unwrap();
    let label = "nexy-release lease login=octo run=0badc0ffee00 command=publish version=2.0.0.9 ttl=600 renewal=0";
    let up = st.gh(&[
        "release",
        "upload",
        "Update",
        &format!("{}#{label}", file.display()),
        "-R",
        "github.localhost/Seregawpn/Nexy_production",
    ]);
    assert!(up.status.success(), "{up:?}");
    let shown = st.run(&["lease"]);
    assert!(
        shown
            .all()
            .contains("held by publish (gh login octo, run 0badc0ffee00"),
        "{shown:?}"
    );
    let pre = st.run(&["preflight"]);
    assert!(
        pre.all().contains("the release lease is held by publish"),
        "{pre:?}"
    );
    let before = st.log_len();
    let dry = st.run(&["publish", "--dry-run"]);
    assert!(
        dry.all().contains("would be taken first; none is taken"),
        "{dry:?}"
    );
    assert!(
        st.mutating_since(before).is_empty(),
        "{:?}",
        st.mutating_since(before)
    );
    // --break without a terminal asks for --yes; with it, the lease goes.
    let no = st.run(&["lease", "--break"]);
    assert_ne!(no.code, 0, "{no:?}");
    assert!(no.all().contains("pass --yes"), "{no:?}");
    assert!(lease_of(&st).is_some());
    let yes = st.run(&["lease", "--break", "--yes"]);
    assert_eq!(yes.code, 0, "{yes:?}");
    assert_eq!(lease_of(&st), None);
    let journal = st.fx.read("release_inbox/.journal.jsonl");
    assert!(journal.contains("lease broken"), "{journal}");
}
