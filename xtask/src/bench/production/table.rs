//! The rows of the production-like table: per channel our release, its
//! verify, the floor, the old scripts' flow and the naive one, with the
//! targets.

use super::*;

impl Bench<'_> {
    /// The profile's figures, as the stand-in reports them.
    pub(super) fn figures(&self) -> String {
        let l = &self.latency;
        let bps = l["upload_bytes_per_sec"].as_u64().unwrap_or(0);
        format!(
            "run-command InProgress {} ms, Retry-After {}, GitHub round trip {} ms, uplink {:.0} Mbit/s shared",
            l["run_command_ms"].as_u64().unwrap_or(0),
            l["retry_after_secs"]
                .as_u64()
                .map_or("none (az polls every 30 s)".to_string(), |s| format!("{s} s")),
            l["github_rtt_ms"].as_u64().unwrap_or(0),
            bps as f64 * 8.0 / 1e6
        )
    }

    pub(super) fn rows(
        &self,
        s: &mut Section,
        channel: &str,
        ours: &Flow,
        floor: &Flow,
        old: &Flow,
        naive: &Flow,
    ) {
        let base = floor.wall.as_secs_f64().max(1e-9);
        let ratio = |f: &Flow| format!("{:.2}x", f.wall.as_secs_f64() / base);
        let window = |d: Option<Duration>| d.map_or("-".to_string(), fmt_ms);
        let rc = |f: &Flow| match f.conflicts {
            0 => f.run_commands.to_string(),
            n => format!("{} (+{n} after 409)", f.run_commands),
        };
        let met = ours.wall.as_secs_f64() / base <= TARGET_RATIO;
        let verdict = Verdict::of(met);
        s.target(
            format!("{channel}: ours within {TARGET_RATIO:.1}x of its floor"),
            verdict,
        );
        s.target(
            format!("{channel}: at most two run-commands"),
            Verdict::of(ours.run_commands <= 2),
        );
        s.row(vec![
            format!("{channel}: ours, preflight + publish"),
            fmt_secs(ours.wall),
            rc(ours),
            window(ours.gap_404),
            window(ours.disagreement),
            ratio(ours),
            format!("<= {TARGET_RATIO:.1}x, <= 2 run-commands"),
            verdict.label().to_string(),
        ]);
        s.row(vec![
            format!("{channel}: ours, verify (apart)"),
            ours.verify.map_or("-".to_string(), fmt_secs),
            "0".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
        let (up, run) = floor.parts.unwrap_or_default();
        s.row(vec![
            format!(
                "{channel}: floor = uploads {} + one run-command{} {}",
                fmt_secs(up),
                if channel == "stable" {
                    " with the restart and its health wait"
                } else {
                    ""
                },
                fmt_secs(run)
            ),
            fmt_secs(floor.wall),
            "1".into(),
            "-".into(),
            "-".into(),
            "1.00x".into(),
            "-".into(),
            "-".into(),
        ]);
        for (name, f) in [
            (
                "old scripts: key check, delete + upload, manifest, then VM sync",
                old,
            ),
            ("naive: upload --clobber, manifest, VM sync", naive),
        ] {
            s.row(vec![
                format!("{channel}: {name}"),
                fmt_secs(f.wall),
                rc(f),
                window(f.gap_404),
                window(f.disagreement),
                ratio(f),
                "-".into(),
                "-".into(),
            ]);
        }
    }
}
