//! Nothing leaves loopback, by construction: each test runs itself again
//! inside a new network namespace that has only `lo` (`unshare -n` as
//! root, `unshare -rn` where user namespaces are allowed), with the
//! stand-in, our tool, gh and az all inside it, and watches every
//! `connect()` with `strace -f`. A whole release connects to 127.0.0.0/8
//! only; an az that lacks one of the settings tries the internet, and in
//! the namespace that attempt simply fails.

mod common;

use std::{
    path::Path,
    process::{Command, Stdio},
};

use common::stage::{real_az, Stage};

const INSIDE: &str = "NEXY_TEST_IN_LOOPBACK_NETNS";

/// Runs the test `name` of this binary again inside a loopback-only
/// network namespace; returns false when already inside (run the body).
fn reexec_in_netns(name: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let unshare = if root { "-n" } else { "-rn" };
    let out = Command::new("unshare")
        .args([
            unshare,
            "--",
            "sh",
            "-c",
            "ip link set lo up && exec \"$@\"",
            "sh",
        ])
        .arg(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .stdin(Stdio::null())
        .output()
        .expect("unshare (util-linux) and ip (iproute2) are installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{name} inside a loopback-only network namespace:\n{text}"
    );
    true
}

/// One `connect()` seen by strace: pid, address, whether it failed.
#[derive(Debug)]
struct Connect {
    addr: String,
    family: String,
    failed: bool,
}

/// The inet connects of an `strace -f -e trace=connect` log, `<unfinished
/// ...>` lines joined with their `<... connect resumed>` by pid.
fn connects(log: &str) -> Vec<Connect> {
    let mut pending: Vec<(String, String, String)> = Vec::new();
    let mut out = Vec::new();
    let addr_of = |l: &str| -> Option<(String, String)> {
        let family = if l.contains("sa_family=AF_INET6") {
            "inet6"
        } else if l.contains("sa_family=AF_INET") {
            "inet"
        } else {
            return None;
        };
        let key = if family == "inet6" {
            "inet_pton(AF_INET6, \""
        } else {
            "inet_addr(\""
        };
        let start = l.find(key)? + key.len();
        let end = l[start..].find('"')? + start;
        Some((family.to_string(), l[start..end].to_string()))
    };
    for line in log.lines() {
        let pid = line.split_whitespace().next().unwrap_or("").to_string();
        if line.contains("<... connect resumed>") {
            if let Some(i) = pending.iter().position(|(p, _, _)| *p == pid) {
                let (_, family, addr) = pending.remove(i);
                out.push(Connect {
                    addr,
                    family,
                    failed: failed(line),
                });
            }
            continue;
        }
        if !line.contains("connect(") {
            continue;
        }
        let Some((family, addr)) = addr_of(line) else {
            continue;
        };
        if line.contains("<unfinished ...>") {
            pending.push((pid, family, addr));
        } else {
            out.push(Connect {
                addr,
                family,
                failed: failed(line),
            });
        }
    }
    out
}

/// A connect that did not (and will not) reach its peer. EINPROGRESS is a
/// non-blocking connect under way, which counts as reaching.
fn failed(line: &str) -> bool {
    line.contains("= -1 ") && !line.contains("EINPROGRESS")
}

fn loopback(c: &Connect) -> bool {
    match c.family.as_str() {
        "inet" => c.addr.starts_with("127."),
        _ => c.addr == "::1" || c.addr.starts_with("::ffff:127."),
    }
}

fn strace(log: &Path) -> Command {
    let mut c = Command::new("strace");
    c.arg("-f")
        .arg("-qq")
        .args(["-e", "trace=connect", "-o"])
        .arg(log);
    c
}

#[test]
fn a_whole_release_connects_to_loopback_only() {
    if reexec_in_netns("a_whole_release_connects_to_loopback_only") {
        return;
    }
    let st = Stage::new();
    assert_eq!(st.run(&["bump", "2.0.0.5"]).code, 0);
    st.samples(1, 1 << 20);
    let log = st.state_dir().join("strace-release.log");
    let out = strace(&log)
        .arg(env!("CARGO_BIN_EXE_xtask"))
        .args(["release", "--config"])
        .arg(&st.config)
        .arg("--root")
        .arg(st.fx.root())
        .envs(st.env())
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let all = connects(&text);
    let outside: Vec<_> = all.iter().filter(|c| !loopback(c)).collect();
    assert!(outside.is_empty(), "connects outside loopback: {outside:?}");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not vacuous: gh reached the proxy, az the Azure stand-in.
    let port = |u: &str| {
        u.rsplit(':')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string()
    };
    let azure = port(&st.sb.azure_url());
    assert!(
        text.contains(&format!("htons({azure})")),
        "az never connected to the Azure stand-in:\n{text}"
    );
    assert!(
        text.contains(&format!("htons({})", st.sb.port())),
        "gh never connected to the stand-in:\n{text}"
    );
}

/// `az login` of the service principal under strace, with the stand-in's
/// environment less `remove`; (strace log, az's stderr).
fn traced_login(st: &Stage, name: &str, remove: &[&str]) -> (String, String) {
    let log = st.state_dir().join(format!("strace-{name}.log"));
    let mut cmd = strace(&log);
    cmd.arg(real_az())
        .args(nexy_sandbox::azcli::login_args("@-"))
        .envs(st.env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for k in remove {
        cmd.env_remove(k);
    }
    let mut child = cmd.spawn().unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        st.sb.sp_secret().as_bytes(),
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        std::fs::read_to_string(&log).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_az_without_instance_discovery_off_cannot_leave_loopback() {
    if reexec_in_netns("an_az_without_instance_discovery_off_cannot_leave_loopback") {
        return;
    }
    let st = Stage::new();
    st.sb.set_az_logged_in(false).unwrap();
    // Without the setting MSAL asks login.microsoftonline.com about the
    // authority. With the stand-in's proxies set, that goes to the
    // stand-in, which refuses the tunnel (and logs it): still loopback.
    let from = st.log_len();
    let (text, err) = traced_login(&st, "proxied", &["AZURE_CORE_INSTANCE_DISCOVERY"]);
    assert!(err.contains("login.microsoftonline.com"), "{err}");
    let outside: Vec<_> = connects(&text)
        .into_iter()
        .filter(|c| !loopback(c))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
    let refused: Vec<_> = st
        .sb
        .requests()
        .into_iter()
        .skip(from)
        .filter(|r| r.method == "CONNECT" && r.url.contains("login.microsoftonline.com"))
        .collect();
    assert!(!refused.is_empty(), "the proxy saw no tunnel attempt");
    // Without the proxies as well, az does try the internet (the resolver
    // first) ...
    let (text, err) = traced_login(
        &st,
        "direct",
        &[
            "AZURE_CORE_INSTANCE_DISCOVERY",
            "http_proxy",
            "https_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
        ],
    );
    let outside: Vec<_> = connects(&text)
        .into_iter()
        .filter(|c| !loopback(c))
        .collect();
    assert!(
        !outside.is_empty(),
        "az tried nothing outside loopback; the test proves nothing:\n{text}\n{err}"
    );
    // ... and in the namespace every such attempt fails at once.
    assert!(
        outside.iter().all(|c| c.failed),
        "a connect outside loopback succeeded: {outside:?}"
    );
}
