//! Helpers shared by the integration tests: start a sandbox, run the real
//! gh/az with its environment under a time limit, and speak raw HTTP to it.
#![allow(dead_code)]

use nexy_sandbox::{Options, Sandbox};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const REPO: &str = "Seregawpn/Nexy_production";
pub const GH: &str = "/usr/bin/gh";

pub fn start() -> Sandbox {
    start_with(Options::default())
}

pub fn start_with(mut opts: Options) -> Sandbox {
    opts.systemctl_binary = Some(env!("CARGO_BIN_EXE_nexy-vm-systemctl").into());
    Sandbox::start(opts).expect("sandbox starts")
}

/// The real az (azure-cli 2.91 in the project's venv); fails at once,
/// saying how to install it, when it is missing. Tests never install it.
pub fn real_az() -> std::path::PathBuf {
    nexy_sandbox::azcli::find().unwrap_or_else(|e| panic!("{e:#}"))
}

/// A stand-in with the real az set up against it (logged in).
pub fn start_az() -> Sandbox {
    start_with(Options {
        az: Some(real_az()),
        ..Options::default()
    })
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Run a program with the sandbox's environment (and nothing that could
/// reach outside: the proxy variables point at the stand-in), bounded.
pub fn run_env(sb: &Sandbox, program: &str, args: &[&str], timeout: Duration) -> Out {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("HOME", sb.state_dir())
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in sb.env() {
        cmd.env(k, v);
    }
    run_cmd(cmd, timeout)
}

pub fn run_cmd(mut cmd: Command, timeout: Duration) -> Out {
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t1 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = so.read_to_end(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = se.read_to_end(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command timed out after {timeout:?}: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = String::from_utf8_lossy(&t1.join().expect("join")).into_owned();
    let stderr = String::from_utf8_lossy(&t2.join().expect("join")).into_owned();
    Out {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        elapsed: start.elapsed(),
    }
}

pub fn gh(sb: &Sandbox, args: &[&str]) -> Out {
    run_env(sb, GH, args, Duration::from_secs(60))
}

/// `gh release upload TAG FILE -R REPO` and `extra` (e.g. `--clobber`).
pub fn gh_upload(sb: &Sandbox, tag: &str, file: &str, extra: &[&str]) -> Out {
    let mut args = vec!["release", "upload", tag, file, "-R", REPO];
    args.extend_from_slice(extra);
    gh(sb, &args)
}

/// `gh release download TAG -R REPO --pattern NAME --dir DIR` and `extra`.
pub fn gh_download(sb: &Sandbox, tag: &str, name: &str, dir: &str, extra: &[&str]) -> Out {
    let mut args = vec![
        "release",
        "download",
        tag,
        "-R",
        REPO,
        "--pattern",
        name,
        "--dir",
        dir,
    ];
    args.extend_from_slice(extra);
    gh(sb, &args)
}

pub fn az(sb: &Sandbox, args: &[&str]) -> Out {
    let az = sb.state_dir().join("bin").join("az");
    run_env(
        sb,
        az.to_str().expect("utf8"),
        args,
        Duration::from_secs(60),
    )
}

pub fn az_script(sb: &Sandbox, script: &str) -> Out {
    az_invoke(sb, "NexyNewRG", "NexyNew", &[script])
}

/// `az vm run-command invoke -g RG -n VM --command-id RunShellScript
/// --scripts REST...`: the scripts, then any further flags.
pub fn az_invoke(sb: &Sandbox, rg: &str, vm: &str, rest: &[&str]) -> Out {
    az(sb, &invoke_args(rg, vm, rest))
}

/// The arguments of a run-command invoke (see [`az_invoke`]).
fn invoke_args<'a>(rg: &'a str, vm: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "vm",
        "run-command",
        "invoke",
        "-g",
        rg,
        "-n",
        vm,
        "--command-id",
        "RunShellScript",
        "--scripts",
    ];
    args.extend_from_slice(rest);
    args
}

/// The `message` field of an az run-command answer.
pub fn az_message(o: &Out) -> String {
    let v: serde_json::Value = serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("az stdout not JSON ({e}): {}", o.stdout));
    v["value"][0]["message"]
        .as_str()
        .expect("message")
        .to_string()
}

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
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("json body")
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request to 127.0.0.1:port. `target` is a path (direct) or
/// an absolute URL (as a client using the proxy sends it). Reads until close
/// and also reports a body shorter than Content-Length (body as received).
pub fn http(port: u16, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let host = target
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .map(str::to_string)
        .unwrap_or_else(|| format!("127.0.0.1:{port}"));
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

pub fn get(port: u16, target: &str) -> Resp {
    http(port, "GET", target, &[], b"")
}

/// GET following redirects (at most 5), all through the stand-in.
pub fn get_follow(port: u16, target: &str) -> Resp {
    let mut t = target.to_string();
    for _ in 0..5 {
        let r = get(port, &t);
        if r.status != 302 {
            return r;
        }
        let loc = r.header("location").expect("location").to_string();
        // A 127.0.0.1 URL is fetched directly (origin form), a named host
        // through the proxy (absolute form).
        t = match loc.strip_prefix(&format!("http://127.0.0.1:{port}")) {
            Some(p) => p.to_string(),
            None => loc,
        };
    }
    panic!("too many redirects");
}

pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write file");
    p
}

/// Deterministic pseudo-random bytes (no rand crate needed).
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    nexy_sandbox::util::sha256_hex(b)
}

/// A scratch dir inside the sandbox's state (removed with it).
pub fn scratch(sb: &Sandbox, name: &str) -> std::path::PathBuf {
    let d = sb.state_dir().join("scratch").join(name);
    std::fs::create_dir_all(&d).expect("mkdir scratch");
    d
}
