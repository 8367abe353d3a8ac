//! Running external commands (built with xshell's `cmd!`) with a bound on
//! their run time.
//!
//! `az` can hang on a VM that does not answer and `gh` on a stalled upload;
//! a release tool must never wait forever, so every call here has a
//! deadline after which the child is killed and the step fails with a
//! message that says so.

use std::{
    io::Read,
    process::{Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// How many external processes this run has spawned (for the benchmarks).
pub static SPAWNED: AtomicUsize = AtomicUsize::new(0);

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `cmd` to completion or until `timeout`, capturing both streams.
/// `what` names the command in errors (never its secret-bearing env).
pub fn run(cmd: xshell::Cmd<'_>, what: &str, timeout: Duration) -> Result<Output> {
    run_command(cmd.into(), what, timeout)
}

/// Runs several prepared commands at the same time (each bounded), for
/// work that does not depend on each other, such as two uploads.
pub fn run_parallel(commands: Vec<(Command, String, Duration)>) -> Vec<Result<Output>> {
    thread::scope(|scope| {
        let handles: Vec<_> = commands
            .into_iter()
            .map(|(command, what, timeout)| {
                scope.spawn(move || run_command(command, &what, timeout))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a command thread panicked")))
            })
            .collect()
    })
}

/// Runs an already built command; see [`run`].
pub fn run_command(command: Command, what: &str, timeout: Duration) -> Result<Output> {
    run_watched(command, what, timeout, Duration::from_millis(5), |_| {}).map(|(out, _)| out)
}

/// Runs `command` to completion or until `timeout`, polling every `poll`
/// and calling `on_tick` with the child's pid at each poll (the benchmarks
/// sample its memory there); returns the output and the wall time.
pub fn run_watched(
    mut command: Command,
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut on_tick: impl FnMut(u32),
) -> Result<(Output, Duration)> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run `{what}`; is it installed and on PATH?"))?;
    SPAWNED.fetch_add(1, Ordering::Relaxed);
    let mut out = child.stdout.take().context("no stdout pipe")?;
    let mut err = child.stderr.take().context("no stderr pipe")?;
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = started + timeout;
    let (status, wall) = loop {
        if let Some(status) = child
            .try_wait()
            .context("cannot wait for a child process")?
        {
            break (status, started.elapsed());
        }
        on_tick(child.id());
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`{what}` did not finish within {}s and was stopped; check the network and the remote side, then run again",
                timeout.as_secs()
            );
        }
        thread::sleep(poll);
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok((
        Output {
            code: status.code(),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        },
        wall,
    ))
}

/// `text` quoted for a POSIX shell: single quotes, with `'` written as
/// `'\''`. Used only for values placed in scripts run on the VM.
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_posix_shells() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn captures_output_and_enforces_the_deadline() {
        let sh = xshell::Shell::new().unwrap();
        let out = run(
            xshell::cmd!(sh, "sh -c 'echo hi; echo err >&2; exit 3'"),
            "sh",
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(
            (out.code, out.stdout.as_str(), out.stderr.as_str()),
            (Some(3), "hi\n", "err\n")
        );
        let started = Instant::now();
        let err = run(
            xshell::cmd!(sh, "sleep 5"),
            "sleep 5",
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(err.to_string().contains("did not finish"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
