//! The deploy check's gRPC call: one unary
//! `streaming.StreamingService/InterruptSession` with the reserved smoke-test
//! hardware id, as the old `quick_server_ops.sh check` made it. nginx in
//! front of a stopped service still completes a TLS handshake, so only an
//! answer of the service itself proves the server is deployed.
//!
//! The call goes through `curl`, as the tool goes through gh and az: curl
//! speaks HTTP/2 (nghttp2) on macOS, on GitHub's runners and in Debian, and
//! writes the response's trailers into its header dump (`-D`), after the
//! headers and a blank line. A Rust HTTP/2 client would mean `h2` and tokio
//! in every `cargo xtask` build. The bytes and the verdict are pure
//! functions in `wire.rs`.
//!
//! The call never touches `StreamAudio` or `GenerateWelcomeAudio`, which
//! reach the language model.

mod wire;

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::{
    config::{Grpc, Workspace, INBOX},
    proc,
    report::CheckResult,
};

use wire::{field, parse_dump, request_body};
pub use wire::{judge, Answer};

pub const PATH: &str = "/streaming.StreamingService/InterruptSession";
/// Reserved for smoke tests: interrupting it interrupts no user.
pub const SMOKE_ID: &str = "smoke_test_hardware_id_interrupt";

/// The call's timeout from the config.
pub fn timeout(cfg: &Grpc) -> Duration {
    Duration::from_millis(cfg.timeout_ms.max(1))
}

/// Whether `name` is an executable file in one of `PATH`'s directories.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
}

/// A directory of its own for curl's request body, header dump and
/// response body, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("nexy-grpc-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(Scratch(dir))
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// curl's arguments for the call (the body, dump and output files named).
pub fn curl_args(cfg: &Grpc, body: &Path, dump: &Path, out: &Path) -> Vec<String> {
    let t = timeout(cfg);
    let secs = format!("{:.3}", t.as_secs_f64());
    let scheme = if cfg.tls { "https" } else { "http" };
    let mut args: Vec<String> = vec![
        "--silent".into(),
        "--show-error".into(),
        if cfg.tls {
            "--http2"
        } else {
            "--http2-prior-knowledge"
        }
        .into(),
        "--max-time".into(),
        secs.clone(),
        "--connect-timeout".into(),
        secs,
        "--user-agent".into(),
        "nexy-xtask".into(),
        "-H".into(),
        "content-type: application/grpc".into(),
        "-H".into(),
        "te: trailers".into(),
        "-H".into(),
        format!("grpc-timeout: {}m", t.as_millis()),
        "--data-binary".into(),
        format!("@{}", body.display()),
        "--dump-header".into(),
        dump.display().to_string(),
        "--output".into(),
        out.display().to_string(),
        "--write-out".into(),
        "%{http_code} %{http_version} %{time_appconnect} %{time_total} %{content_type}".into(),
    ];
    if let Some(ca) = &cfg.ca_file {
        args.extend(["--cacert".into(), ca.display().to_string()]);
    }
    if let Some(connect) = &cfg.connect {
        // Keep the endpoint's name for TLS and Host; only connect elsewhere,
        // and directly, as the TLS check does: a proxy in the environment
        // (gh's, in the stand-in) would be asked for the endpoint instead.
        args.extend([
            "--connect-to".into(),
            format!("{}:{connect}", cfg.endpoint),
            "--noproxy".into(),
            "*".into(),
        ]);
    }
    args.push(format!("{scheme}://{}{PATH}", cfg.endpoint));
    args
}

/// Makes the call through curl; an error says what answered instead.
pub fn call(sh: &Shell, cfg: &Grpc) -> Result<Answer> {
    if !on_path("curl") {
        bail!("curl is not installed: the gRPC check calls the service through curl's HTTP/2");
    }
    let scratch = Scratch::new()?;
    let (body, dump, out) = (
        scratch.path("request"),
        scratch.path("headers"),
        scratch.path("body"),
    );
    fs::write(&body, request_body(SMOKE_ID))
        .with_context(|| format!("cannot write {}", body.display()))?;
    let args = curl_args(cfg, &body, &dump, &out);
    // curl stops itself at --max-time; the bound here only guards a curl
    // that hangs in a way of its own.
    let ran = proc::run(
        cmd!(sh, "curl {args...}"),
        "curl",
        timeout(cfg) + Duration::from_secs(10),
    )?;
    let mut w = ran.stdout.split_whitespace();
    let mut next = || w.next().unwrap_or("").to_string();
    let (code, version, tls, total) = (next(), next(), next(), next());
    let content_type = next();
    let secs = |s: &str| s.parse::<f64>().unwrap_or(0.0);
    if !ran.success() {
        let err = crate::util::last_lines(&ran.stderr, 2);
        let tls_up = secs(&tls) > 0.0;
        let t = timeout(cfg).as_millis();
        let e = &cfg.endpoint;
        match ran.code {
            Some(28) if tls_up => bail!("TLS with {e} completed in {:.3}s but no gRPC answer came within {t} ms: the front is up, the service behind it hangs or is too slow ({err})", secs(&tls)),
            Some(28) => bail!("nothing answered at {e} within {t} ms ({err})"),
            Some(2) | Some(4) => bail!("this curl cannot make the call (HTTP/2 support missing?): {err}"),
            Some(6) => bail!("{e} does not resolve ({err})"),
            Some(7) => bail!("nothing accepts connections at {e}: nginx is down or the port is closed ({err})"),
            Some(35) | Some(60) => bail!("TLS with {e} failed ({err})"),
            _ => bail!("the call to {e} failed (curl exit {:?}): {err}", ran.code),
        }
    }
    let dump = fs::read_to_string(&dump).unwrap_or_default();
    let (headers, trailers) = parse_dump(&dump);
    Ok(Answer {
        http_status: code.parse().unwrap_or(0),
        http_version: version,
        content_type,
        headers,
        trailers,
        body: fs::read(&out).unwrap_or_default(),
        tls_secs: secs(&tls),
        total_secs: secs(&total),
    })
}

/// The `grpc-call` row: the call, judged.
pub fn check(sh: &Shell, cfg: &Grpc) -> CheckResult {
    let curl_fix =
        "install curl with HTTP/2 (`apt-get install curl`; macOS ships it), then run again";
    let started = std::time::Instant::now();
    let called = call(sh, cfg);
    let wall = started.elapsed().as_secs_f64();
    match called {
        Err(err) if !on_path("curl") => {
            CheckResult::fail("grpc-call", format!("{err:#}"), curl_fix)
        }
        Err(err) => {
            let text = format!("{err:#}");
            let fix = if text.contains("this curl") {
                curl_fix
            } else {
                "check that voice-assistant runs on the VM (`systemctl status voice-assistant`, `journalctl -u voice-assistant -n 50`) and that nginx passes gRPC to it; raise grpc.timeout_ms only if the service is known to be slow"
            };
            CheckResult::fail("grpc-call", text, fix)
        }
        Ok(answer) => {
            let figures = serde_json::json!({
                "http_status": answer.http_status,
                "grpc_status": field(&answer.trailers, "grpc-status").or_else(|| field(&answer.headers, "grpc-status")),
                "tls_seconds": answer.tls_secs,
                "seconds": answer.total_secs,
                // With curl's start and exit: what the check costs preflight.
                "wall_seconds": wall,
            });
            match judge(&answer, &cfg.endpoint) {
                Ok(text) => CheckResult::pass("grpc-call", text),
                Err((text, fix)) => CheckResult::fail("grpc-call", text, fix),
            }
            .with(figures)
        }
    }
}

/// verify's `grpc-call` row: the same call, made when the journal says
/// this release restarted the service (a restart is when a deployed
/// server can stop answering); skipped otherwise.
pub fn after_restart(sh: &Shell, ws: &Workspace, version: &str) -> CheckResult {
    let journal = ws.root.join(INBOX).join(".journal.jsonl");
    if restarted_into(&journal, version) {
        check(sh, &ws.config.grpc)
    } else {
        CheckResult::skip(
            "grpc-call",
            format!("{} records no restart of voice-assistant into {version}; preflight calls the service before each release", journal.display()),
        )
    }
}

/// Whether the journal says the service was restarted into `version`:
/// publish names a VM sync that restarts voice-assistant `sync vm V` (a
/// manifest-only sync, such as beta's, is `sync manifest V` and restarts
/// nothing), and the newest such record names the version the service now
/// runs. Verify calls the service only then.
pub fn restarted_into(journal: &Path, version: &str) -> bool {
    let text = fs::read_to_string(journal).unwrap_or_default();
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|j| {
            j["step"]
                .as_str()
                .and_then(|s| s.strip_prefix("sync vm "))
                .map(str::to_string)
        })
        .next()
        .is_some_and(|v| v == version)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn curl_keeps_the_tls_name_and_trusts_the_configured_ca() {
        let cfg = Grpc {
            endpoint: "nexy.example:443".into(),
            tls: true,
            ca_file: Some("/s/ca.pem".into()),
            connect: Some("127.0.0.1:4001".into()),
            timeout_ms: 1500,
        };
        let args = curl_args(
            &cfg,
            Path::new("/t/req"),
            Path::new("/t/h"),
            Path::new("/t/b"),
        );
        let joined = args.join(" ");
        assert!(joined.contains("--http2 --max-time 1.500"), "{joined}");
        assert!(
            joined.contains("--connect-to nexy.example:443:127.0.0.1:4001"),
            "{joined}"
        );
        assert!(joined.contains("--cacert /s/ca.pem"), "{joined}");
        assert!(joined.contains("grpc-timeout: 1500m"), "{joined}");
        assert_eq!(
            args.last().unwrap(),
            "https://nexy.example:443/streaming.StreamingService/InterruptSession"
        );
        assert!(!joined.contains("StreamAudio") && !joined.contains("Welcome"));
    }

    #[test]
    fn the_journal_tells_whether_the_service_restarted_into_a_version() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("journal.jsonl");
        assert!(!restarted_into(&j, "2.0.0.5"));
        fs::write(&j, "{\"phase\":\"done\",\"step\":\"sync vm 2.0.0.5\"}\n{\"phase\":\"done\",\"step\":\"swap Nexy.dmg\"}\n").unwrap();
        assert!(restarted_into(&j, "2.0.0.5"));
        assert!(!restarted_into(&j, "2.0.0.6"));
        fs::write(&j, "{\"phase\":\"done\",\"step\":\"sync vm 2.0.0.5\"}\n{\"phase\":\"start\",\"step\":\"sync vm 2.0.0.4\"}\n").unwrap();
        assert!(!restarted_into(&j, "2.0.0.5"));
        // A beta publish after a stable release restarts nothing.
        fs::write(&j, "{\"phase\":\"done\",\"step\":\"sync vm 2.0.0.5\"}\n{\"phase\":\"done\",\"step\":\"sync manifest 2.0.0.6\"}\n").unwrap();
        assert!(restarted_into(&j, "2.0.0.5"));
    }
}
