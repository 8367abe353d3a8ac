//! The fault-injection matrix: `release` and `rollback` are killed (SIGKILL)
//! after each request they make to GitHub or the VM has taken effect, then
//! run again. After every kill: no tag or release was created, the archive
//! of the previous version is intact, and the rerun converges to a passing
//! Definition of Done with the right bytes live. Every kill point from 1 to
//! the request count of a full run must be reached. The test prints
//! `N faults injected, N converged` and fails if any point was not reached
//! or did not converge. Each run (each kill point, each Azure fault) has a
//! stand-in of its own, a copy of one staged before (`Stage::fork`).
//!
//! `release` begins its uploads (temporary names) beside preflight's checks,
//! so a kill point also lands in that overlap; the matrix counts those
//! (the journal shows the uploads begun and no verdict yet), requires some,
//! and checks that after every rerun no temporary asset is left.

mod common;

use std::{
    fs,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    thread,
    time::{Duration, Instant},
};

use common::stage::{Stage, MANIFEST};
use nexy_sandbox::arm::AzureFaults;
use nexy_sandbox::azure_faults::{StatusTimes, Times};
use nexy_sandbox::{faults::Delay, Faults};

/// Azure as it misbehaves, injected into a release (transient ones are
/// retried by the tool, the others stop it and a rerun finishes).
fn azure_faults() -> Vec<(&'static str, AzureFaults)> {
    let st = |status, times| {
        Some(StatusTimes {
            status,
            times: Some(times),
        })
    };
    let t = |n| Some(Times { times: Some(n) });
    vec![
        (
            "busy VM",
            AzureFaults {
                busy: t(2),
                ..Default::default()
            },
        ),
        (
            "deallocated VM",
            AzureFaults {
                power_state: Some("deallocated".into()),
                ..Default::default()
            },
        ),
        (
            "expired token",
            AzureFaults {
                token_expired: t(1),
                ..Default::default()
            },
        ),
        (
            "no rights",
            AzureFaults {
                forbidden: true,
                ..Default::default()
            },
        ),
        (
            "500 on the POST",
            AzureFaults {
                post_error: st(500, 5),
                ..Default::default()
            },
        ),
        (
            "503 on the polls",
            AzureFaults {
                poll_error: st(503, 4),
                ..Default::default()
            },
        ),
        (
            "operation Failed",
            AzureFaults {
                operation_failed: t(2),
                ..Default::default()
            },
        ),
        (
            "slow VM",
            AzureFaults {
                run_ms: Some(3000),
                ..Default::default()
            },
        ),
    ]
}

/// Requests of the stand-in that our tool caused (not the test's own).
/// Of the real az's calls only the run-command POSTs count: its token and
/// poll requests change nothing, so a kill after them is a kill point the
/// matrix already has (this keeps the matrix, at about 2 s per real
/// run-command, within CI's time).
fn tool_requests(st: &Stage) -> usize {
    st.sb
        .requests()
        .iter()
        .filter(|r| r.kind != "control")
        .filter(|r| r.kind != "arm" || (r.method == "POST" && r.url.contains("/runCommand")))
        .count()
}

fn spawn(st: &Stage, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg("--config")
        .arg(&st.config)
        .arg("--root")
        .arg(st.fx.root())
        .envs(st.env())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Slows every request a little, so that a kill lands while the next one
/// is in flight as well as between requests, and makes a restart take
/// 300 ms, so that the VM sync's wait for the service (one `is-active`
/// and two health requests that find it starting, then the same that find
/// it up) is among the kill points.
fn slow(st: &Stage) {
    st.sb
        .set_faults(Faults {
            delays: vec![Delay {
                method: None,
                path_contains: "/".into(),
                ms: 25,
            }],
            restart_down_ms: 300,
            ..Faults::default()
        })
        .unwrap();
}

/// Runs `args` and kills it once `k` more requests have taken effect.
/// An error says how far a run got that finished before reaching `k`.
fn run_and_kill(st: &Stage, args: &[&str], k: usize) -> Result<(), String> {
    let base = tool_requests(st);
    let mut child = spawn(st, args);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err(format!(
                "kill point {k} was never reached: the run ended ({status}) after {} request(s)",
                tool_requests(st) - base
            ));
        }
        if tool_requests(st) >= base + k {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(());
        }
        assert!(Instant::now() < deadline, "{args:?} hung");
        thread::sleep(Duration::from_millis(2));
    }
}

/// A stand-in with 2.0.0.5 live and 2.0.0.6 ready in the inbox.
fn staged() -> (Stage, Vec<u8>) {
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, 1 << 20);
    let run = st.run(&["release"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let old = st.sb.asset_bytes("Update", "Nexy.dmg").unwrap();
    assert_eq!(st.run(&["bump", "2.0.0.6"]).code, 0);
    st.samples(2, 1 << 20);
    (st, old)
}

/// The journal's lines.
fn journal(st: &Stage) -> Vec<serde_json::Value> {
    fs::read_to_string(st.fx.path("release_inbox/.journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Whether a release killed after journal line `from` died inside the
/// overlap of its uploads and preflight: the uploads begun beside the
/// checks (journaled before their requests), the verdict not yet given.
fn in_overlap(st: &Stage, from: usize) -> bool {
    let lines = journal(st);
    let lines = lines.get(from..).unwrap_or_default();
    let begun = lines.iter().any(|j| {
        j["phase"] == "start" && j["step"].as_str().is_some_and(|s| s.ends_with("(early)"))
    });
    begun && !lines.iter().any(|j| j["step"] == "preflight passed")
}

/// Temporary asset names left in the fixed releases.
fn temporary_assets(st: &Stage) -> Vec<String> {
    let mut left = Vec::new();
    for tag in ["Update", "App"] {
        let out = st.gh(&[
            "api",
            "--hostname",
            "github.localhost",
            &format!("repos/Seregawpn/Nexy_production/releases/tags/{tag}"),
        ]);
        let release: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for a in release["assets"].as_array().into_iter().flatten() {
            let name = a["name"].as_str().unwrap_or("");
            if name.contains(".next-") || name.contains(".prev-") {
                left.push(format!("{tag}/{name}"));
            }
        }
    }
    left
}

/// The invariants after a kill and a rerun.
fn converged(
    st: &Stage,
    rerun: &[&str],
    want_dmg: &[u8],
    archive: &str,
    archived_dmg: &[u8],
) -> Result<(), String> {
    if !st.creations().is_empty() {
        return Err(format!(
            "a tag or release was created: {:?}",
            st.creations()
        ));
    }
    let archive_dir = st.fx.path("release_inbox/.archive").join(archive);
    if archive_dir.join(".complete").is_file()
        && fs::read(archive_dir.join("Nexy.dmg")).ok().as_deref() != Some(archived_dmg)
    {
        return Err(format!(
            "the archive of {archive} is not the old DMG byte for byte"
        ));
    }
    st.sb.set_faults(Faults::default()).unwrap();
    let run = st.run(rerun);
    if run.code != 0 {
        return Err(format!("rerun failed:\n{}\n{}", run.stdout, run.stderr));
    }
    let verify = st.run(&["verify"]);
    if verify.code != 0 {
        return Err(format!("verify failed after the rerun:\n{}", verify.stdout));
    }
    if st.sb.asset_bytes("Update", "Nexy.dmg").as_deref() != Some(want_dmg) {
        return Err("the live DMG is not the expected bytes".into());
    }
    if st.vm_manifest() != st.fx.read(MANIFEST) {
        return Err("the VM's manifest differs from the repository's".into());
    }
    // Nearly every kill lands while the release lease is held (`lease/`):
    // the rerun takes over the dead run's lease and releases its own.
    if st.sb.asset_bytes("Update", "nexy-release.lease").is_some() {
        return Err("the release lease was left behind after the rerun".into());
    }
    // Uploads begun beside preflight's checks and cut off by the kill are
    // used or removed by the rerun.
    let left = temporary_assets(st);
    if !left.is_empty() {
        return Err(format!("temporary assets left after the rerun: {left:?}"));
    }
    Ok(())
}

/// How many runs of the matrix go side by side.
const JOBS: usize = 4;

/// One run of the matrix: a kill after request `k` of a release or a
/// rollback, or a release with the Azure fault of that index.
#[derive(Clone, Copy, Debug)]
enum Job {
    Release(usize),
    Rollback(usize),
    Azure(usize),
}

struct Outcome {
    job: Job,
    /// The fault was injected (the kill point was reached).
    injected: bool,
    /// A release killed while its uploads ran beside preflight.
    overlap: bool,
    failure: Option<String>,
}

/// The staged stand-ins the runs copy, and the DMGs they expect.
struct Ctx {
    /// 2.0.0.5 live, 2.0.0.6 in the inbox.
    ready: Stage,
    /// 2.0.0.6 live, 2.0.0.5 archived.
    released: Stage,
    old: Vec<u8>,
    new: Vec<u8>,
    newer: Vec<u8>,
}

impl Ctx {
    fn run(&self, job: Job) -> Outcome {
        let mut overlap = false;
        let (injected, failure) = match job {
            Job::Release(k) => {
                let st = self.ready.fork();
                slow(&st);
                let from = journal(&st).len();
                let killed = run_and_kill(&st, &["release"], k);
                overlap = killed.is_ok() && in_overlap(&st, from);
                match killed {
                    Err(why) => (false, Some(format!("release: {why}"))),
                    Ok(()) => (
                        true,
                        converged(&st, &["release"], &self.new, "2.0.0.5", &self.old)
                            .err()
                            .map(|why| format!("release killed after request {k}: {why}")),
                    ),
                }
            }
            Job::Rollback(k) => {
                let st = self.released.fork();
                slow(&st);
                let args = ["rollback", "--to", "2.0.0.5"];
                match run_and_kill(&st, &args, k) {
                    Err(why) => (false, Some(format!("rollback: {why}"))),
                    Ok(()) => (
                        true,
                        converged(&st, &args, &self.old, "2.0.0.6", &self.newer)
                            .err()
                            .map(|why| format!("rollback killed after request {k}: {why}")),
                    ),
                }
            }
            Job::Azure(i) => {
                let (name, f) = azure_faults().swap_remove(i);
                let st = self.ready.fork();
                st.sb
                    .set_faults(Faults {
                        azure: f,
                        ..Faults::default()
                    })
                    .unwrap();
                // It may pass (retried) or stop (not transient); either
                // way the invariants hold and a rerun converges.
                let _ = st.run(&["release"]);
                (
                    true,
                    converged(&st, &["release"], &self.new, "2.0.0.5", &self.old)
                        .err()
                        .map(|why| format!("release with Azure fault `{name}`: {why}")),
                )
            }
        };
        Outcome {
            job,
            injected,
            overlap,
            failure,
        }
    }
}

#[test]
fn every_kill_point_of_release_and_rollback_converges() {
    // How many requests a full run makes, to kill after each of them.
    // Each kill point spends a copy of one staged stand-in (`Stage::fork`:
    // its own ports, request log and az login), not a release of its own:
    // staging through the real az is most of a kill point's time.
    let (ready, old) = staged();
    let new = ready.inbox_bytes("Nexy.dmg");
    let released = ready.fork();
    let base = tool_requests(&released);
    slow(&released);
    assert_eq!(released.run(&["release"]).code, 0);
    let release_steps = tool_requests(&released) - base;
    released.sb.set_faults(Faults::default()).unwrap();
    let newer = released.sb.asset_bytes("Update", "Nexy.dmg").unwrap();
    let measure = released.fork();
    let base = tool_requests(&measure);
    slow(&measure);
    assert_eq!(measure.run(&["rollback", "--to", "2.0.0.5"]).code, 0);
    let rollback_steps = tool_requests(&measure) - base;
    drop(measure);

    // Every run spends a copy of a stand-in, so the runs are independent
    // and `JOBS` of them run side by side: much of a run waits on az's
    // polls and start-up, so even 2 cores keep more than 2 busy.
    let jobs: Vec<Job> = (1..release_steps)
        .map(Job::Release)
        .chain((1..rollback_steps).map(Job::Rollback))
        .chain((0..azure_faults().len()).map(Job::Azure))
        .collect();
    let ctx = Ctx {
        ready,
        released,
        old,
        new,
        newer,
    };
    let next = AtomicUsize::new(0);
    let outcomes: Vec<Outcome> = thread::scope(|s| {
        let workers: Vec<_> = (0..JOBS)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    while let Some(job) = jobs.get(next.fetch_add(1, Ordering::SeqCst)) {
                        done.push(ctx.run(*job));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a matrix worker"))
            .collect()
    });
    let count = |f: fn(&Job) -> bool| outcomes.iter().filter(|o| o.injected && f(&o.job)).count();
    let a = count(|j| matches!(j, Job::Release(_)));
    let b = count(|j| matches!(j, Job::Rollback(_)));
    let c = count(|j| matches!(j, Job::Azure(_)));
    let overlap = outcomes.iter().filter(|o| o.overlap).count();
    let failures: Vec<String> = outcomes.into_iter().filter_map(|o| o.failure).collect();
    let injected = a + b + c;
    let listed = release_steps - 1 + rollback_steps - 1 + azure_faults().len();
    let ok = injected
        - failures
            .iter()
            .filter(|f| !f.contains("never reached"))
            .count();
    // Written past the test harness's capture, so that the line shows in
    // every run, passing or not.
    let line = format!(
        "{injected} faults injected, {ok} converged ({release_steps} release and {rollback_steps} rollback requests, {c} Azure faults; {overlap} release kills while uploads ran beside preflight)\n"
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    // Every kill point listed is one the runs reached: a run that ends
    // early is a failure, not a point quietly skipped.
    assert!(
        listed >= 10,
        "too few kill points ({listed}); the matrix would prove little"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The uploads begun beside preflight's checks are among the kill
    // points: killed there, the rerun still converges.
    assert!(
        overlap >= 2,
        "only {overlap} kill point(s) landed while the uploads ran beside preflight"
    );
    assert_eq!(injected, listed, "every listed kill point is injected");
}
