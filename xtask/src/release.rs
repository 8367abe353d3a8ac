//! `cargo xtask release`: preflight, publish, verify, as stages with their
//! elapsed time. On a failure it says what state production is in and the
//! one command that resumes or rolls back.

use std::time::{Duration, Instant};

use anyhow::Result;
use xshell::Shell;

use crate::{
    cli::{Publish, Release},
    config::Workspace,
    preflight, report, verify,
};

impl Release {
    pub fn run(self, sh: &Shell, ws: &Workspace) -> Result<bool> {
        let total = Instant::now();
        let stage = |name: &str, started: Instant| {
            println!("== {name} done in {:.1}s", started.elapsed().as_secs_f64())
        };

        let started = Instant::now();
        println!("== stage 1/3: preflight");
        let results = preflight::checks(sh, ws, &self.channel)?;
        print!("{}", report::render("preflight", &results));
        if !report::all_pass(&results) {
            println!("release stopped at preflight: production is untouched. Fix the failures above and run `cargo xtask release` again.");
            return Ok(false);
        }
        stage("preflight", started);

        let started = Instant::now();
        println!(
            "== stage 2/3: publish{}",
            if self.dry_run { " (dry run)" } else { "" }
        );
        let publish = Publish {
            channel: self.channel.clone(),
            dry_run: self.dry_run,
        };
        if let Err(err) = publish.run(sh, ws) {
            println!("release stopped during publish: {err:#}");
            println!(
                "production state: each fixed URL serves either the old or the new asset (never a partial one); the VM manifest may still be the old one.\n\
                 resume with `cargo xtask publish` (it finishes what is left), or go back with `cargo xtask rollback`."
            );
            return Err(err);
        }
        stage("publish", started);
        if self.dry_run {
            println!(
                "release dry run: nothing was changed; total {:.1}s",
                total.elapsed().as_secs_f64()
            );
            return Ok(true);
        }

        let started = Instant::now();
        println!("== stage 3/3: verify");
        let timeout = Duration::from_secs(ws.config.verify.timeout_secs);
        let results = verify::dod(sh, ws, &self.channel, false, timeout)?;
        print!("{}", report::render("verify (DoD)", &results));
        stage("verify", started);
        if report::all_pass(&results) {
            println!("release done in {:.1}s", total.elapsed().as_secs_f64());
            Ok(true)
        } else {
            println!(
                "release published but the DoD does not hold yet: the sources marked FAIL disagree.\n\
                 re-check with `cargo xtask verify`; if a source stays wrong, `cargo xtask publish` re-syncs, `cargo xtask rollback` goes back."
            );
            Ok(false)
        }
    }
}
