//! The release's Azure round trips and its uploads begun early, end to
//! end with the real az and gh: a whole release makes at most two
//! run-commands (the read before, the sync), retries after a Conflict told
//! apart; the uploads begin under temporary names beside preflight's
//! checks, and a check that fails with uploads begun leaves the fixed
//! URLs, the manifest and the VM as they were and no temporary asset.

mod common;
#[path = "common/more.rs"]
mod more;

use common::stage::{Stage, MANIFEST};
use nexy_sandbox::arm::AzureFaults;
use nexy_sandbox::azure_faults::Times;
use nexy_sandbox::{faults::Delay, Faults};

/// Statuses of the run-command POSTs since `from`, with their time.
fn run_commands(st: &Stage, from: usize) -> Vec<(i64, u64)> {
    st.sb
        .requests()
        .into_iter()
        .skip(from)
        .filter(|r| r.kind == "arm" && r.method == "POST" && r.url.contains("/runCommand"))
        .map(|r| (r.status, r.ts_ms))
        .collect()
}

/// When the first rename of a DMG asset to its fixed name was answered.
fn dmg_swap_ms(st: &Stage, from: usize) -> Option<u64> {
    st.sb
        .requests()
        .into_iter()
        .skip(from)
        .find(|r| {
            r.method == "PATCH"
                && r.url.contains("/releases/assets/")
                && r.body
                    .as_deref()
                    .is_some_and(|b| b.contains("\"Nexy.dmg\""))
        })
        .map(|r| r.ts_ms)
}

#[test]
fn a_release_makes_two_run_commands_and_reports_conflict_retries() {
    let st = Stage::new();
    // Stable: the read before the swap, the sync (with its restart) after.
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, 1 << 20);
    let from = st.log_len();
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let posts = run_commands(&st, from);
    assert_eq!(posts.len(), 2, "{posts:?}\n{}", run.stdout);
    assert!(posts.iter().all(|(s, _)| *s == 202), "{posts:?}");
    let swap = dmg_swap_ms(&st, from).expect("the DMG was swapped");
    assert!(
        posts[0].1 < swap && swap < posts[1].1,
        "one run-command before the swap, one after: {posts:?}, swap at {swap}"
    );
    assert!(
        run.stdout.contains("az run-commands: 2\n"),
        "{}",
        run.stdout
    );
    assert_eq!(st.vm_manifest(), st.fx.read(MANIFEST));

    // Beta, with another operator's run-command in progress twice: the
    // two 409s are retried, reported, and not counted.
    assert_eq!(st.run(&["bump", "2.0.0.6"]).code, 0);
    st.samples_in("release_inbox/beta", 2, 1 << 20);
    st.sb
        .set_faults(Faults {
            azure: AzureFaults {
                busy: Some(Times { times: Some(2) }),
                ..Default::default()
            },
            ..Faults::default()
        })
        .unwrap();
    let from = st.log_len();
    let run = st.run(&["release", "--channel", "beta"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let posts = run_commands(&st, from);
    let accepted = posts.iter().filter(|(s, _)| *s == 202).count();
    let conflicts = posts.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!((accepted, conflicts), (2, 2), "{posts:?}\n{}", run.stdout);
    assert!(
        run.stdout.contains(
            "az run-commands: 2, and 2 retry(ies) after a 409 Conflict (another run-command in progress), not counted"
        ),
        "{}",
        run.stdout
    );
}

/// Everything a failed release must leave as it was.
struct Before {
    dmg: Vec<u8>,
    pkg: Vec<u8>,
    assets: Vec<(String, String)>,
    vm: std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
    manifest: String,
}

impl Before {
    fn of(st: &Stage) -> Before {
        Before {
            dmg: st.sb.asset_bytes("Update", "Nexy.dmg").unwrap(),
            pkg: st.sb.asset_bytes("App", "Nexy.pkg").unwrap(),
            assets: [
                more::asset_names(st, "Update"),
                more::asset_names(st, "App"),
            ]
            .concat(),
            vm: more::tree(&st.sb.vm_app_dir()),
            manifest: st.fx.read(MANIFEST),
        }
    }
}

/// A stand-in with 2.0.0.5 released.
fn released() -> Stage {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, 1 << 20);
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    st
}

#[test]
fn a_failing_check_with_uploads_begun_leaves_production_as_it_was() {
    let st = released();
    assert_eq!(st.run(&["bump", "2.0.0.6"]).code, 0);
    st.samples(2, 1 << 20);

    // Two ways the uploads meet the failing check: done before it (the
    // VM call held 3 s, so the check fails after they finished), and
    // still in flight when it fails (each upload held 6 s).
    let cases = [
        (
            "uploads done before the verdict",
            Faults {
                az_hang_ms: 3000,
                ..Faults::default()
            },
        ),
        (
            "uploads in flight at the verdict",
            Faults {
                delays: vec![Delay {
                    method: Some("POST".into()),
                    path_contains: "name=Nexy.next-".into(),
                    ms: 6000,
                }],
                ..Faults::default()
            },
        ),
    ];
    let config_env = st.sb.vm_app_dir().join("config.env");
    let good_env = std::fs::read_to_string(&config_env).unwrap();
    for (in_flight, (what, faults)) in [false, true].into_iter().zip(cases) {
        // The key is gone from the VM: preflight's gemini-key fails.
        std::fs::write(
            &config_env,
            "SERVER_VERSION=2.0.0.5\nSERVER_BUILD=2.0.0.5\n",
        )
        .unwrap();
        let before = Before::of(&st);
        st.sb.set_faults(faults).unwrap();
        let from = st.log_len();
        let run = st.run(&["release"]);
        st.sb.set_faults(Faults::default()).unwrap();
        assert_eq!(run.code, 1, "{what}:\n{}\n{}", run.stdout, run.stderr);
        assert!(
            run.stdout.contains("GEMINI_API_KEY is missing or empty"),
            "{what}:\n{}",
            run.stdout
        );
        assert!(
            run.stdout
                .contains("release stopped at preflight: production is untouched"),
            "{what}:\n{}",
            run.stdout
        );
        // The uploads had begun, under temporary names, and were removed.
        let log: Vec<_> = st.sb.requests().into_iter().skip(from).collect();
        let uploads = temp_uploads(&st, from);
        assert_eq!(uploads.len(), 2, "{what}: {uploads:?}");
        assert!(
            uploads.iter().all(|(s, _)| *s == 201),
            "{what}: {uploads:?}"
        );
        // When they ended against the VM's answer, which the verdict
        // waits for: before it, or after its last poll.
        let uploaded = uploads.iter().map(|(_, at)| *at).max().unwrap();
        let arm: Vec<u64> = log
            .iter()
            .filter(|r| {
                r.kind == "arm" && (r.url.contains("/runCommand") || r.url.contains("/operations/"))
            })
            .map(|r| r.ts_ms)
            .collect();
        match in_flight {
            false => assert!(uploaded < arm[0], "{what}: {uploaded} vs {arm:?}"),
            true => assert!(
                arm.iter().all(|t| *t < uploaded),
                "{what}: {uploaded} vs {arm:?}"
            ),
        }
        let deletes = log
            .iter()
            .filter(|r| r.method == "DELETE" && r.url.contains("/releases/assets/"))
            .count();
        // Two uploads and the lease.
        assert_eq!(deletes, 3, "{what}: {log:?}");
        // Nothing was renamed, nothing reached the VM but the one read.
        assert!(
            !log.iter().any(|r| r.method == "PATCH"),
            "{what}: a rename happened"
        );
        assert_eq!(run_commands(&st, from).len(), 1, "{what}");
        // Production is exactly as before, and no temporary asset is left.
        let after = Before::of(&st);
        assert!(after.dmg == before.dmg, "{what}: the live DMG changed");
        assert!(after.pkg == before.pkg, "{what}: the live PKG changed");
        assert_eq!(after.assets, before.assets, "{what}");
        assert!(
            !after
                .assets
                .iter()
                .any(|(n, _)| n.contains(".next-") || n.contains(".prev-")),
            "{what}: {:?}",
            after.assets
        );
        assert!(after.vm == before.vm, "{what}: the VM changed");
        assert_eq!(after.manifest, before.manifest, "{what}");
        assert!(st.creations().is_empty());
    }

    // With the key back, the release goes through.
    std::fs::write(&config_env, good_env).unwrap();
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        st.sb.asset_bytes("Update", "Nexy.dmg").as_deref(),
        Some(&st.inbox_bytes("Nexy.dmg")[..])
    );
    assert_eq!(st.vm_manifest(), st.fx.read(MANIFEST));
}

/// The uploads to temporary names since `from`: (status, when answered).
fn temp_uploads(st: &Stage, from: usize) -> Vec<(i64, u64)> {
    st.sb
        .requests()
        .into_iter()
        .skip(from)
        .filter(|r| r.kind == "http" && r.method == "POST")
        .filter(|r| r.url.contains("uploads.github.localhost") && r.url.contains("name=Nexy.next-"))
        .map(|r| (r.status, r.ts_ms))
        .collect()
}

#[test]
fn publish_alone_uploads_beside_its_vm_read_and_a_refusal_removes_them() {
    let st = released();

    // `publish` on its own: the uploads are done before the VM read (a
    // run-command of about a second here, tens in production) has even
    // been answered, then the swap, then the sync: two run-commands.
    assert_eq!(st.run(&["bump", "2.0.0.6"]).code, 0);
    st.samples(2, 1 << 20);
    let from = st.log_len();
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains(", beside the VM read (clients see only Nexy.dmg)"),
        "{}",
        run.stdout
    );
    let posts = run_commands(&st, from);
    let uploads = temp_uploads(&st, from);
    assert_eq!(posts.len(), 2, "{posts:?}\n{}", run.stdout);
    assert_eq!(uploads.len(), 2, "{uploads:?}");
    assert!(
        uploads.iter().all(|(s, at)| *s == 201 && *at < posts[0].1),
        "the uploads ended before the VM read answered: {uploads:?} vs {posts:?}"
    );
    let swap = dmg_swap_ms(&st, from).expect("the DMG was swapped");
    assert!(
        posts[0].1 < swap && swap < posts[1].1,
        "{posts:?}, swap at {swap}"
    );
    assert_eq!(
        st.sb.asset_bytes("Update", "Nexy.dmg").as_deref(),
        Some(&st.inbox_bytes("Nexy.dmg")[..])
    );
    assert_eq!(st.vm_manifest(), st.fx.read(MANIFEST));

    // Bytes of a lower version: the VM read says 2.0.0.6 is live, so the
    // version gate refuses, and the uploads begun beside the read go.
    assert_eq!(st.run(&["bump", "2.0.0.4", "--allow-downgrade"]).code, 0);
    st.samples(3, 1 << 20);
    let before = Before::of(&st);
    let from = st.log_len();
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    for part in [
        "refusing to publish: 2.0.0.4 is lower than 2.0.0.6",
        "nothing was changed",
    ] {
        assert!(run.stderr.contains(part), "{part:?} not in {}", run.stderr);
    }
    assert!(
        run.stdout
            .contains("the 2 upload(s) begun beside the VM read were removed"),
        "{}",
        run.stdout
    );
    let uploads = temp_uploads(&st, from);
    assert_eq!(uploads.len(), 2, "the uploads had begun: {uploads:?}");
    assert_eq!(
        run_commands(&st, from).len(),
        1,
        "only the read reached the VM"
    );
    let log: Vec<_> = st.sb.requests().into_iter().skip(from).collect();
    assert!(
        !log.iter().any(|r| r.method == "PATCH"),
        "a rename happened"
    );
    let after = Before::of(&st);
    assert!(after.dmg == before.dmg, "the live DMG changed");
    assert!(after.pkg == before.pkg, "the live PKG changed");
    assert_eq!(after.assets, before.assets, "a temporary asset is left");
    assert!(after.vm == before.vm, "the VM changed");
    assert_eq!(after.manifest, before.manifest);
    assert!(st.creations().is_empty());
}
