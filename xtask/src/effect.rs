//! The seam every effect of a release passes besides the child processes
//! themselves (which `proc.rs` bounds and counts): how a prepared command
//! is shown, how a file is written or appended to, and the one HTTP
//! request and TCP connection of the xtask.
//!
//! The dry run does not describe steps in words of its own: it shows the
//! very `Command` values that `gh.rs` and `az.rs` prepare for the real run
//! (with [`describe`]), and the writes the real run would make
//! ([`describe_write`]). So what `--dry-run` prints is what would run.
//!
//! Effects come in two kinds, and a dry run treats each kind one way:
//! - Changes (an upload, a rename, a delete, a VM sync, a file write or a
//!   journal line) are printed instead of performed.
//! - Reads of live state (`gh api` GETs, the VM's read script, and every
//!   HTTP request, which is a GET by construction: [`get`] is the only
//!   request this crate makes) are performed in every mode, because the
//!   plan a dry run prints is made from them. They are not printed, in a
//!   dry run or a real one alike; an error names the read as
//!   [`describe_get`] shows it (`GET url`).
//!
//! Files written outside this seam are scratch of their own (a
//! benchmark's, a test's, a temporary spool removed after use), what a
//! command was asked to write (a key, a hook, sample images) or the seam's
//! own atomic machinery (`changes.rs`); the test at the end of this file
//! lists each such module with its reason (`EXEMPT`) and fails on any other.

use std::{
    io::Write as _,
    net::{SocketAddr, TcpStream},
    path::Path,
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use anyhow::{Context, Result};

/// How many HTTP requests and TCP connections this run has made, counted
/// as `proc::SPAWNED` counts children.
pub static REQUESTS: AtomicUsize = AtomicUsize::new(0);

/// A command as a POSIX shell line: the program and each argument, quoted
/// where a shell would split or expand it; `stdin`, when given, follows as
/// a here-string (what `--input -` reads). The environment is not shown:
/// tokens travel there and are never printed.
pub fn describe(command: &Command, stdin: Option<&[u8]>) -> String {
    let mut line = word(&command.get_program().to_string_lossy());
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&word(&arg.to_string_lossy()));
    }
    if let Some(body) = stdin {
        line.push_str(" <<< ");
        line.push_str(&crate::proc::sh_quote(&String::from_utf8_lossy(body)));
    }
    line
}

/// One shell word: as is when it holds only characters no shell treats
/// specially, single-quoted otherwise.
fn word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,/:=@%+".contains(c));
    if plain {
        text.to_string()
    } else {
        crate::proc::sh_quote(text)
    }
}

/// How a write of `bytes` to `path` shows in a dry run.
pub fn describe_write(path: &Path, bytes: &[u8]) -> String {
    format!(
        "write {} ({} bytes, sha256 {})",
        path.display(),
        bytes.len(),
        crate::hash::bytes_sha256(bytes)
    )
}

/// Writes `text` to `path` whole or not at all, through the one file
/// writer (`changes::apply`: a temporary file beside it, synced, then
/// renamed over it).
pub fn write(path: &Path, text: &str) -> Result<()> {
    crate::changes::apply(&[crate::changes::FileChange {
        rel: path.display().to_string(),
        abs: path.to_path_buf(),
        old: String::new(),
        new: text.to_string(),
    }])
}

/// Appends `line` and a newline to `path` (created when missing) in one
/// `write` of an `O_APPEND` file, so that lines of runs racing each other
/// never interleave, and a kill leaves at most one line cut short.
pub fn append(path: &Path, line: &str) -> Result<()> {
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(&bytes))
        .with_context(|| format!("cannot append to {}", path.display()))
}

/// How an HTTP read shows in errors and traces.
pub fn describe_get(url: &str) -> String {
    format!("GET {url}")
}

/// The one HTTP request of the xtask: a GET of `url` (a read, performed in
/// a dry run too; see the module's header), bounded by `timeout` or by the
/// agent's own timeouts. A status of 400 or more is an error naming the
/// request in one line (ureq's error carries the whole response).
pub fn get(agent: &ureq::Agent, url: &str, timeout: Option<Duration>) -> Result<ureq::Response> {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    let mut request = agent.get(url);
    if let Some(t) = timeout {
        request = request.timeout(t);
    }
    request.call().map_err(|err| {
        let why = match err {
            ureq::Error::Status(code, _) => format!("HTTP {code}"),
            ureq::Error::Transport(t) => t.to_string(),
        };
        anyhow::anyhow!("{} failed: {why}", describe_get(url))
    })
}

/// A TCP connection to `addr` (`shown` names it in errors), with `timeout`
/// on the connect and on every read and write after it: the TLS handshake
/// with the gRPC endpoint, a read of live state.
pub fn connect(addr: &SocketAddr, shown: &str, timeout: Duration) -> Result<TcpStream> {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    let sock = TcpStream::connect_timeout(addr, timeout)
        .with_context(|| format!("cannot connect to {shown}"))?;
    sock.set_read_timeout(Some(timeout))?;
    sock.set_write_timeout(Some(timeout))?;
    Ok(sock)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn commands_show_as_shell_lines() {
        let mut c = Command::new("gh");
        c.args([
            "api",
            "--hostname",
            "github.com",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["repos/o/r", "it's", ""])
        .env("GH_TOKEN", "secret");
        assert_eq!(
            describe(&c, Some(b"{\"name\":\"Nexy.dmg\"}")),
            "gh api --hostname github.com -H 'Content-Type: application/json' repos/o/r 'it'\\''s' '' <<< '{\"name\":\"Nexy.dmg\"}'"
        );
        assert!(!describe(&c, None).contains("secret"));
    }

    #[test]
    fn writes_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        write(&path, "one").unwrap();
        write(&path, "two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write(&dir.path().join("missing/x"), "x").is_err());
        assert!(describe_write(&path, b"two")
            .starts_with(&format!("write {} (3 bytes, sha256 ", path.display())));
    }

    #[test]
    fn appends_are_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        append(&path, "{\"a\":1}").unwrap();
        append(&path, "{\"a\":2}").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"a\":2}\n");
        let err = append(&dir.path().join("missing/j"), "x").unwrap_err();
        assert!(format!("{err:#}").contains("cannot append to"), "{err:#}");
    }

    #[test]
    fn a_failed_get_names_the_request_in_one_line() {
        // A port nothing listens on: the connect is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/health");
        let before = REQUESTS.load(Ordering::Relaxed);
        let err = get(&crate::http::agent(), &url, Some(Duration::from_secs(5))).unwrap_err();
        let shown = format!("{err:#}");
        assert!(shown.starts_with(&format!("GET {url} failed: ")), "{shown}");
        assert!(!shown.contains('\n'), "{shown}");
        assert!(REQUESTS.load(Ordering::Relaxed) > before);
    }

    /// The files that touch the file system or the network themselves, and
    /// why each may: everything else goes through this seam (or `proc.rs`
    /// for child processes). A new raw effect fails this test until it is
    /// routed through the seam or listed here with its reason.
    const EXEMPT: &[(&str, &str)] = &[
        ("effect.rs", "the seam itself"),
        ("changes.rs", "the seam's atomic writer behind `write` (temporary file, fsync, rename)"),
        ("lock.rs", "the lock file is the exclusion itself (`create_new`); a dry run takes no lock"),
        ("lease/mod.rs", "the lease's upload body in a scratch directory and this clone's record of the lease it holds; like the lock, a real run's only"),
        ("archive.rs", "a rollback point is a directory written whole: staged, then renamed; a dry run shows its downloads and writes"),
        ("publish/apply.rs", "the staging directory of upload names (symlinks), removed after the uploads"),
        ("publish/early.rs", "the same staging of upload names for the uploads `release` begins beside preflight, removed after them; a dry run begins none"),
        ("promote.rs", "the staging directory of the downloads, removed after"),
        ("http.rs", "the scratch spool of a downloaded DMG (`download_to`), removed by its caller"),
        ("preflight_artifacts.rs", "the scratch spool of `verify --deep`'s download, removed after"),
        ("macos/pkg.rs", "a scratch spool of a PKG's payload, removed after"),
        ("grpc/mod.rs", "curl's request and answer files in a scratch directory of its own"),
        ("signing.rs", "`keygen` writes the private key it was asked for, mode 0600, outside the repository"),
        ("hook.rs", "`hook install` writes the git hook it was asked for"),
        ("sandbox.rs", "the stand-in's own state directory and config"),
        ("samples.rs", "`samples` writes the sample images it was asked for"),
        ("gitobj.rs", "a git tree checked out into a scratch directory for `check`"),
        ("artifact.rs", "the hashing benchmark's input file"),
        ("rehearse.rs", "the rehearsal's temporary workspace"),
        ("scratch.rs", "a command's own scratch directory, removed when dropped"),
        ("bench/", "benchmarks write their scratch files and talk to the stand-in directly"),
    ];

    /// Raw effects: file-system changes, HTTP requests and connections.
    const RAW: &[&str] = &[
        "fs::write(",
        "OpenOptions::new(",
        "File::create(",
        "remove_file(",
        "remove_dir_all(",
        "fs::rename(",
        "fs::copy(",
        "create_dir",
        "symlink(",
        "AgentBuilder",
        ".call()",
        "TcpStream::connect",
    ];

    #[test]
    fn every_effect_passes_the_seam_or_says_why_not() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        let mut dirs = vec![src.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let mut bypasses = Vec::new();
        let mut used = std::collections::BTreeSet::new();
        for path in files {
            let rel = path
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel.ends_with("_test.rs") || rel.ends_with("tests.rs") {
                continue;
            }
            let text = fs::read_to_string(&path).unwrap();
            // Unit tests write their own fixtures.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let hits: Vec<&str> = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .filter(|l| RAW.iter().any(|r| l.contains(r)))
                .collect();
            if hits.is_empty() {
                continue;
            }
            match EXEMPT
                .iter()
                .find(|(name, _)| *name == rel || (name.ends_with('/') && rel.starts_with(name)))
            {
                Some((name, _)) => {
                    used.insert(*name);
                }
                None => bypasses.push(format!("{rel}: {}", hits[0].trim())),
            }
        }
        assert!(
            bypasses.is_empty(),
            "effects outside the seam (route them through effect.rs or list the file in EXEMPT with its reason):\n{}",
            bypasses.join("\n")
        );
        let stale: Vec<&str> = EXEMPT
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| !used.contains(name))
            .collect();
        assert!(
            stale.is_empty(),
            "EXEMPT lists files with no raw effect left: {stale:?}"
        );
    }
}
