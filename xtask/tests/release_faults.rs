//! publish, verify and rollback against a flaky production: the no-404
//! window measured at the fixed URL, failed and cut-short uploads, the
//! process killed between steps, a stale or stuck feed, and a rollback.
//! Every fault is injected in the stand-in; every outcome is read back from
//! its request log, its asset bytes and its VM files.

mod common;
#[path = "common/more.rs"]
mod more;

use std::{
    sync::{atomic::AtomicBool, atomic::Ordering, Arc},
    time::{Duration, Instant},
};

use common::stage::{Stage, MANIFEST};
use more::{
    asset_id, asset_names, download, group_commands, http_since, journal_has, last_lines,
    longest_gap, manifest_field, poll, sha256_hex, spawn_group, wait_until, GH_REPO,
};
use nexy_sandbox::faults::{Delay, Fail, Faults, UploadCut, UploadFail};

const MIB: u64 = 1 << 20;

/// A stand-in on which 2.0.0.5 (samples of `seed`) has been released.
fn released_2005(seed: u64) -> Stage {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(seed, MIB);
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    st
}

/// Bumps to `version` with new samples (of another size, so that lengths
/// tell old and new apart).
fn next_release(st: &Stage, version: &str, seed: u64, extra: u64) {
    let run = st.run(&["bump", version]);
    assert_eq!(run.code, 0, "{run:?}");
    st.samples(seed, MIB + extra);
}

fn delay(method: &str, path_contains: &str, ms: u64) -> Delay {
    Delay {
        method: Some(method.into()),
        path_contains: path_contains.into(),
        ms,
    }
}

/// The live manifest on the VM describes the live Nexy.dmg of `Update`.
fn assert_vm_manifest_matches_live_dmg(st: &Stage) {
    let live = st
        .sb
        .asset_bytes("Update", "Nexy.dmg")
        .expect("a live Nexy.dmg");
    let m = st.vm_manifest();
    assert_eq!(
        manifest_field(&m, "/artifact/sha256"),
        serde_json::json!(sha256_hex(&live)),
        "the VM manifest's sha256 is not the live DMG's:\n{m}"
    );
    assert_eq!(
        manifest_field(&m, "/artifact/size"),
        serde_json::json!(live.len()),
        "{m}"
    );
}

/// `publish` then `verify` converge on the inbox's artifacts.
fn assert_converges(st: &Stage, what: &str) {
    let run = st.run(&["publish"]);
    assert_eq!(
        run.code, 0,
        "{what}: publish rerun\n{}\n{}",
        run.stdout, run.stderr
    );
    let run = st.run(&["verify"]);
    assert_eq!(
        run.code, 0,
        "{what}: verify\n{}\n{}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.contains("verify (DoD): all checks passed"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("leftover"), "{}", run.stdout);
    let dmg = st.inbox_bytes("Nexy.dmg");
    assert!(
        st.sb.asset_bytes("Update", "Nexy.dmg").as_deref() == Some(dmg.as_slice()),
        "{what}: the live DMG is not the inbox's"
    );
    assert!(
        st.sb.asset_bytes("App", "Nexy.pkg").as_deref()
            == Some(st.inbox_bytes("Nexy.pkg").as_slice()),
        "{what}: the live PKG is not the inbox's"
    );
    // What a client downloads from the fixed URL, byte for byte.
    let got = download(&st.sb.direct_download_url("Update", "Nexy.dmg"));
    assert_eq!(got.status, 200, "{what}");
    assert!(got.body == dmg, "{what}: the fixed URL serves other bytes");
    assert_eq!(st.vm_manifest(), st.fx.read(MANIFEST), "{what}");
    assert_vm_manifest_matches_live_dmg(st);
    assert_eq!(
        asset_names(st, "Update"),
        vec![("Nexy.dmg".to_string(), "uploaded".to_string())],
        "{what}: leftovers in Update"
    );
    assert_eq!(
        asset_names(st, "App"),
        vec![("Nexy.pkg".to_string(), "uploaded".to_string())],
        "{what}: leftovers in App"
    );
    assert!(
        st.creations().is_empty(),
        "{what}: created {:?}",
        st.creations()
    );
}

// ---------------------------------------------------------------------------
// 2. The no-404 window at the fixed URL.

/// Polls the fixed DMG URL every 10 ms while `f` runs; returns the probes.
fn watch(st: &Stage, f: impl FnOnce()) -> Vec<more::Probe> {
    let stop = Arc::new(AtomicBool::new(false));
    let poller = poll(
        st.sb.direct_download_url("Update", "Nexy.dmg"),
        Duration::from_millis(10),
        Duration::from_secs(60),
        stop.clone(),
    );
    // Let it see the old asset first.
    std::thread::sleep(Duration::from_millis(100));
    f();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    poller.join().unwrap()
}

#[test]
fn publish_keeps_the_fixed_url_answering_while_clobber_does_not() {
    let st = released_2005(1);
    let old_len = MIB;
    next_release(&st, "2.0.0.6", 2, 4096);
    let slow_uploads = Faults {
        delays: vec![delay("POST", "/assets?", 1500)],
        ..Faults::default()
    };

    // Ours: upload under a temporary name, then swap by two renames.
    st.sb.set_faults(slow_uploads.clone()).unwrap();
    let mut run = None;
    let ours = watch(&st, || run = Some(st.run(&["publish"])));
    let run = run.unwrap();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let (ours_gap, ours_misses) = longest_gap(&ours);
    // The poller spanned the swap: old bytes first, new bytes last.
    assert_eq!(ours.first().unwrap().len, Some(old_len), "{ours:?}");
    assert_eq!(ours.last().unwrap().len, Some(MIB + 4096));
    // Both uploads run side by side for about 1.5 s; a loaded 2-core
    // machine still gets well over 50 probes in.
    assert!(ours.len() > 50, "too few probes: {}", ours.len());

    // Naive: `gh release upload --clobber` deletes first, then uploads.
    st.samples(3, MIB + 8192);
    st.sb.set_faults(slow_uploads).unwrap();
    let dmg = st.fx.path("release_inbox/Nexy.dmg");
    let mut out = None;
    let naive = watch(&st, || {
        out = Some(st.gh(&[
            "release",
            "upload",
            "Update",
            dmg.to_str().unwrap(),
            "--clobber",
            "-R",
            GH_REPO,
        ]))
    });
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (naive_gap, naive_misses) = longest_gap(&naive);
    assert_eq!(naive.last().unwrap().len, Some(MIB + 8192));

    println!(
        "no-404 window: publish longest non-200 gap {ours_gap} ms ({ours_misses} of {} probes non-200); \
         gh release upload --clobber {naive_gap} ms ({naive_misses} of {} probes non-200)",
        ours.len(),
        naive.len()
    );
    assert!(
        ours_gap < 500,
        "publish left the fixed URL failing for {ours_gap} ms ({ours_misses} probes)"
    );
    assert!(
        naive_gap >= 1000,
        "the naive flow's gap was only {naive_gap} ms: the measurement does not see a 404 window"
    );
}

// ---------------------------------------------------------------------------
// 3a. Every upload fails.

#[test]
fn failed_uploads_leave_the_live_asset_and_a_rerun_converges() {
    let st = released_2005(1);
    let old_dmg = st.sb.asset_bytes("Update", "Nexy.dmg").unwrap();
    let old_manifest = st.vm_manifest();
    next_release(&st, "2.0.0.6", 2, 4096);

    st.sb
        .set_faults(Faults {
            upload_fail: Some(UploadFail {
                nth: 1,
                count: 1000,
                status: 502,
            }),
            ..Faults::default()
        })
        .unwrap();
    let from = st.log_len();
    let failed = st.run(&["publish"]);
    assert_ne!(failed.code, 0, "{}\n{}", failed.stdout, failed.stderr);
    let failed_posts = http_since(&st, from)
        .into_iter()
        .filter(|(m, u, s)| m == "POST" && u.contains("uploads.github.localhost") && *s == 502)
        .count();
    assert!(failed_posts >= 4, "gh tried {failed_posts} time(s)");
    // Production is untouched: the old bytes at the fixed URL, and the live
    // manifest still describes them.
    assert!(st.sb.asset_bytes("Update", "Nexy.dmg").unwrap() == old_dmg);
    let got = download(&st.sb.direct_download_url("Update", "Nexy.dmg"));
    assert!(
        got.status == 200 && got.body == old_dmg,
        "status {}",
        got.status
    );
    assert_eq!(st.vm_manifest(), old_manifest);
    assert_vm_manifest_matches_live_dmg(&st);
    assert!(
        asset_names(&st, "Update")
            .iter()
            .all(|(n, _)| n == "Nexy.dmg"),
        "{:?}",
        asset_names(&st, "Update")
    );

    st.sb.set_faults(Faults::default()).unwrap();
    assert_converges(&st, "after failed uploads");
    // The old release was archived before anything was replaced.
    assert!(
        std::fs::read(st.fx.path("release_inbox/.archive/2.0.0.5/Nexy.dmg")).unwrap() == old_dmg
    );
    // Last: the failed run's final lines name the command that resumes.
    let tail = last_lines(&failed, 3);
    assert!(
        tail.contains("cargo xtask publish"),
        "the last lines do not name the command to rerun:\n{tail}"
    );
}

// ---------------------------------------------------------------------------
// 3b. A cut-short upload.

#[test]
fn a_cut_short_upload_leaves_at_most_a_starter_and_the_next_publish_cleans_it() {
    let st = released_2005(1);
    let old_dmg = st.sb.asset_bytes("Update", "Nexy.dmg").unwrap();
    next_release(&st, "2.0.0.6", 2, 4096);
    let cut = || Faults {
        upload_cut: Some(UploadCut {
            nth: 1,
            after_bytes: 1000,
        }),
        ..Faults::default()
    };

    st.sb.set_faults(cut()).unwrap();
    let run = st.run(&["publish"]);
    println!(
        "publish with a cut upload exited {}:\n{}",
        run.code,
        last_lines(&run, 4)
    );
    // Whatever publish made of it: the live asset is the old one, and the
    // only other asset is a temporary one in state "starter".
    assert!(st.sb.asset_bytes("Update", "Nexy.dmg").unwrap() == old_dmg || run.code == 0);
    // Uploads run side by side, so the cut may hit the PKG while the DMG
    // arrives whole: a complete temporary DMG of the new bytes then waits
    // for its swap, which the rerun does.
    let new_sha = sha256_hex(&st.inbox_bytes("Nexy.dmg"));
    let names = asset_names(&st, "Update");
    for (name, state) in &names {
        let complete_new =
            name == &format!("Nexy.next-{}.dmg", &new_sha[..12]) && state == "uploaded";
        assert!(
            name == "Nexy.dmg"
                || (name.starts_with("Nexy.next-") && state == "starter")
                || complete_new,
            "unexpected asset after a cut upload: {names:?}"
        );
    }

    // A leftover of an interrupted run (a cut upload under a temp name,
    // as gh itself leaves it), so the next publish has something to clean;
    // named in the scheme of runs before temporary names kept the
    // extension, which the cleanup still recognises.
    st.sb.set_faults(cut()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stray = dir.path().join("Nexy.dmg.next-0123456789ab");
    std::fs::write(&stray, st.inbox_bytes("Nexy.dmg")).unwrap();
    let out = st.gh(&[
        "release",
        "upload",
        "Update",
        stray.to_str().unwrap(),
        "-R",
        GH_REPO,
    ]);
    assert!(!out.status.success());
    let names = asset_names(&st, "Update");
    assert!(
        names.contains(&(
            "Nexy.dmg.next-0123456789ab".to_string(),
            "starter".to_string()
        )),
        "{names:?}"
    );
    let run = st.run(&["verify", "--timeout", "1"]);
    assert_eq!(run.code, 1, "verify must see the leftover:\n{}", run.stdout);
    assert!(
        run.stdout
            .contains("leftover assets of an interrupted publish"),
        "{}",
        run.stdout
    );

    st.sb.set_faults(Faults::default()).unwrap();
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("remove leftover Nexy.dmg.next-0123456789ab (state starter)"),
        "{}",
        run.stdout
    );
    assert_converges(&st, "after a cut upload");
}

// ---------------------------------------------------------------------------
// 3c. The process killed between steps.

/// Where a run is killed, and how to tell it is there.
#[derive(Clone, Copy, Debug)]
enum KillPoint {
    /// While gh downloads the live DMG into the archive.
    Archive,
    /// While the server holds the DMG's upload (sent in full).
    Upload,
    /// Between the two renames of the swap: live -> .prev-, not yet temp -> live.
    MidSwap,
    /// After the swap, while the .prev- asset is being deleted.
    DeletePrev,
    /// While az runs the VM sync (az hangs; the script never runs).
    VmSync,
}

/// Runs `publish` as a process group and SIGKILLs it at `point`; returns
/// once whatever the server had received is answered and the faults are
/// cleared. `live_id` is the id of the live Nexy.dmg before the run.
fn kill_at(st: &Stage, point: KillPoint, live_id: u64) {
    let hold = 3000;
    let live_url = format!("/releases/assets/{live_id}");
    // The DMG's upload alone (the PKG's goes beside it).
    let dmg_upload = format!(
        "name=Nexy.next-{}.dmg",
        &sha256_hex(&st.inbox_bytes("Nexy.dmg"))[..12]
    );
    let faults = match point {
        KillPoint::Archive => vec![delay("GET", &live_url, hold)],
        KillPoint::Upload => vec![delay("POST", &dmg_upload, hold)],
        KillPoint::MidSwap => vec![delay("PATCH", &live_url, hold)],
        KillPoint::DeletePrev => vec![delay("DELETE", &live_url, hold)],
        KillPoint::VmSync => vec![],
    };
    st.sb
        .set_faults(Faults {
            delays: faults,
            ..Faults::default()
        })
        .unwrap();
    let from = st.log_len();
    let mut child = spawn_group(st, &["publish"]);
    let pgid = child.child.id();
    let limit = Duration::from_secs(20);
    // The held request as it shows in the log once answered, the journal
    // step it belongs to, and the gh/az process that sends it.
    let (step, method, needle, process): (&str, &str, &str, Vec<String>) = match point {
        KillPoint::Archive => (
            "archive 2.0.0.5",
            "GET",
            live_url.as_str(),
            vec![
                "gh release download Update".into(),
                "--pattern Nexy.dmg".into(),
            ],
        ),
        KillPoint::Upload => (
            "upload Nexy.next-",
            "POST",
            dmg_upload.as_str(),
            vec!["gh release upload Update".into()],
        ),
        KillPoint::MidSwap => (
            "swap Nexy.dmg",
            "PATCH",
            live_url.as_str(),
            vec!["-X PATCH".into(), format!("releases/assets/{live_id} ")],
        ),
        KillPoint::DeletePrev => (
            "swap Nexy.dmg",
            "DELETE",
            live_url.as_str(),
            vec!["-X DELETE".into(), format!("releases/assets/{live_id}")],
        ),
        KillPoint::VmSync => (
            "sync vm 2.0.0.6",
            "",
            "",
            // The real az is `python3 -m azure.cli ...` once running.
            vec!["azure.cli vm run-command invoke".into()],
        ),
    };
    let answered = |st: &Stage| {
        http_since(st, from)
            .iter()
            .any(|(m, url, _)| m == method && url.contains(needle))
    };
    if matches!(point, KillPoint::VmSync) {
        // The VM has been read; from now on az hangs before doing anything.
        assert!(wait_until(limit, || journal_has(
            st,
            "start",
            "archive 2.0.0.5"
        )));
        st.sb
            .set_faults(Faults {
                az_hang_ms: 4000,
                ..Faults::default()
            })
            .unwrap();
    }
    assert!(
        wait_until(limit, || journal_has(st, "start", step)),
        "{point:?}: publish never reached `{step}`:\n{}",
        child.output()
    );
    let sending = || {
        group_commands(pgid)
            .iter()
            .any(|c| process.iter().all(|p| c.contains(p.as_str())))
    };
    assert!(
        wait_until(limit, sending),
        "{point:?}: no process {process:?} appeared:\n{}",
        child.output()
    );
    // Well inside the hold: the request has reached the stand-in and is not
    // answered yet. Waiting for its arrival, not a fixed time, keeps the kill
    // point when a loaded machine is slow to start gh.
    if method.is_empty() {
        std::thread::sleep(Duration::from_millis(600));
    } else {
        let held = |st: &Stage| {
            st.sb
                .requests()
                .into_iter()
                .skip(from)
                .any(|r| r.kind == "held" && r.method == method && r.url.contains(needle))
        };
        assert!(
            wait_until(limit, || held(st)),
            "{point:?}: the stand-in never received the held {method}:\n{}",
            child.output()
        );
    }
    assert!(
        sending(),
        "{point:?}: {process:?} was done before the kill:\n{}",
        child.output()
    );
    assert!(
        method.is_empty() || !answered(st),
        "{point:?}: the held request was already answered: missed the kill point"
    );
    child.kill_group();
    assert!(
        wait_until(Duration::from_secs(2), || group_commands(pgid).is_empty()),
        "{point:?}: processes survived the kill: {:?}",
        group_commands(pgid)
    );
    // The server finishes what it had received; wait for that to settle.
    if !method.is_empty() {
        assert!(
            wait_until(Duration::from_millis(hold + 3000), || answered(st)),
            "{point:?}: the held {method} never arrived: the kill point was missed\n{}",
            child.output()
        );
    }
    st.sb.set_faults(Faults::default()).unwrap();
}

/// Kills a publish of 2.0.0.6 at `point`, then checks that a rerun
/// converges. Returns a line for the summary.
fn kill_and_rerun(point: KillPoint) -> String {
    let st = released_2005(1);
    let old_dmg = st.sb.asset_bytes("Update", "Nexy.dmg").unwrap();
    let old_pkg = st.sb.asset_bytes("App", "Nexy.pkg").unwrap();
    let live_id = asset_id(&st, "Update", "Nexy.dmg");
    next_release(&st, "2.0.0.6", 2, 4096);
    // Publish keeps what it published as a rollback point; without it (a
    // fresh runner) the live release is downloaded into the archive first,
    // which is the step these kill points need to reach.
    std::fs::remove_dir_all(st.fx.path("release_inbox/.archive/2.0.0.5")).unwrap();
    kill_at(&st, point, live_id);

    // What a client sees now, before the rerun.
    let names = asset_names(&st, "Update");
    let state = format!("Update after the kill: {names:?}");
    match point {
        KillPoint::Archive | KillPoint::Upload => {
            assert!(
                st.sb.asset_bytes("Update", "Nexy.dmg").unwrap() == old_dmg,
                "{state}"
            );
            assert_vm_manifest_matches_live_dmg(&st);
        }
        KillPoint::MidSwap => {
            assert!(!names.iter().any(|(n, _)| n == "Nexy.dmg"), "{state}");
        }
        KillPoint::DeletePrev | KillPoint::VmSync => {
            assert!(
                st.sb.asset_bytes("Update", "Nexy.dmg").unwrap() == st.inbox_bytes("Nexy.dmg"),
                "{state}"
            );
        }
    }
    if matches!(point, KillPoint::VmSync) {
        assert!(
            st.vm_manifest().contains("\"version\": \"2.0.0.5\""),
            "the VM was synced"
        );
    }
    if matches!(point, KillPoint::Upload) {
        assert!(
            names
                .iter()
                .any(|(n, s)| n.starts_with("Nexy.next-") && s == "uploaded"),
            "{state}"
        );
    }

    let rerun_from = st.log_len();
    assert_converges(&st, &format!("{point:?}"));
    if matches!(point, KillPoint::Upload) {
        // The complete temporary upload is reused, not sent again.
        let dmg_uploads = http_since(&st, rerun_from)
            .into_iter()
            .filter(|(m, u, _)| m == "POST" && u.contains("name=Nexy.dmg"))
            .count();
        assert_eq!(
            dmg_uploads, 0,
            "{point:?}: the rerun uploaded the DMG again"
        );
    }
    // The archive of 2.0.0.5, made before anything replaced it.
    let archive = st.fx.path("release_inbox/.archive/2.0.0.5");
    assert!(archive.join(".complete").is_file(), "{point:?}");
    assert!(
        std::fs::read(archive.join("Nexy.dmg")).unwrap() == old_dmg,
        "{point:?}: archived DMG differs"
    );
    assert!(
        std::fs::read(archive.join("Nexy.pkg")).unwrap() == old_pkg,
        "{point:?}: archived PKG differs"
    );
    assert!(
        std::fs::read_to_string(archive.join("manifest.json"))
            .unwrap()
            .contains("\"version\": \"2.0.0.5\""),
        "{point:?}"
    );
    // Not a convergence criterion, but worth seeing: what the killed run
    // left in the inbox besides the artifacts, the archive and the journal.
    let mut litter: Vec<String> = std::fs::read_dir(st.fx.path("release_inbox"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".staging-") || n == ".release.lock")
        .collect();
    litter.sort();
    format!("{point:?}: {state}; inbox litter after the rerun: {litter:?}")
}

#[test]
fn publish_killed_anywhere_is_finished_by_a_rerun() {
    let points = [
        KillPoint::Archive,
        KillPoint::Upload,
        KillPoint::MidSwap,
        KillPoint::DeletePrev,
        KillPoint::VmSync,
    ];
    let started = Instant::now();
    let results: Vec<(KillPoint, Result<String, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = points
            .iter()
            .map(|p| (*p, s.spawn(move || kill_and_rerun(*p))))
            .collect();
        handles
            .into_iter()
            .map(|(p, h)| {
                (
                    p,
                    h.join().map_err(|e| {
                        e.downcast_ref::<String>()
                            .cloned()
                            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default()
                    }),
                )
            })
            .collect()
    });
    let converged = results.iter().filter(|(_, r)| r.is_ok()).count();
    for (p, r) in &results {
        match r {
            Ok(line) => println!("  converged after kill at {line}"),
            Err(e) => println!("  FAILED after kill at {p:?}: {e}"),
        }
    }
    println!(
        "{} faults injected, {converged} converged ({:.1}s)",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(converged, results.len(), "{results:#?}");
}

/// A CI job killed after the DMG swap is rerun on a fresh runner: the inbox
/// (git-ignored) has no archive and no journal. Whatever the rerun archives
/// under 2.0.0.5 must be 2.0.0.5, never the already-swapped 2.0.0.6 bytes:
/// a rollback would republish it under the old manifest.
#[test]
fn a_rerun_on_a_fresh_runner_never_archives_new_bytes_as_the_old_release() {
    let st = released_2005(1);
    let old_dmg = st.sb.asset_bytes("Update", "Nexy.dmg").unwrap();
    let live_id = asset_id(&st, "Update", "Nexy.dmg");
    next_release(&st, "2.0.0.6", 2, 4096);
    // Killed during the VM sync, after the swaps; the archive step must run
    // for kill_at to find that point.
    std::fs::remove_dir_all(st.fx.path("release_inbox/.archive/2.0.0.5")).unwrap();
    kill_at(&st, KillPoint::VmSync, live_id);
    let new_dmg = st.inbox_bytes("Nexy.dmg");
    assert!(st.sb.asset_bytes("Update", "Nexy.dmg").unwrap() == new_dmg);
    // The VM still announces 2.0.0.5.
    assert!(st.vm_manifest().contains("\"version\": \"2.0.0.5\""));

    // The fresh runner: same commit, same artifacts, no local archive.
    std::fs::remove_dir_all(st.fx.path("release_inbox/.archive")).unwrap();
    let _ = std::fs::remove_file(st.fx.path("release_inbox/.journal.jsonl"));
    let run = st.run(&["publish"]);
    println!(
        "rerun on a fresh runner exited {}:\n{}{}",
        run.code, run.stdout, run.stderr
    );

    // What a rollback to that archive does (printed for the report; the
    // archive itself is what is asserted).
    let rollback = st.run(&["rollback", "--to", "2.0.0.5", "--dry-run"]);
    println!(
        "rollback --to 2.0.0.5 --dry-run then exits {}:\n{}{}",
        rollback.code, rollback.stdout, rollback.stderr
    );

    let archive = st.fx.path("release_inbox/.archive/2.0.0.5");
    if let Ok(dmg) = std::fs::read(archive.join("Nexy.dmg")) {
        let manifest = std::fs::read_to_string(archive.join("manifest.json")).unwrap();
        assert!(
            dmg != new_dmg,
            "the archive of 2.0.0.5 holds the 2.0.0.6 DMG (sha256 {}); its manifest says sha256 {}: \
             a rollback to 2.0.0.5 would republish 2.0.0.6 under the 2.0.0.5 manifest",
            sha256_hex(&dmg),
            manifest_field(&manifest, "/artifact/sha256")
        );
        assert_eq!(
            manifest_field(&manifest, "/artifact/sha256"),
            serde_json::json!(sha256_hex(&dmg)),
            "the archive of 2.0.0.5 is not self-consistent"
        );
        assert!(dmg == old_dmg);
    }
}

// ---------------------------------------------------------------------------
// 3d. A stale or stuck feed.

#[test]
fn verify_waits_out_a_briefly_stale_feed() {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, MIB);
    st.sb
        .set_faults(Faults {
            feed_stale_secs: 4,
            ..Faults::default()
        })
        .unwrap();
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // The feed still says 2.0.0.4 right after the restart.
    let health = more::get(&format!("{}/health", st.sb.feed_url()), true);
    assert!(String::from_utf8_lossy(&health.body).contains("\"latest_version\":\"2.0.0.4\""));

    let from = st.log_len();
    let started = Instant::now();
    let run = st.run(&["verify"]);
    let took = started.elapsed();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("verify (DoD): all checks passed"),
        "{}",
        run.stdout
    );
    let health_gets = http_since(&st, from)
        .iter()
        .filter(|(m, u, _)| m == "GET" && u.ends_with("/health") && !u.contains("/updates/"))
        .count();
    assert!(
        health_gets >= 2,
        "verify did not retry /health ({health_gets} GET)"
    );
    assert!(took < Duration::from_secs(30), "verify took {took:?}");
    println!(
        "verify passed after {health_gets} GET /health in {:.1}s",
        took.as_secs_f64()
    );
}

#[test]
fn verify_names_the_source_of_a_stuck_feed() {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, MIB);
    st.sb
        .set_faults(Faults {
            feed_stale_secs: 600,
            ..Faults::default()
        })
        .unwrap();
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    let started = Instant::now();
    let run = st.run(&["verify", "--timeout", "2"]);
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        took < Duration::from_secs(10),
        "verify --timeout 2 took {took:?}"
    );
    let fails: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains(" FAIL "))
        .collect();
    let ids: Vec<&str> = fails
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids, ["health"], "{}", run.stdout);
    assert!(
        fails[0].contains("reports 2.0.0.4") && fails[0].contains("expected 2.0.0.5"),
        "{}",
        run.stdout
    );
    assert!(fails[0].contains("over 2s"), "{}", run.stdout);
    assert!(
        run.stdout.contains("fix: wait for the feed cache"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("verify (DoD): 1 check(s) failed"),
        "{}",
        run.stdout
    );
}

// ---------------------------------------------------------------------------
// 5. Rollback.

#[test]
fn rollback_restores_the_archived_release_byte_for_byte() {
    let st = released_2005(1);
    let old_dmg = st.inbox_bytes("Nexy.dmg");
    let old_pkg = st.inbox_bytes("Nexy.pkg");
    let old_manifest = st.vm_manifest();
    next_release(&st, "2.0.0.6", 2, 4096);
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(st.sb.asset_bytes("Update", "Nexy.dmg").unwrap() != old_dmg);
    let archived = st.fx.read("release_inbox/.archive/2.0.0.5/manifest.json");
    assert_eq!(archived, old_manifest);

    let run = st.run(&["rollback"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    for want in [
        "rollback 2.0.0.6 -> 2.0.0.5",
        "warning: this does not downgrade clients",
        "clients already on 2.0.0.6 stay there",
        "roll forward",
        "verify (DoD): all checks passed",
        "rolled back to 2.0.0.5",
    ] {
        assert!(
            run.stdout.contains(want),
            "rollback lacks `{want}`:\n{}",
            run.stdout
        );
    }
    assert!(st.sb.asset_bytes("Update", "Nexy.dmg").unwrap() == old_dmg);
    assert!(st.sb.asset_bytes("App", "Nexy.pkg").unwrap() == old_pkg);
    for (tag, name, bytes) in [
        ("Update", "Nexy.dmg", &old_dmg),
        ("App", "Nexy.pkg", &old_pkg),
    ] {
        let got = download(&st.sb.direct_download_url(tag, name));
        assert!(
            got.status == 200 && got.body == *bytes,
            "{tag}/{name}: {}",
            got.status
        );
    }
    assert_eq!(st.vm_manifest(), archived);
    assert_eq!(st.fx.read(MANIFEST), archived);
    assert!(st.creations().is_empty(), "{:?}", st.creations());
    let run = st.run(&["verify"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    // Observation only: what the pre-push check says about the workspace
    // right after a rollback (VERSION still names the rolled-back version).
    let check = st.run(&["check"]);
    println!(
        "after rollback, `cargo xtask check` exits {}:\n{}{}",
        check.code, check.stdout, check.stderr
    );
}

/// publish starts each rename of its swap before it matters: `gh api
/// --input -` connects, then waits for its JSON body on stdin. If our
/// process dies right then (killed alone, not with its process group), the
/// pipe closes with nothing written and gh sends an empty body: that must
/// rename nothing, and production must stay as it was.
#[test]
fn a_staged_rename_whose_caller_died_renames_nothing() {
    use std::process::{Command, Stdio};

    let st = released_2005(1);
    let before = asset_names(&st, "Update");
    let id = asset_id(&st, "Update", "Nexy.dmg");
    let repo = GH_REPO.trim_start_matches("github.localhost/");
    let mut gh = Command::new("gh")
        .args(["api", "--hostname", "github.localhost", "-X", "PATCH"])
        .arg(format!("repos/{repo}/releases/assets/{id}"))
        .args(["-H", "Content-Type: application/json; charset=utf-8"])
        .args(["--input", "-"])
        .envs(st.env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Connected and waiting, as publish leaves it before the swap.
    let fds = format!("/proc/{}/fd", gh.id());
    let connected = || {
        std::fs::read_dir(&fds).is_ok_and(|d| {
            d.flatten().any(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
            })
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), connected),
        "gh never connected"
    );
    let requests_before = st.sb.requests().len();
    drop(gh.stdin.take());
    let exited = wait_until(Duration::from_secs(30), || {
        matches!(gh.try_wait(), Ok(Some(_)))
    });
    if !exited {
        let _ = gh.kill();
    }
    let out = gh.wait_with_output().unwrap();
    assert!(exited, "gh did not finish after its stdin closed");
    // gh did send its request (with no body), and it changed nothing.
    let sent = http_since(&st, requests_before);
    assert!(
        sent.iter()
            .any(|(method, url, _)| method == "PATCH" && url.ends_with(&id.to_string())),
        "gh sent no PATCH: {sent:?} ({})",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(asset_names(&st, "Update"), before);
    let run = st.run(&["verify"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

/// The renames of the DMG's swap that sent a body naming `name` exactly.
fn renames_to(st: &Stage, from: usize, name: &str) -> usize {
    let body = format!("{{\"name\":\"{name}\"}}");
    st.sb
        .requests()
        .into_iter()
        .skip(from)
        .filter(|r| r.method == "PATCH" && r.body.as_deref() == Some(body.as_str()))
        .count()
}

/// Publishes with a fault that fails the one PATCH whose body contains
/// `body`; expects a failure whose stderr says `says`. Returns where the
/// run's requests start in the log.
fn publish_with_failing_rename(st: &Stage, body: &str, says: &str) -> usize {
    st.sb
        .set_faults(Faults {
            fails: vec![Fail {
                method: Some("PATCH".into()),
                path_contains: "/releases/assets/".into(),
                body_contains: Some(body.into()),
                status: 502,
                times: Some(1),
            }],
            ..Faults::default()
        })
        .unwrap();
    let from = st.log_len();
    let run = st.run(&["publish"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains(says), "{}", run.stderr);
    from
}

/// Clears the faults and reruns publish: the inbox's DMG goes live.
fn rerun_publishes(st: &Stage) {
    st.sb.set_faults(Faults::default()).unwrap();
    let rerun = st.run(&["publish"]);
    assert_eq!(rerun.code, 0, "{}\n{}", rerun.stdout, rerun.stderr);
    assert_eq!(
        st.sb.asset_bytes("Update", "Nexy.dmg"),
        Some(st.inbox_bytes("Nexy.dmg"))
    );
}

/// A swap is two renames sent back to back from gh processes started
/// before the first. When the first fails, the second is stopped unsent and
/// nothing changed; when the second fails, the fixed URL is missing and the
/// error says to rerun now. Either way a rerun finishes the release.
#[test]
fn a_swap_that_fails_between_its_renames_says_so_and_a_rerun_finishes_it() {
    let st = released_2005(1);

    // The first rename (live -> .prev-) fails: the staged second one is
    // killed before it sends anything, and the live DMG stays as it was.
    next_release(&st, "2.0.0.6", 2, 4096);
    let old_dmg = st.sb.asset_bytes("Update", "Nexy.dmg").unwrap();
    let from = publish_with_failing_rename(
        &st,
        &format!("\"name\":\"Nexy.prev-{}.dmg\"", &sha256_hex(&old_dmg)[..12]),
        "the swap of Nexy.dmg in Update stopped",
    );
    assert_eq!(
        renames_to(&st, from, "Nexy.dmg"),
        0,
        "the second rename was sent"
    );
    assert_eq!(st.sb.asset_bytes("Update", "Nexy.dmg"), Some(old_dmg));
    rerun_publishes(&st);

    // The second rename (temp -> Nexy.dmg) fails: the fixed URL is missing
    // until the rerun the error asks for.
    next_release(&st, "2.0.0.7", 3, 8192);
    publish_with_failing_rename(
        &st,
        "\"name\":\"Nexy.dmg\"}",
        "the fixed URL answers 404: run `cargo xtask publish` again now",
    );
    let names: Vec<String> = asset_names(&st, "Update")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(!names.contains(&"Nexy.dmg".to_string()), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("Nexy.prev-")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("Nexy.next-")),
        "{names:?}"
    );
    rerun_publishes(&st);
    let verify = st.run(&["verify"]);
    assert_eq!(verify.code, 0, "{}", verify.stdout);
}
