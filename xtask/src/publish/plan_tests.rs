//! Table tests of the planner: one row for every live state a killed
//! release or rollback can leave behind (the states `tests/fault_matrix.rs`
//! produces end to end), each with the steps the rerun must take.

use std::{collections::BTreeMap, path::PathBuf};

use super::*;

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
    }
}

fn live_asset(id: u64, name: &str, sha: &str) -> Asset {
    asset(id, name, sha, "uploaded")
}

fn temp(kind: Kind, sha: &str) -> String {
    format!("{}{NEXT}{}", kind.file_name(), &sha[..12])
}

fn prev(kind: Kind, sha: &str) -> String {
    format!("{}{PREV}{}", kind.file_name(), &sha[..12])
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
    "upload Nexy.dmg.next-1111111111bb",
    "upload Nexy.pkg.next-3333333333dd",
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
    assert_eq!(got[0], "remove Nexy.dmg.next-1111111111bb");
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
    assert_eq!(got[0], "remove Nexy.dmg.next-1111111111bb");
    assert!(got.contains(&"upload Nexy.dmg.next-1111111111bb".to_string()));
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
            "remove Nexy.dmg.next-2222222222cc",
            "remove Nexy.pkg.prev-0000000000aa"
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
            "remove Nexy.dmg.prev-0000000000aa",
            // Nothing live for the DMG, so the archive comes from the PKG
            // and the manifest, which still agree.
            "archive 2.0.0.5",
            "upload Nexy.pkg.next-3333333333dd",
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
    assert_eq!(got[1], "remove Nexy.dmg.next-1111111111bb");
    assert!(got.contains(&"upload Nexy.dmg.next-1111111111bb".to_string()));
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
            "remove Nexy.dmg.prev-0000000000aa",
            "skip Nexy.dmg in Update",
            "remove Nexy.pkg.prev-2222222222cc",
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
            "upload Nexy.pkg.next-3333333333dd",
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
    let live = live(
        vec![live_asset(9, "Nexy.dmg", NEW_DMG)],
        vec![live_asset(10, "Nexy.pkg", NEW_PKG)],
        Some(("2.0.0.6", NEW_DMG)),
    );
    assert_eq!(
        labels(&local, &live),
        strs(&[
            "skip Nexy.dmg in Update",
            "skip Nexy.pkg in App",
            "skip VM manifest"
        ])
    );
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
    assert_eq!(labels(&local, &live).last().unwrap(), "sync vm 2.0.0.6");
    local.moves_server_version = false;
    assert_eq!(labels(&local, &live).last().unwrap(), "skip VM manifest");
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
            "upload Nexy.pkg.next-3333333333dd",
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
            "upload Nexy.dmg.next-0000000000aa",
            "upload Nexy.pkg.next-2222222222cc",
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
