//! Progress of hashing and uploads: bars redrawn in place on a terminal,
//! plain lines in a log, never colour. The terminal is a real pty, made by
//! util-linux's `script`.

mod common;
#[path = "common/more.rs"]
mod more;

use std::process::Command;

use common::stage::Stage;
use more::xtask_cmd;

/// A publish of fresh artifacts (`seed`) at `version`.
fn fresh(st: &Stage, version: &str, seed: u64) {
    assert_eq!(st.run(&["bump", version]).code, 0);
    st.samples(seed, 24 << 20);
}

/// Runs `publish` with its output on a pty (`script -qec CMD /dev/null`);
/// returns what the terminal received.
fn publish_on_a_pty(st: &Stage, env: &[(&str, &str)]) -> String {
    let inner = xtask_cmd(st, &["publish"]);
    let mut line = vec![inner.get_program().to_string_lossy().into_owned()];
    line.extend(inner.get_args().map(|a| a.to_string_lossy().into_owned()));
    let quoted: Vec<String> = line
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect();
    // Bounded: coreutils' timeout stops a hung run after two minutes.
    let mut cmd = Command::new("timeout");
    cmd.args(["120", "script", "-qec", &quoted.join(" "), "/dev/null"])
        .envs(st.env())
        .env("SOURCE_DATE_EPOCH", "1772765937")
        .current_dir(st.fx.root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .output()
        .expect("`timeout` and `script` (coreutils, util-linux) run the command on a pty");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    text
}

#[test]
fn publish_draws_bars_on_a_terminal_and_plain_lines_in_a_log() {
    let st = Stage::new();
    // 24 MiB DMG and 12 MiB PKG: 37.7 MB in all.
    let closing = "upload Nexy.dmg and upload Nexy.pkg 37.7 MB in";

    // A log: stderr is a pipe. Plain lines, no terminal control at all.
    fresh(&st, "2.0.0.5", 1);
    let run = st.run(&["publish"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("  hashing 37.7 MB in "),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(closing), "{}", run.stderr);
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);

    // A terminal: each row is cleared and redrawn, then one closing line
    // replaces the rows.
    fresh(&st, "2.0.0.6", 2);
    let tty = publish_on_a_pty(&st, &[("TERM", "xterm")]);
    assert!(
        tty.contains("\x1b[2K  hashing                ["),
        "no hashing bar: {tty:?}"
    );
    assert!(
        tty.contains("\x1b[2K  upload Nexy.dmg        ")
            && tty.contains("\x1b[2K  upload Nexy.pkg        "),
        "no upload rows: {tty:?}"
    );
    assert!(
        tty.contains(&format!("\x1b[J  {closing}")),
        "no closing line: {tty:?}"
    );
    // No colour: no SGR sequence (ESC [ ... m) anywhere.
    let sgr = tty.split('\x1b').skip(1).any(|seq| {
        seq.strip_prefix('[').is_some_and(|rest| {
            let end = rest.find(|c: char| !(c.is_ascii_digit() || c == ';'));
            end.is_some_and(|i| rest[i..].starts_with('m'))
        })
    });
    assert!(!sgr, "colour codes in {tty:?}");

    // A terminal that cannot move the cursor gets the plain lines.
    fresh(&st, "2.0.0.7", 3);
    let dumb = publish_on_a_pty(&st, &[("TERM", "dumb")]);
    assert!(dumb.contains(closing), "{dumb:?}");
    assert!(!dumb.contains('\x1b'), "{dumb:?}");
}
