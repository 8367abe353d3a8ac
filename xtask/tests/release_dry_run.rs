//! `--dry-run` of release, publish and rollback against the stand-in: the
//! plan is printed as the equivalent gh/az commands, and nothing changes:
//! no mutating request, the same asset bytes, the same VM files, the same
//! workspace byte for byte.

mod common;
#[path = "common/more.rs"]
mod more;

use std::fs;

use common::stage::{Stage, MANIFEST};
use more::{sha256_hex, tree, GH_REPO};

/// Everything a dry run must leave alone.
struct World {
    workspace: common::Snapshot,
    vm: std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
    running: Vec<u8>,
    assets: Vec<Option<Vec<u8>>>,
    log_len: usize,
}

const ASSETS: [(&str, &str); 2] = [("Update", "Nexy.dmg"), ("App", "Nexy.pkg")];

fn world(st: &Stage) -> World {
    World {
        workspace: st.fx.snapshot(),
        vm: tree(&st.sb.vm_app_dir()),
        running: fs::read(st.state_dir().join("feed/running.json")).unwrap(),
        assets: ASSETS
            .iter()
            .map(|(t, n)| st.sb.asset_bytes(t, n))
            .collect(),
        log_len: st.log_len(),
    }
}

/// Nothing changed since `before`: requests, VM, feed, assets, workspace.
fn assert_unchanged(st: &Stage, before: &World, what: &str) {
    let mutating = st.mutating_since(before.log_len);
    assert!(
        mutating.is_empty(),
        "{what} sent mutating requests: {mutating:?}"
    );
    // The only az calls are reads (no VM sync, no restart).
    for r in st.sb.requests().into_iter().skip(before.log_len) {
        assert_ne!(r.kind, "systemctl", "{what} restarted the service: {r:?}");
        if r.kind == "arm" && r.url.contains("/runCommand") {
            let body = r.body.unwrap_or_default();
            assert!(
                !body.contains("systemctl") && !body.contains("base64 -d"),
                "{what} ran a writing script on the VM: {body}"
            );
        }
    }
    let vm = tree(&st.sb.vm_app_dir());
    assert_eq!(
        vm.keys().collect::<Vec<_>>(),
        before.vm.keys().collect::<Vec<_>>(),
        "{what} changed the VM's file list"
    );
    for (path, bytes) in &before.vm {
        assert!(
            vm[path] == *bytes,
            "{what} changed the VM's {}",
            path.display()
        );
    }
    assert!(
        fs::read(st.state_dir().join("feed/running.json")).unwrap() == before.running,
        "{what} restarted the service"
    );
    for ((tag, name), old) in ASSETS.iter().zip(&before.assets) {
        assert!(
            st.sb.asset_bytes(tag, name) == *old,
            "{what} changed {name} in {tag}"
        );
    }
    let now = st.fx.snapshot();
    let changed: Vec<_> = now
        .iter()
        .filter(|(p, v)| before.workspace.get(*p) != Some(v))
        .map(|(p, _)| p.display().to_string())
        .chain(
            before
                .workspace
                .keys()
                .filter(|p| !now.contains_key(*p))
                .map(|p| format!("{} (removed)", p.display())),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "{what} changed the workspace: {changed:?}"
    );
    for leftover in [".archive", ".journal.jsonl", ".release.lock"] {
        assert!(
            !st.fx.path("release_inbox").join(leftover).exists()
                || before
                    .workspace
                    .keys()
                    .any(|p| p.starts_with(format!("release_inbox/{leftover}"))),
            "{what} created release_inbox/{leftover}"
        );
    }
}

/// `out` with the run's temporary paths named, so that it compares as a
/// whole from run to run.
/// Asset ids are named too: the stand-in numbers uploads in the order
/// they finish, and two run side by side. So is the stand-in's port (the
/// VM sync asks the service's ports through it).
fn normalized(st: &Stage, out: &str) -> String {
    let text = out
        .replace(st.fx.root().to_str().unwrap(), "<root>")
        .replace(st.state_dir().to_str().unwrap(), "<stand-in>")
        .replace(&format!("127.0.0.1:{}/", st.sb.port()), "127.0.0.1:<port>/");
    let marker = "releases/assets/";
    let mut rest = text.as_str();
    let mut done = String::new();
    while let Some(at) = rest.find(marker) {
        let (head, tail) = rest.split_at(at + marker.len());
        done.push_str(head);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            done.push_str("<id>");
        }
        rest = &tail[digits..];
    }
    done.push_str(rest);
    done
}

#[test]
fn release_and_publish_dry_runs_print_the_plan_and_change_nothing() {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    // Something is live already, so the plan has an archive and a swap.
    st.samples(9, 1 << 20);
    let live_dmg = st.inbox_bytes("Nexy.dmg");
    let live_dmg_id = st.sb.seed_asset("Update", "Nexy.dmg", &live_dmg).unwrap();
    st.sb
        .seed_asset("App", "Nexy.pkg", &st.inbox_bytes("Nexy.pkg"))
        .unwrap();
    // The live manifest describes the live DMG, as after a real release,
    // so that the live version is a rollback point worth archiving.
    let vm_manifest = st.sb.vm_app_dir().join(MANIFEST);
    let text = std::fs::read_to_string(&vm_manifest).unwrap();
    let old_sha = serde_json::from_str::<serde_json::Value>(&text).unwrap()["artifact"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(&vm_manifest, text.replace(&old_sha, &sha256_hex(&live_dmg))).unwrap();
    st.samples(1, (1 << 20) + 4096);
    let dmg = st.inbox_bytes("Nexy.dmg");
    let pkg = st.inbox_bytes("Nexy.pkg");
    let (dmg_sha, pkg_sha) = (sha256_hex(&dmg), sha256_hex(&pkg));

    let before = world(&st);
    let run = st.run(&["release", "--dry-run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    for want in [
        "preflight: all checks passed",
        "== stage 2/3: publish (dry run)",
        "plan for channel stable:",
        // The archive of what is live, by the VM's manifest version.
        "archive live 2.0.0.4 into",
        &format!("$ gh release download Update -R {GH_REPO} --pattern Nexy.dmg --dir"),
        &format!("$ gh release download App -R {GH_REPO} --pattern Nexy.pkg --dir"),
        // Uploads under digest-derived temporary names, never --clobber.
        &format!(
            "$ gh release upload Update '<staging>/Nexy.next-{}.dmg' -R {GH_REPO}",
            &dmg_sha[..12]
        ),
        &format!(
            "$ gh release upload App '<staging>/Nexy.next-{}.pkg' -R {GH_REPO}",
            &pkg_sha[..12]
        ),
        &format!("({} bytes, sha256 {dmg_sha})", dmg.len()),
        // The swap by renames, with the body gh reads from stdin.
        &format!(
            "$ gh api --hostname github.localhost -X PATCH repos/Seregawpn/Nexy_production/releases/assets/{live_dmg_id} -H 'Content-Type: application/json; charset=utf-8' --input - <<< '{{\"name\":\"Nexy.prev-{}.dmg\"}}'",
            &sha256_hex(&live_dmg)[..12]
        ),
        &format!(
            "$ gh api --hostname github.localhost -X PATCH 'repos/Seregawpn/Nexy_production/releases/assets/<id of Nexy.next-{}.dmg>' -H 'Content-Type: application/json; charset=utf-8' --input - <<< '{{\"name\":\"Nexy.dmg\"}}'",
            &dmg_sha[..12]
        ),
        &format!("$ gh api --hostname github.localhost -X DELETE repos/Seregawpn/Nexy_production/releases/assets/{live_dmg_id}"),
        // The manifest diff and the VM sync.
        &format!("+    \"sha256\": \"{dmg_sha}\","),
        &format!("+    \"size\": {},", dmg.len()),
        "$ az vm run-command invoke -g NexyNewRG -n NexyNew --command-id RunShellScript --scripts",
        "dry run: nothing was uploaded, renamed, deleted or written",
        "release dry run: nothing was changed",
    ] {
        assert!(out.contains(want), "release --dry-run lacks `{want}`:\n{out}");
    }
    assert!(
        !out.contains("--clobber -R") && !out.contains("upload Update Nexy.dmg"),
        "{out}"
    );
    assert!(
        !out.contains("stage 3/3"),
        "a dry run must not verify:\n{out}"
    );
    assert_unchanged(&st, &before, "release --dry-run");

    let before = world(&st);
    let run = st.run(&["publish", "--dry-run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for want in [
        "plan for channel stable:",
        &format!(
            "$ gh release upload Update '<staging>/Nexy.next-{}.dmg' -R {GH_REPO}",
            &dmg_sha[..12]
        ),
        "--input - <<< '{\"name\":\"Nexy.dmg\"}'",
        "$ az vm run-command invoke -g NexyNewRG -n NexyNew --command-id RunShellScript --scripts 'set -eu",
        "dry run: nothing was uploaded, renamed, deleted or written",
    ] {
        assert!(
            run.stdout.contains(want),
            "publish --dry-run lacks `{want}`:\n{}",
            run.stdout
        );
    }
    assert_unchanged(&st, &before, "publish --dry-run");
    // The whole output, the VM script included, as one snapshot.
    common::assert_golden("publish_dry_run.txt", &normalized(&st, &run.stdout));
    // Still what was seeded: the dry runs did not touch the live DMG.
    assert_eq!(st.sb.asset_bytes("Update", "Nexy.dmg").unwrap(), live_dmg);
}

#[test]
fn rollback_dry_run_after_a_release_pair_changes_nothing() {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, 1 << 20);
    let old_dmg = st.inbox_bytes("Nexy.dmg");
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(st.run(&["bump", "2.0.0.6"]).code, 0);
    st.samples(2, (1 << 20) + 4096);
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(st
        .fx
        .path("release_inbox/.archive/2.0.0.5/.complete")
        .is_file());
    let new_manifest = st.vm_manifest();

    let before = world(&st);
    let run = st.run(&["rollback", "--dry-run"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let out = &run.stdout;
    for want in [
        "rollback 2.0.0.6 -> 2.0.0.5",
        "warning: this does not downgrade clients",
        "plan for channel stable:",
        // 2.0.0.6 was kept as a rollback point when it was published.
        "skip archive of 2.0.0.6: already archived",
        &format!(
            "$ gh release upload Update '<staging>/Nexy.next-{}.dmg' -R {GH_REPO}",
            &sha256_hex(&old_dmg)[..12]
        ),
        "--input - <<< '{\"name\":\"Nexy.dmg\"}'",
        "+  \"version\": \"2.0.0.5\",",
        "$ az vm run-command invoke -g NexyNewRG -n NexyNew",
        "dry run: nothing was uploaded, renamed, deleted or written",
    ] {
        assert!(
            out.contains(want),
            "rollback --dry-run lacks `{want}`:\n{out}"
        );
    }
    assert!(
        !out.contains("verify (DoD)"),
        "a dry run must not verify:\n{out}"
    );
    assert_unchanged(&st, &before, "rollback --dry-run");
    common::assert_golden("rollback_dry_run.txt", &normalized(&st, &run.stdout));
    assert_eq!(st.vm_manifest(), new_manifest);
    assert_eq!(st.fx.read(MANIFEST), new_manifest);
    // 2.0.0.6's archive was made by its real publish, before the dry run;
    // assert_unchanged above proves the dry run did not touch it.
    assert!(st
        .fx
        .path("release_inbox/.archive/2.0.0.6/.complete")
        .is_file());
}
