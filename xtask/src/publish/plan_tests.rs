//! Table tests of the planner: one row for every live state a killed
//! release or rollback can leave behind (the states `tests/fault_matrix.rs`
//! produces end to end), each with the steps the rerun must take.
//!
//! Over 600 lines on purpose: it is one table, a row per live state, and a
//! reader checks the planner by reading the rows side by side; split, the
//! states a kill can leave behind would be in two places to compare.

use std::{collections::BTreeMap, path::PathBuf};

use super::*;
use crate::vm::{Gate, Problem};

const OLD_DMG: &str = "0000000000aa000000000000000000000000000000000000000000000000dmg0";
const NEW_DMG: &str = "1111111111bb111111111111111111111111111111111111111111111111dmg1";
const OLD_PKG: &str = "2222222222cc222222222222222222222222222222222222222222222222pkg2";
const NEW_PKG: &str = "3333333333dd333333333333333333333333333333333333333333333333pkg3";

fn manifest(version: &str, sha: &str) -> String {
    format!("{{\n  \"version\": \"{version}\",\n  \"artifact\": {{\n    \"sha256\": \"{sha}\"\n  }}\n}}\n")
}

fn artifact(kind: Kind, sha: &str) -> Artifact {
    Artifact {
        kind,
        path: PathBuf::from(format!("/inbox/{}", kind.file_name())),
        digest: FileDigest {
            sha256: sha.to_string(),
            size: 100,
        },
        tag: match kind {
            Kind::Dmg => "Update".into(),
            Kind::Pkg => "App".into(),
        },
    }
}

/// An asset as GitHub lists it; `sha` is its digest, `state` its state.
fn asset(id: u64, name: &str, sha: &str, state: &str) -> Asset {
    Asset {
        id,
        name: name.to_string(),
        size: 100,
        state: state.to_string(),
        digest: Some(format!("sha256:{sha}")),
        // gh sets the content type from the file name's extension.
        content_type: if name.ends_with(".dmg") {
            artifact::DMG_CONTENT_TYPE
        } else {
            "application/octet-stream"
        }
        .to_string(),
    }
}

fn live_asset(id: u64, name: &str, sha: &str) -> Asset {
    asset(id, name, sha, "uploaded")
}

fn temp(kind: Kind, sha: &str) -> String {
    tempname::name(kind.file_name(), Temp::Next, &sha[..12])
}

fn prev(kind: Kind, sha: &str) -> String {
    tempname::name(kind.file_name(), Temp::Prev, &sha[..12])
}

/// A temporary name of the old scheme (`Nexy.dmg.next-<sha12>`), as runs
/// before the extension-keeping names left them.
fn old_scheme(kind: Kind, temp: Temp, sha: &str) -> String {
    let word = if temp == Temp::Next { "next" } else { "prev" };
    format!("{}.{word}-{}", kind.file_name(), &sha[..12])
}

/// The release 2.0.0.6 (new DMG and PKG) over 2.0.0.5 on the stable channel.
fn local() -> Local {
    Local {
        artifacts: vec![artifact(Kind::Dmg, NEW_DMG), artifact(Kind::Pkg, NEW_PKG)],
        manifest: Some(FileChange {
            rel: "server/updates/manifests/manifest.json".into(),
            abs: PathBuf::from("/ws/server/updates/manifests/manifest.json"),
            old: manifest("2.0.0.5", OLD_DMG),
            new: manifest("2.0.0.6", NEW_DMG),
        }),
        moves_server_version: true,
        archive_root: PathBuf::from("/ws/release_inbox/.archive"),
        archived: BTreeMap::new(),
    }
}

fn live(dmg: Vec<Asset>, pkg: Vec<Asset>, vm: Option<(&str, &str)>) -> Live {
    Live {
        releases: vec![
            (
                "Update".into(),
                Release {
                    immutable: false,
                    assets: dmg,
                },
            ),
            (
                "App".into(),
                Release {
                    immutable: false,
                    assets: pkg,
                },
            ),
        ],
        vm: VmState {
            manifest: vm.map(|(v, sha)| manifest(v, sha)),
            server_version: vm.map(|(v, _)| v.to_string()),
            running_version: vm.map(|(v, _)| v.to_string()),
            gate: Gate::Ok,
        },
    }
}

/// 2.0.0.5 fully live: the state before a release.
fn old_live() -> Live {
    live(
        vec![live_asset(1, "Nexy.dmg", OLD_DMG)],
        vec![live_asset(2, "Nexy.pkg", OLD_PKG)],
        Some(("2.0.0.5", OLD_DMG)),
    )
}

fn labels(local: &Local, live: &Live) -> Vec<String> {
    plan(local, live).unwrap().iter().map(Step::label).collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const FULL_TAIL: [&str; 6] = [
    "upload Nexy.next-1111111111bb.dmg",
    "upload Nexy.next-3333333333dd.pkg",
    "swap Nexy.dmg",
    "swap Nexy.pkg",
    "write server/updates/manifests/manifest.json",
    "sync vm 2.0.0.6",
];

#[test]
fn nothing_live_uploads_swaps_and_syncs_without_an_archive() {
    let live = live(vec![], vec![], None);
    assert_eq!(labels(&local(), &live), strs(&FULL_TAIL));
}

#[test]
fn the_old_release_live_is_archived_first() {
    let mut want = strs(&["archive 2.0.0.5"]);
    want.extend(strs(&FULL_TAIL));
    assert_eq!(labels(&local(), &old_live()), want);
    let steps = plan(&local(), &old_live()).unwrap();
    let Step::Archive {
        dir,
        assets,
        manifest: archived,
        ..
    } = &steps[0]
    else {
        panic!("{steps:?}")
    };
    assert_eq!(dir, &PathBuf::from("/ws/release_inbox/.archive/2.0.0.5"));
    assert_eq!(
        assets,
        &vec![
            ("Update".to_string(), "Nexy.dmg".to_string(), 100),
            ("App".to_string(), "Nexy.pkg".to_string(), 100)
        ]
    );
    assert_eq!(
        archived.as_deref(),
        Some(manifest("2.0.0.5", OLD_DMG).as_str())
    );
}

#[test]
fn an_archive_holding_what_is_live_is_not_made_again() {
    let mut local = local();
    local
        .archived
        .insert("2.0.0.5".into(), Some(manifest("2.0.0.5", OLD_DMG)));
    let got = labels(&local, &old_live());
    assert_eq!(got[0], "skip archive of 2.0.0.5");
    assert_eq!(got[1..], strs(&FULL_TAIL)[..]);
    // An archive of that version with another manifest is replaced.
    local
        .archived
        .insert("2.0.0.5".into(), Some(manifest("2.0.0.5", NEW_DMG)));
    assert_eq!(labels(&local, &old_live())[0], "archive 2.0.0.5");
    // So is one without a manifest.
    local.archived.insert("2.0.0.5".into(), None);
    assert_eq!(labels(&local, &old_live())[0], "archive 2.0.0.5");
}

#[test]
fn a_cut_short_upload_is_removed_and_uploaded_again() {
    let mut live = old_live();
    live.releases[0]
        .1
        .assets
        .push(asset(9, &temp(Kind::Dmg, NEW_DMG), NEW_DMG, "starter"));
    let got = labels(&local(), &live);
    assert_eq!(got[0], "remove Nexy.next-1111111111bb.dmg");
    assert_eq!(got[1], "archive 2.0.0.5");
    assert_eq!(got[2..], strs(&FULL_TAIL)[..]);
}

#[test]
fn a_complete_upload_is_not_uploaded_again() {
    let mut live = old_live();
    live.releases[0]
        .1
        .assets
        .push(live_asset(9, &temp(Kind::Dmg, NEW_DMG), NEW_DMG));
    live.releases[1]
        .1
        .assets
        .push(live_asset(10, &temp(Kind::Pkg, NEW_PKG), NEW_PKG));
    assert_eq!(
        labels(&local(), &live),
        strs(&[
            "archive 2.0.0.5",
            "swap Nexy.dmg",
            "swap Nexy.pkg",
            "write server/updates/manifests/manifest.json",
            "sync vm 2.0.0.6",
        ])
    );
}

#[test]
fn an_upload_with_other_bytes_under_the_temp_name_is_replaced() {
    // Same name (same sha prefix) but a different digest: not ours.
    let mut live = old_live();
    live.releases[0]
        .1
        .assets
        .push(live_asset(9, &temp(Kind::Dmg, NEW_DMG), OLD_DMG));
    let got = labels(&local(), &live);
    assert_eq!(got[0], "remove Nexy.next-1111111111bb.dmg");
    assert!(got.contains(&"upload Nexy.next-1111111111bb.dmg".to_string()));
}

#[test]
fn leftovers_of_an_older_run_are_removed() {
    let mut live = old_live();
    live.releases[0]
        .1
        .assets
        .push(live_asset(9, &temp(Kind::Dmg, OLD_PKG), OLD_PKG));
    live.releases[1]
        .1
        .assets
        .push(live_asset(10, &prev(Kind::Pkg, OLD_DMG), OLD_DMG));
    let got = labels(&local(), &live);
    assert_eq!(
        got[..2],
        strs(&[
            "remove Nexy.next-2222222222cc.dmg",
            "remove Nexy.prev-0000000000aa.pkg"
        ])[..]
    );
    assert_eq!(got[2], "archive 2.0.0.5");
}

#[test]
fn a_swap_cut_after_its_first_rename_is_finished() {
    // Live renamed to .prev-, the good upload still under its temp name.
    let dmg = vec![
        live_asset(1, &prev(Kind::Dmg, OLD_DMG), OLD_DMG),
        live_asset(9, &temp(Kind::Dmg, NEW_DMG), NEW_DMG),
    ];
    let live = live(
        dmg,
        vec![live_asset(2, "Nexy.pkg", OLD_PKG)],
        Some(("2.0.0.5", OLD_DMG)),
    );
    let got = labels(&local(), &live);
    assert_eq!(
        got,
        strs(&[
            // The replaced asset goes; the swap is finished from the upload.
            "remove Nexy.prev-0000000000aa.dmg",
            // Nothing live for the DMG, so the archive comes from the PKG
            // and the manifest, which still agree.
            "archive 2.0.0.5",
            "upload Nexy.next-3333333333dd.pkg",
            "swap Nexy.dmg",
            "swap Nexy.pkg",
            "write server/updates/manifests/manifest.json",
            "sync vm 2.0.0.6",
        ])
    );
}

#[test]
fn a_swap_cut_after_its_first_rename_without_an_upload_is_undone() {
    // The upload is gone (removed by hand or never complete): put the old
    // asset back under the fixed name.
    let dmg = vec![
        live_asset(1, &prev(Kind::Dmg, OLD_DMG), OLD_DMG),
        asset(9, &temp(Kind::Dmg, NEW_DMG), NEW_DMG, "starter"),
    ];
    let live = live(
        dmg,
        vec![live_asset(2, "Nexy.pkg", OLD_PKG)],
        Some(("2.0.0.5", OLD_DMG)),
    );
    let steps = plan(&local(), &live).unwrap();
    let Step::Restore { asset, name, tag } = &steps[0] else {
        panic!("{steps:?}")
    };
    assert_eq!(
        (asset.id, name.as_str(), tag.as_str()),
        (1, "Nexy.dmg", "Update")
    );
    let got: Vec<String> = steps.iter().map(Step::label).collect();
    assert_eq!(got[1], "remove Nexy.next-1111111111bb.dmg");
    assert!(got.contains(&"upload Nexy.next-1111111111bb.dmg".to_string()));
}

#[test]
fn a_finished_swap_whose_delete_was_cut_removes_the_prev_asset() {
    let dmg = vec![
        live_asset(1, &prev(Kind::Dmg, OLD_DMG), OLD_DMG),
        live_asset(9, "Nexy.dmg", NEW_DMG),
    ];
    let pkg = vec![
        live_asset(2, &prev(Kind::Pkg, OLD_PKG), OLD_PKG),
        live_asset(10, "Nexy.pkg", NEW_PKG),
    ];
    let live = live(dmg, pkg, Some(("2.0.0.5", OLD_DMG)));
    assert_eq!(
        labels(&local(), &live),
        strs(&[
            "remove Nexy.prev-0000000000aa.dmg",
            "skip Nexy.dmg in Update",
            "remove Nexy.prev-2222222222cc.pkg",
            "skip Nexy.pkg in App",
            "write server/updates/manifests/manifest.json",
            "sync vm 2.0.0.6",
        ])
    );
}

#[test]
fn the_new_dmg_live_with_the_old_manifest_is_not_archived() {
    // Killed between the DMG's swap and the PKG's: the live DMG is not
    // the one the VM's manifest describes.
    let live = live(
        vec![live_asset(9, "Nexy.dmg", NEW_DMG)],
        vec![live_asset(2, "Nexy.pkg", OLD_PKG)],
        Some(("2.0.0.5", OLD_DMG)),
    );
    let got = labels(&local(), &live);
    assert_eq!(
        got,
        strs(&[
            "skip Nexy.dmg in Update",
            "skip archive",
            "upload Nexy.next-3333333333dd.pkg",
            "swap Nexy.pkg",
            "write server/updates/manifests/manifest.json",
            "sync vm 2.0.0.6",
        ])
    );
}

#[test]
fn assets_live_and_the_vm_behind_only_syncs() {
    let mut local = local();
    let live = live(
        vec![live_asset(9, "Nexy.dmg", NEW_DMG)],
        vec![live_asset(10, "Nexy.pkg", NEW_PKG)],
        Some(("2.0.0.5", OLD_DMG)),
    );
    // The repository's manifest was already written by the killed run.
    let change = local.manifest.as_mut().unwrap();
    change.old = change.new.clone();
    assert_eq!(
        labels(&local, &live),
        strs(&[
            "skip Nexy.dmg in Update",
            "skip Nexy.pkg in App",
            "sync vm 2.0.0.6"
        ])
    );
}

#[test]
fn everything_live_is_a_no_op() {
    let mut local = local();
    let change = local.manifest.as_mut().unwrap();
    change.old = change.new.clone();
    // The second row: the release lease (`lease/`) is an asset of the
    // DMG's release while a release runs; it is never a leftover.
    let lease = asset(11, crate::lease::NAME, NEW_DMG, "uploaded");
    for dmg_release in [
        vec![live_asset(9, "Nexy.dmg", NEW_DMG)],
        vec![live_asset(9, "Nexy.dmg", NEW_DMG), lease],
    ] {
        let live = live(
            dmg_release,
            vec![live_asset(10, "Nexy.pkg", NEW_PKG)],
            Some(("2.0.0.6", NEW_DMG)),
        );
        assert_eq!(
            labels(&local, &live),
            strs(&[
                "skip Nexy.dmg in Update",
                "skip Nexy.pkg in App",
                "skip VM manifest"
            ]),
            "with the lease beside the DMG: {}",
            live.releases[0].1.assets.len() > 1
        );
    }
}

#[test]
fn the_stable_vm_must_also_serve_the_version() {
    // The manifest was installed but SERVER_VERSION not moved (killed
    // inside the sync script): stable syncs again, beta does not care.
    let mut local = local();
    let change = local.manifest.as_mut().unwrap();
    change.old = change.new.clone();
    let mut live = live(
        vec![live_asset(9, "Nexy.dmg", NEW_DMG)],
        vec![live_asset(10, "Nexy.pkg", NEW_PKG)],
        Some(("2.0.0.6", NEW_DMG)),
    );
    live.vm.server_version = Some("2.0.0.5".into());
    live.vm.running_version = Some("2.0.0.5".into());
    assert_eq!(labels(&local, &live).last().unwrap(), "sync vm 2.0.0.6");
    local.moves_server_version = false;
    assert_eq!(labels(&local, &live).last().unwrap(), "skip VM manifest");
}

/// The VM sync step of a plan: (restart, why).
fn sync_step(local: &Local, live: &Live) -> Option<(bool, String)> {
    plan(local, live)
        .unwrap()
        .into_iter()
        .find_map(|s| match s {
            Step::SyncVm { restart, why, .. } => Some((restart, why)),
            _ => None,
        })
}

#[test]
fn only_a_move_of_the_servers_own_version_restarts_it() {
    // (moves the server's version, SERVER_VERSION, /health answers, restart, why)
    type Row<'a> = (bool, Option<&'a str>, Option<&'a str>, bool, &'a str);
    let rows: [Row; 8] = [
        (
            true,
            Some("2.0.0.5"),
            Some("2.0.0.5"),
            true,
            "SERVER_VERSION moves from 2.0.0.5 to 2.0.0.6",
        ),
        (
            true,
            Some("2.0.0.5"),
            None,
            true,
            "SERVER_VERSION moves from 2.0.0.5 to 2.0.0.6",
        ),
        (
            true,
            None,
            Some("2.0.0.5"),
            true,
            "config.env names no SERVER_VERSION",
        ),
        (
            true,
            Some("2.0.0.6"),
            Some("2.0.0.5"),
            true,
            "voice-assistant answers 2.0.0.5 (a restart was cut short)",
        ),
        (true, Some("2.0.0.6"), None, true, "does not answer /health"),
        (
            true,
            Some("2.0.0.6"),
            Some("2.0.0.6"),
            false,
            "already runs 2.0.0.6; only the manifest changes",
        ),
        (
            false,
            Some("2.0.0.5"),
            Some("2.0.0.5"),
            false,
            "this channel's manifest is served from disk",
        ),
        (
            false,
            None,
            None,
            false,
            "server, whose own version stays as it is",
        ),
    ];
    for (moves, configured, running, want, why_part) in rows {
        let vm = VmState {
            server_version: configured.map(str::to_string),
            running_version: running.map(str::to_string),
            ..VmState::default()
        };
        let (restart, why) = restart_decision(moves, &vm, "2.0.0.6");
        assert_eq!(restart, want, "{moves} {configured:?} {running:?}: {why}");
        assert!(why.contains(why_part), "{why}");
        assert!(
            why.starts_with(if want { "restart: " } else { "no restart: " }),
            "{why}"
        );
    }
}

#[test]
fn a_beta_release_syncs_the_manifest_without_a_restart() {
    let mut local = local();
    local.moves_server_version = false;
    let got = labels(&local, &old_live());
    assert_eq!(got.last().unwrap(), "sync manifest 2.0.0.6");
    assert!(!got.iter().any(|l| l.starts_with("sync vm ")), "{got:?}");
    assert!(!sync_step(&local, &old_live()).unwrap().0);
}

#[test]
fn a_stable_manifest_only_change_does_not_restart() {
    // The server already runs 2.0.0.6; the manifest changes (a new DMG of
    // the same version): the manifest is synced, the service left alone.
    let local = local();
    let mut live = old_live();
    live.vm.server_version = Some("2.0.0.6".into());
    live.vm.running_version = Some("2.0.0.6".into());
    assert_eq!(
        labels(&local, &live).last().unwrap(),
        "sync manifest 2.0.0.6"
    );
    let (restart, why) = sync_step(&local, &live).unwrap();
    assert!(!restart && why.contains("already runs 2.0.0.6"), "{why}");
    // A stable release that moves the version is the one that restarts.
    assert_eq!(
        labels(&local, &old_live()).last().unwrap(),
        "sync vm 2.0.0.6"
    );
}

#[test]
fn a_vm_that_could_not_restart_stops_the_plan_before_any_step() {
    let mut live = old_live();
    live.vm.gate = Gate::Refused(vec![
        Problem::KeyPlaceholder,
        Problem::VersionLines("1".into()),
    ]);
    let err = format!("{:#}", plan(&local(), &live).unwrap_err());
    for part in [
        "cannot restart voice-assistant into 2.0.0.6",
        "placeholder YOUR_GEMINI_API_KEY_HERE",
        "1 SERVER_VERSION/SERVER_BUILD line(s)",
        "no fixed asset was replaced, nothing was written, and the VM is untouched",
        "rerun `cargo xtask publish`",
    ] {
        assert!(err.contains(part), "{part:?} not in {err}");
    }
    // A read that printed no verdict is no permission to restart either.
    live.vm.gate = Gate::Unknown;
    assert!(plan(&local(), &live).is_err());
    // A sync that does not restart does not need the gate.
    let mut beta = local();
    beta.moves_server_version = false;
    assert_eq!(
        labels(&beta, &live).last().unwrap(),
        "sync manifest 2.0.0.6"
    );
    let mut manifest_only = old_live();
    manifest_only.vm.gate = Gate::Refused(vec![Problem::KeyMissing]);
    manifest_only.vm.server_version = Some("2.0.0.6".into());
    manifest_only.vm.running_version = Some("2.0.0.6".into());
    assert!(plan(&local(), &manifest_only).is_ok());
}

#[test]
fn an_unreadable_vm_manifest_makes_no_rollback_point() {
    // With a live DMG, nothing says which version it is: no archive.
    let mut state = old_live();
    state.vm.manifest = Some("not json".into());
    let got = labels(&local(), &state);
    assert_eq!(got[0], "skip archive");
    assert_eq!(got[1..], strs(&FULL_TAIL)[..]);
    // With only a PKG live, the version cannot be named at all: stop.
    let mut live = live(vec![], vec![live_asset(2, "Nexy.pkg", OLD_PKG)], None);
    let err = plan(&local(), &live).unwrap_err();
    assert!(
        format!("{err}").contains("live manifest on the VM cannot be read"),
        "{err}"
    );
    live.vm.manifest = Some("[]".into());
    assert!(plan(&local(), &live).is_err());
}

#[test]
fn a_pkg_only_release_leaves_the_manifest_alone() {
    let mut local = local();
    local.artifacts.remove(0);
    local.manifest = None;
    let live = live(
        vec![live_asset(1, "Nexy.dmg", OLD_DMG)],
        vec![live_asset(2, "Nexy.pkg", OLD_PKG)],
        Some(("2.0.0.5", OLD_DMG)),
    );
    // No DMG is replaced, so the live DMG and manifest agree: archived.
    assert_eq!(
        labels(&local, &live),
        strs(&[
            "archive 2.0.0.5",
            "upload Nexy.next-3333333333dd.pkg",
            "swap Nexy.pkg",
            "skip manifest",
        ])
    );
}

#[test]
fn a_rollback_over_a_release_archives_it_and_restores_the_old_bytes() {
    // Rollback to 2.0.0.5 with 2.0.0.6 live: the planner sees the archived
    // bytes as local ones and the archived manifest as the new one.
    let mut local = Local {
        artifacts: vec![artifact(Kind::Dmg, OLD_DMG), artifact(Kind::Pkg, OLD_PKG)],
        ..local()
    };
    let change = local.manifest.as_mut().unwrap();
    change.old = manifest("2.0.0.6", NEW_DMG);
    change.new = manifest("2.0.0.5", OLD_DMG);
    local
        .archived
        .insert("2.0.0.6".into(), Some(manifest("2.0.0.6", NEW_DMG)));
    let live = live(
        vec![live_asset(9, "Nexy.dmg", NEW_DMG)],
        vec![live_asset(10, "Nexy.pkg", NEW_PKG)],
        Some(("2.0.0.6", NEW_DMG)),
    );
    assert_eq!(
        labels(&local, &live),
        strs(&[
            "skip archive of 2.0.0.6",
            "upload Nexy.next-0000000000aa.dmg",
            "upload Nexy.next-2222222222cc.pkg",
            "swap Nexy.dmg",
            "swap Nexy.pkg",
            "write server/updates/manifests/manifest.json",
            "sync vm 2.0.0.5",
        ])
    );
}

#[test]
fn a_release_missing_from_live_state_is_an_error_not_a_panic() {
    let mut live = old_live();
    live.releases.pop();
    assert!(plan(&local(), &live).is_err());
}

#[test]
fn old_scheme_leftovers_are_removed_and_the_upload_uses_the_new_name() {
    // A run before the extension-keeping names was killed after its
    // uploads: both temporaries have the right bytes but the old names
    // (and the DMG the wrong content type), so they are removed and the
    // artifacts are uploaded again under the new names.
    let mut live = old_live();
    live.releases[0].1.assets.push(live_asset(
        9,
        &old_scheme(Kind::Dmg, Temp::Next, NEW_DMG),
        NEW_DMG,
    ));
    live.releases[1].1.assets.push(live_asset(
        10,
        &old_scheme(Kind::Pkg, Temp::Next, NEW_PKG),
        NEW_PKG,
    ));
    let got = labels(&local(), &live);
    assert_eq!(
        got[..3],
        strs(&[
            "remove Nexy.dmg.next-1111111111bb",
            "remove Nexy.pkg.next-3333333333dd",
            "archive 2.0.0.5",
        ])
    );
    assert_eq!(got[3..], strs(&FULL_TAIL));
}

#[test]
fn an_old_scheme_prev_with_no_live_asset_is_restored() {
    // Killed by an older run between its two renames: the live DMG is
    // only under its old `.prev-` name, and no new upload exists.
    let mut live = old_live();
    live.releases[0].1.assets = vec![live_asset(
        1,
        &old_scheme(Kind::Dmg, Temp::Prev, OLD_DMG),
        OLD_DMG,
    )];
    let steps = plan(&local(), &live).unwrap();
    assert_eq!(
        steps[0].label(),
        "restore Nexy.dmg.prev-0000000000aa as Nexy.dmg"
    );
}

#[test]
fn a_live_dmg_without_its_content_type_is_uploaded_again() {
    // The live DMG has exactly the new bytes but was stored as
    // `application/octet-stream`: publish replaces it rather than skip it.
    let mut live = old_live();
    live.releases[0].1.assets = vec![live_asset(1, "Nexy.dmg", NEW_DMG)];
    live.releases[0].1.assets[0].content_type = "application/octet-stream".into();
    let got = labels(&local(), &live);
    assert!(
        got.contains(&"upload Nexy.next-1111111111bb.dmg".to_string()),
        "{got:?}"
    );
    assert!(got.contains(&"swap Nexy.dmg".to_string()), "{got:?}");
    // With its content type it is skipped.
    live.releases[0].1.assets[0].content_type = artifact::DMG_CONTENT_TYPE.into();
    let got = labels(&local(), &live);
    assert!(
        got.iter().any(|l| l.starts_with("skip Nexy.dmg in Update")),
        "{got:?}"
    );
    assert!(
        !got.contains(&"upload Nexy.next-1111111111bb.dmg".to_string()),
        "{got:?}"
    );
}
