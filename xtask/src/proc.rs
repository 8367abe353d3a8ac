//! Running external commands (built with xshell's `cmd!`) with a bound on
//! their run time.
//!
//! `az` can hang on a VM that does not answer and `gh` on a stalled upload;
//! a release tool must never wait forever, so every call here has a
//! deadline after which the child is killed and the step fails with a
//! message that says so.

use std::{
    io::{Read, Write},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// How many external processes this run has spawned (for the benchmarks).
pub static SPAWNED: AtomicUsize = AtomicUsize::new(0);
/// How many of them were `az` (the real Azure CLI).
pub static AZ_SPAWNED: AtomicUsize = AtomicUsize::new(0);

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

/// Called with a running child's pid at each poll (a progress meter reads
/// the child's file offset there).
pub type Tick<'a> = Box<dyn FnMut(u32) + Send + 'a>;

/// Runs several prepared commands at the same time (each bounded), for
/// work that does not depend on each other, such as two uploads.
pub fn run_parallel(commands: Vec<(Command, String, Duration)>) -> Vec<Result<Output>> {
    run_parallel_watched(
        commands
            .into_iter()
            .map(|c| (c, Box::new(|_| {}) as Tick))
            .collect(),
    )
}

/// [`run_parallel`], calling each command's tick at its polls.
pub fn run_parallel_watched(
    commands: Vec<((Command, String, Duration), Tick<'_>)>,
) -> Vec<Result<Output>> {
    side_by_side(commands, |((command, what, timeout), tick)| {
        run_watched(command, &what, timeout, Duration::from_millis(5), tick).map(|(out, _)| out)
    })
}

/// Runs `work` on each item, each on a thread of its own; one result per
/// item, in order. A thread that panicked is an error, not a crash.
pub fn side_by_side<T: Send, R: Send>(
    items: Vec<T>,
    work: impl Fn(T) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    thread::scope(|scope| {
        let handles: Vec<_> = items
            .into_iter()
            .map(|item| {
                let work = &work;
                scope.spawn(move || work(item))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a worker thread panicked")))
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
    command: Command,
    what: &str,
    timeout: Duration,
    poll: Duration,
    on_tick: impl FnMut(u32),
) -> Result<(Output, Duration)> {
    let started = Instant::now();
    let mut running = Running::spawn(command, what, Stdio::null(), timeout)?;
    let output = running.wait(poll, on_tick)?;
    Ok((output, started.elapsed()))
}

/// A command started ahead of the moment it matters, waiting for its
/// standard input. `gh api --input -` starts, reads its config and opens
/// its connection, then waits for the request body: [`Staged::send`] then
/// costs one round trip instead of a whole gh start-up. Dropped unsent,
/// the child is killed, so an error path never leaves a call behind that
/// could still land.
pub struct Staged {
    running: Running,
}

/// Starts `command` with its stdin a pipe that [`Staged::send`] fills; the
/// deadline counts from now.
pub fn stage(command: Command, what: &str, timeout: Duration) -> Result<Staged> {
    let running = Running::spawn(command, what, Stdio::piped(), timeout)?;
    Ok(Staged { running })
}

impl Staged {
    /// Writes `input`, closes stdin and waits for the command (bounded by
    /// the deadline set when it was staged).
    pub fn send(mut self, input: &[u8]) -> Result<Output> {
        // Past its deadline it is stopped unsent: a request written now could
        // still land after we reported the call as failed.
        if Instant::now() >= self.running.deadline {
            bail!(
                "`{}` waited more than {}s to be sent and was stopped unsent; run again",
                self.running.what,
                self.running.timeout.as_secs()
            );
        }
        let mut stdin = self.running.child.stdin.take().context("no stdin pipe")?;
        // A child that already died (bad arguments) closed the pipe; its
        // output, read below, says why.
        let _ = stdin.write_all(input);
        drop(stdin);
        self.running.wait(Duration::from_millis(1), |_| {})
    }

    /// Whether the child has a socket open (its connection), or has
    /// already exited (nothing to wait for); where there is no `/proc` to
    /// tell, assumed so. Any socket counts, a DNS lookup's too, so this
    /// may answer a little early: the send then costs the rest of the
    /// connect, never more.
    fn connected(&mut self) -> bool {
        if !matches!(self.running.child.try_wait(), Ok(None)) {
            return true;
        }
        has_socket(self.running.child.id())
    }
}

/// Waits until every staged command has opened its connection (bounded by
/// `max`), so that sending to it costs a round trip and not the rest of
/// its start-up. On Linux a socket among the child's descriptors says so;
/// where there is no `/proc` (macOS), there is nothing to wait on.
pub fn await_connected(staged: &mut [&mut Staged], max: Duration) {
    let until = Instant::now() + max;
    while Instant::now() < until && !staged.iter_mut().all(|s| s.connected()) {
        thread::sleep(Duration::from_millis(1));
    }
}

/// Whether `pid` has a socket among its descriptors (`/proc/PID/fd`).
#[cfg(target_os = "linux")]
fn has_socket(pid: u32) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return true;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
    })
}

/// macOS has no `/proc` to tell: assumed connected, so a staged call is
/// sent right away and its gap may include the rest of gh's start-up.
#[cfg(not(target_os = "linux"))]
fn has_socket(_pid: u32) -> bool {
    true
}

/// A spawned child whose output is being collected, with its deadline.
struct Running {
    child: Child,
    what: String,
    timeout: Duration,
    deadline: Instant,
    /// The threads reading stdout and stderr; taken when the child is
    /// waited for, so `Some` means the child is still ours to stop.
    readers: Option<(Drain, Drain)>,
}

impl Running {
    fn spawn(mut command: Command, what: &str, stdin: Stdio, timeout: Duration) -> Result<Running> {
        command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run `{what}`; is it installed and on PATH?"))?;
        SPAWNED.fetch_add(1, Ordering::Relaxed);
        if command.get_program() == "az" {
            AZ_SPAWNED.fetch_add(1, Ordering::Relaxed);
        }
        let out = child.stdout.take().context("no stdout pipe")?;
        let err = child.stderr.take().context("no stderr pipe")?;
        Ok(Running {
            child,
            what: what.to_string(),
            timeout,
            deadline: Instant::now() + timeout,
            readers: Some((drain(out), drain(err))),
        })
    }

    /// Polls until the child exits or the deadline passes (then kills it).
    fn wait(&mut self, poll: Duration, mut on_tick: impl FnMut(u32)) -> Result<Output> {
        let status = loop {
            if let Some(status) = self
                .child
                .try_wait()
                .context("cannot wait for a child process")?
            {
                break status;
            }
            on_tick(self.child.id());
            if Instant::now() >= self.deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "`{}` did not finish within {}s and was stopped; check the network and the remote side, then run again",
                    self.what,
                    self.timeout.as_secs()
                );
            }
            thread::sleep(poll);
        };
        let (out, err) = self.readers.take().context("the output was already read")?;
        Ok(Output {
            code: status.code(),
            stdout: String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned(),
            stderr: String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned(),
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Only a child that was not waited for is still ours to stop.
        if self.readers.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A thread reading one of a child's pipes to its end.
type Drain = thread::JoinHandle<Vec<u8>>;

/// Reads a child's pipe to its end on a thread of its own, so that a
/// child filling one pipe never blocks on the other.
fn drain(mut pipe: impl Read + Send + 'static) -> Drain {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
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

    #[test]
    fn staged_commands_wait_for_their_input_and_die_when_dropped() {
        let sh = xshell::Shell::new().unwrap();
        let staged = stage(
            xshell::cmd!(sh, "cat").into(),
            "cat",
            Duration::from_secs(10),
        )
        .unwrap();
        // The child is running and waiting, not finished.
        thread::sleep(Duration::from_millis(50));
        let out = staged.send(b"{\"name\":\"x\"}").unwrap();
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (Some(0), "{\"name\":\"x\"}")
        );

        let marker = std::env::temp_dir().join(format!("nexy-staged-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let script = format!("read x; touch {}", marker.display());
        let staged = stage(
            xshell::cmd!(sh, "sh -c {script}").into(),
            "sh",
            Duration::from_secs(10),
        )
        .unwrap();
        thread::sleep(Duration::from_millis(50));
        drop(staged);
        // Killed, not fed: the command after `read` never ran.
        thread::sleep(Duration::from_millis(100));
        assert!(!marker.exists(), "a dropped staged command went on");
    }
}
