//! `cargo xtask release`: preflight, publish, verify, as stages with their
//! elapsed time. On a failure it says what state production is in and the
//! one command that resumes or rolls back.
//!
//! In production the release is two Azure round trips and the uploads, so
//! it is ordered around them: the lock and lease first; then the VM read
//! (which is also the key check, `preflight_vm.rs`), the uploads under
//! temporary names (`publish/early.rs`) and the other checks, side by
//! side; only when every check has passed, publish, planned from that read
//! (no second one), swaps and syncs. At most two run-commands in all.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Value};
use xshell::Shell;

use crate::{
    cli::{Publish, Release},
    config::Workspace,
    output::{self, check_json},
    preflight,
    report::{self, CheckResult},
    say, verify,
};

/// The stages run so far, for the closing JSON document.
#[derive(Default)]
pub struct Stages(Vec<Value>);

/// Each stage's name and time as it ends, for the production-like
/// benchmark, which times verify apart from the rest.
pub static STAGE_TIMES: std::sync::Mutex<Vec<(String, Duration)>> =
    std::sync::Mutex::new(Vec::new());

impl Stages {
    pub fn push(
        &mut self,
        name: &str,
        ok: bool,
        started: Instant,
        checks: &[CheckResult],
        error: Option<String>,
    ) {
        let seconds = started.elapsed().as_secs_f64();
        if let Ok(mut times) = STAGE_TIMES.lock() {
            times.push((name.to_string(), started.elapsed()));
        }
        say!(
            "== {name} {} in {seconds:.1}s",
            if ok { "done" } else { "FAILED" }
        );
        self.0.push(json!({
            "name": name,
            "ok": ok,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "checks": checks.iter().map(check_json).collect::<Vec<_>>(),
            "error": error,
        }));
    }

    /// Prints the document (with `--json`) and returns the verdict.
    pub fn finish(self, command: &str, ok: bool) -> bool {
        output::emit(
            &json!({ "schema": output::SCHEMA, "command": command, "ok": ok, "stages": self.0 }),
        );
        ok
    }
}

impl Release {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> Result<bool> {
        let total = Instant::now();
        let mut stages = Stages::default();

        let runs_before = crate::az::run_commands();

        // The lock and lease come first and span every stage: under them
        // preflight reads live state, the uploads begin beside its checks
        // (under temporary names, invisible to clients), and no other
        // release swaps bytes mid-verify. A dry run takes neither.
        let job = {
            let mut job = crate::publish::Job::new(sh, ws, &self.channel)?;
            job.command = "release";
            job
        };
        let _held = if self.dry_run {
            None
        } else {
            match crate::publish::Held::for_stages(&job) {
                Ok(held) => Some(held),
                Err(err) => {
                    let started = Instant::now();
                    // Preflight's table still says what else is wrong.
                    say!("== stage 1/3: preflight");
                    let results = preflight::checks(sh, ws, &self.channel)?;
                    output::say_raw(&report::render("preflight", &results));
                    let ok = report::all_pass(&results);
                    stages.push("preflight", ok, started, &results, None);
                    if !ok {
                        say!("release stopped at preflight: production is untouched. Fix the failures above and run `cargo xtask release` again.");
                        return Ok(stages.finish("release", false));
                    }
                    stages.finish("release", false);
                    return Err(err);
                }
            }
        };

        let started = Instant::now();
        say!("== stage 1/3: preflight");
        // The slowest check (the VM's run-command) starts first, then the
        // uploads, then the other checks beside both.
        let vm_call = crate::preflight_vm::start(sh, ws, &self.channel);
        let early = match self.dry_run {
            true => None,
            false => Some(job.start_early()),
        };
        let checked = preflight::checks_started(sh, ws, &self.channel, vm_call);
        let (results, vm_state) = match checked {
            Ok(c) => c,
            Err(err) => {
                if let Some(early) = early {
                    early.abandon(&job)?;
                }
                return Err(err);
            }
        };
        output::say_raw(&report::render("preflight", &results));
        let ok = report::all_pass(&results);
        stages.push("preflight", ok, started, &results, None);
        if !ok {
            if let Some(early) = early {
                early.abandon(&job)?;
            }
            say!("release stopped at preflight: production is untouched. Fix the failures above and run `cargo xtask release` again.");
            return Ok(stages.finish("release", false));
        }
        if let Some(early) = early {
            // The journal marks the verdict, so that a run killed between
            // the uploads' start and here can be told apart (fault matrix).
            let journal = crate::journal::Journal::open(
                &ws.root.join(crate::config::INBOX).join(".journal.jsonl"),
            );
            journal.record("note", "preflight passed")?;
            early.finish();
        }

        let started = Instant::now();
        say!(
            "== stage 2/3: publish{}",
            if self.dry_run { " (dry run)" } else { "" }
        );
        let publish = Publish {
            channel: self.channel.clone(),
            dry_run: self.dry_run,
        };
        // The VM's state preflight read under the lease: no second read.
        if let Err(err) = publish.run_with(sh, ws, vm_state) {
            stages.push("publish", false, started, &[], Some(format!("{err:#}")));
            say!("release stopped during publish: {err:#}");
            say!(
                "production state: each fixed URL serves either the old or the new asset (never a partial one); the VM manifest may still be the old one.\n\
                 resume with `cargo xtask publish` (it finishes what is left), or go back with `cargo xtask rollback`."
            );
            say_run_commands(runs_before);
            stages.finish("release", false);
            return Err(err);
        }
        stages.push("publish", true, started, &[], None);
        if self.dry_run {
            say_run_commands(runs_before);
            say!(
                "release dry run: nothing was changed; total {:.1}s",
                total.elapsed().as_secs_f64()
            );
            return Ok(stages.finish("release", true));
        }

        let started = Instant::now();
        say!("== stage 3/3: verify");
        let timeout = Duration::from_secs(ws.config.verify.timeout_secs);
        let results = verify::dod(sh, ws, &self.channel, false, timeout)?;
        output::say_raw(&report::render("verify (DoD)", &results));
        let ok = report::all_pass(&results);
        stages.push("verify", ok, started, &results, None);
        say_run_commands(runs_before);
        if ok {
            say!("release done in {:.1}s", total.elapsed().as_secs_f64());
        } else {
            say!(
                "release published but the DoD does not hold yet: the sources marked FAIL disagree.\n\
                 re-check with `cargo xtask verify`; if a source stays wrong, `cargo xtask publish` re-syncs, `cargo xtask rollback` goes back."
            );
        }
        Ok(stages.finish("release", ok))
    }
}

/// The run-commands this release made since `before`: at most two (the
/// read before, the sync); retries after a Conflict are told apart.
fn say_run_commands(before: (usize, usize)) {
    let (runs, conflicts) = crate::az::run_commands();
    let (runs, conflicts) = (runs - before.0, conflicts - before.1);
    let retries = match conflicts {
        0 => String::new(),
        n => format!(", and {n} retry(ies) after a 409 Conflict (another run-command in progress), not counted"),
    };
    say!("az run-commands: {}{retries}", runs - conflicts);
}
