//! Helpers for the release end-to-end tests beyond `common::stage`: running
//! xtask with a changed environment or as a killable child, raw HTTP probes
//! of the fixed download URL, the stand-in's release JSON, bounded waits.
//!
//! Declared by each test file with `#[path = "common/more.rs"] mod more;`
//! next to `mod common;`.

#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::common::{stage::Stage, Run};

pub const PROD: &str = "Seregawpn/Nexy_production";
pub const GH_REPO: &str = "github.localhost/Seregawpn/Nexy_production";

pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let digest = <sha2::Sha256 as sha2::Digest>::digest(bytes);
    digest.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The command `Stage::run` runs (`xtask ARGS --config STAND-IN --root
/// FIXTURE` with the stand-in's env and a fixed clock), for callers that
/// change its environment or run it as a child.
pub fn xtask_cmd(st: &Stage, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.args(args)
        .arg("--config")
        .arg(&st.config)
        .arg("--root")
        .arg(st.fx.root())
        .envs(st.env())
        .env("SOURCE_DATE_EPOCH", "1772765937")
        .current_dir(st.fx.root())
        .stdin(Stdio::null());
    cmd
}

/// Like `Stage::run`, with some environment variables replaced.
pub fn run_with_env(st: &Stage, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = xtask_cmd(st, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An xtask run in its own process group (so that killing it also kills the
/// gh/az it is waiting for, as a closed terminal or a dead CI runner would),
/// its output going to files.
pub struct Killable {
    pub child: Child,
    pub out: PathBuf,
    pub err: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn spawn_group(st: &Stage, args: &[&str]) -> Killable {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("stdout");
    let err = dir.path().join("stderr");
    let child = xtask_cmd(st, args)
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    Killable {
        child,
        out,
        err,
        _dir: dir,
    }
}

impl Killable {
    /// SIGKILL to the whole group (the pid is the group id), then reap.
    pub fn kill_group(&mut self) {
        let pgid = self.child.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn output(&self) -> String {
        format!(
            "{}{}",
            fs::read_to_string(&self.out).unwrap_or_default(),
            fs::read_to_string(&self.err).unwrap_or_default()
        )
    }
}

impl Drop for Killable {
    fn drop(&mut self) {
        if self.running() {
            self.kill_group();
        }
    }
}

/// Polls `f` every 5 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The lines of `release_inbox/.journal.jsonl`.
pub fn journal(st: &Stage) -> Vec<serde_json::Value> {
    fs::read_to_string(st.fx.path("release_inbox/.journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Whether the journal holds a record of `phase` for a step starting with `step`.
pub fn journal_has(st: &Stage, phase: &str, step: &str) -> bool {
    journal(st)
        .iter()
        .any(|j| j["phase"] == phase && j["step"].as_str().is_some_and(|s| s.starts_with(step)))
}

/// The release behind `tag` as the REST API answers it (through real gh).
pub fn release_json(st: &Stage, tag: &str) -> serde_json::Value {
    let out = st.gh(&[
        "api",
        "--hostname",
        "github.localhost",
        &format!("repos/{PROD}/releases/tags/{tag}"),
    ]);
    assert!(
        out.status.success(),
        "gh api: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `(name, state)` of every asset of `tag`, sorted by name.
pub fn asset_names(st: &Stage, tag: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = release_json(st, tag)["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["state"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The id of the asset `name` of `tag`.
pub fn asset_id(st: &Stage, tag: &str, name: &str) -> u64 {
    release_json(st, tag)["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .and_then(|a| a["id"].as_u64())
        .unwrap_or_else(|| panic!("{tag} has no {name}"))
}

/// Every file under `dir` with its bytes (a tree compared byte for byte).
pub fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    fs::read(&path).unwrap_or_default(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A parsed HTTP answer.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `http://127.0.0.1:PORT/PATH` -> (port, path).
fn split_url(url: &str) -> (u16, String) {
    let rest = url
        .strip_prefix("http://127.0.0.1:")
        .unwrap_or_else(|| panic!("only loopback URLs: {url}"));
    let (port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    (port.parse().unwrap(), path.to_string())
}

/// One GET with HTTP/1.1 on loopback; `body` false reads only the head.
/// Connection errors come back as status 0.
pub fn get(url: &str, body: bool) -> Resp {
    let fail = || Resp {
        status: 0,
        headers: Vec::new(),
        body: Vec::new(),
    };
    let (port, path) = split_url(url);
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return fail();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return fail();
    }
    let mut r = BufReader::new(s);
    let mut line = String::new();
    if r.read_line(&mut line).is_err() {
        return fail();
    }
    let Some(status) = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
    else {
        return fail();
    };
    let mut headers = Vec::new();
    for _ in 0..200 {
        let mut l = String::new();
        if r.read_line(&mut l).unwrap_or(0) == 0 {
            break;
        }
        let l = l.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut out = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if body {
        let _ = r.read_to_end(&mut out.body);
    }
    out
}

/// GET following at most 3 redirects to loopback; `body` false reads only
/// the heads (the final Content-Length says which bytes would come).
pub fn get_follow(url: &str, body: bool) -> Resp {
    let mut url = url.to_string();
    for _ in 0..3 {
        let r = get(&url, body);
        if r.status != 302 {
            return r;
        }
        match r.header("location") {
            Some(loc) if loc.starts_with("http://127.0.0.1:") => url = loc.to_string(),
            _ => return r,
        }
    }
    get(&url, body)
}

/// What the fixed public URL gives a client, bytes included.
pub fn download(url: &str) -> Resp {
    get_follow(url, true)
}

/// One observation of the poller: ms since it started, final status, length.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub at_ms: u64,
    pub status: u16,
    pub len: Option<u64>,
}

/// Polls `url` every `every` until `stop` is set (or `limit` passes).
pub fn poll(
    url: String,
    every: Duration,
    limit: Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> thread::JoinHandle<Vec<Probe>> {
    thread::spawn(move || {
        let started = Instant::now();
        let mut out = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) && started.elapsed() < limit {
            let at_ms = started.elapsed().as_millis() as u64;
            let r = get_follow(&url, false);
            out.push(Probe {
                at_ms,
                status: r.status,
                len: r.header("content-length").and_then(|v| v.parse().ok()),
            });
            thread::sleep(every);
        }
        out
    })
}

/// The longest stretch in which the URL did not answer 200: from the first
/// failing probe of a run to the next probe that succeeded (or the last
/// probe), in ms; and how many probes failed.
pub fn longest_gap(probes: &[Probe]) -> (u64, usize) {
    let mut longest = 0;
    let mut start: Option<u64> = None;
    for p in probes {
        match (p.status == 200, start) {
            (false, None) => start = Some(p.at_ms),
            (true, Some(s)) => {
                longest = longest.max(p.at_ms - s);
                start = None;
            }
            _ => {}
        }
    }
    if let (Some(s), Some(last)) = (start, probes.last()) {
        longest = longest.max(last.at_ms - s);
    }
    (longest, probes.iter().filter(|p| p.status != 200).count())
}

/// The value of `"key": ...` in a manifest (serde_json).
pub fn manifest_field(text: &str, pointer: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    v.pointer(pointer)
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

/// The last `n` non-empty lines of a run's combined output.
pub fn last_lines(run: &Run, n: usize) -> String {
    let all = run.all();
    let lines: Vec<&str> = all.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Replaces exactly one occurrence of `from` in the stand-in's release.toml.
pub fn edit_config(st: &Stage, from: &str, to: &str) {
    let text = fs::read_to_string(&st.config).unwrap();
    assert_eq!(
        text.matches(from).count(),
        1,
        "{} must hold `{from}` once:\n{text}",
        st.config.display()
    );
    fs::write(&st.config, text.replacen(from, to, 1)).unwrap();
}

/// Requests of the log since `from`, as `METHOD URL STATUS` (http only).
pub fn http_since(st: &Stage, from: usize) -> Vec<(String, String, i64)> {
    st.sb
        .requests()
        .into_iter()
        .skip(from)
        .filter(|r| r.kind == "http")
        .map(|r| (r.method, r.url, r.status))
        .collect()
}

/// The command lines of the live processes in process group `pgid`.
pub fn group_commands(pgid: u32) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: fields after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") || fields.get(2) != Some(&pgid.to_string().as_str()) {
            continue;
        }
        if let Ok(cmd) = fs::read(format!("/proc/{pid}/cmdline")) {
            out.push(String::from_utf8_lossy(&cmd).replace('\0', " "));
        }
    }
    out
}

/// `(tag, id, name, digest)` of every asset of every release, sorted.
pub fn all_assets(st: &Stage) -> Vec<(String, u64, String, String)> {
    let out = st.gh(&[
        "api",
        "--hostname",
        "github.localhost",
        &format!("repos/{PROD}/releases"),
    ]);
    assert!(
        out.status.success(),
        "gh api: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let releases: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut all = Vec::new();
    for rel in releases.as_array().unwrap() {
        for a in rel["assets"].as_array().unwrap() {
            all.push((
                rel["tag_name"].as_str().unwrap().to_string(),
                a["id"].as_u64().unwrap(),
                a["name"].as_str().unwrap().to_string(),
                a["digest"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    all.sort();
    all
}

/// The mutating requests since `from` other than those every real run
/// makes even when it stops before any change: the release lease's take
/// (the upload named `nexy-release.lease`) and release, the uploads under
/// temporary names (`Nexy.next-...`) begun beside the VM read, and the
/// DELETEs of assets that were not there at `from` (`before`, from
/// [`all_assets`]): the lease's and those uploads'. The caller checks that
/// the assets are then exactly `before` again.
pub fn mutating_apart_from_lease_and_temporaries(
    st: &Stage,
    from: usize,
    before: &[(String, u64, String, String)],
) -> Vec<String> {
    st.mutating_since(from)
        .into_iter()
        .filter(|r| {
            let lease_take = r.starts_with("POST ") && r.contains("name=nexy-release.lease");
            // An upload under a temporary name, begun beside the VM read
            // (and removed again: its DELETE is of an asset not `before`).
            let temp_upload = r.starts_with("POST ") && r.contains("name=Nexy.next-");
            let new_asset_gone = r.starts_with("DELETE ")
                && r.split(' ')
                    .nth(1)
                    .and_then(|u| u.rsplit_once("/releases/assets/"))
                    .and_then(|(_, id)| id.parse::<u64>().ok())
                    .is_some_and(|id| before.iter().all(|a| a.1 != id));
            !(lease_take || temp_upload || new_asset_gone)
        })
        .collect()
}
