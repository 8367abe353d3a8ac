//! Serving HTTP/1.1: the accept loop, one connection's requests (GitHub
//! through the proxy, the update feed, storage), the injected faults, and
//! the `/_sandbox/` control endpoints. The state is `app.rs`, the public
//! handle `handle.rs`, the TLS listener `tls.rs`.

use crate::app::{lock, seed_asset, set_immutable, App, Req};
use crate::faults::{Faults, MAX_SLEEP_MS};
use crate::http::{self, Response};
use crate::reqlog::{self, LoggedRequest};
use anyhow::{Context, Result};
use serde_json::json;
use std::io::BufReader;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Idle keep-alive connections are closed after this long, which also bounds
/// how long connection threads outlive a stopped sandbox.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn http_accept_loop(listener: TcpListener, app: Arc<App>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                let a = app.clone();
                let spawned = std::thread::Builder::new()
                    .name("nexy-http-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve_conn(&a, s) {
                            if std::env::var_os("NEXY_SANDBOX_DEBUG").is_some() {
                                eprintln!("nexy-sandbox: connection: {e:#}");
                            }
                        }
                    });
                if spawned.is_err() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn split_target(target: &str, host_header: Option<&str>) -> (String, String, String) {
    // Absolute form (through the proxy) or origin form (direct).
    let (authority, rest) = if let Some(r) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        match r.find('/') {
            Some(i) => (r[..i].to_string(), r[i..].to_string()),
            None => (r.to_string(), "/".to_string()),
        }
    } else {
        (host_header.unwrap_or("").to_string(), target.to_string())
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (rest, String::new()),
    };
    (authority, path, query)
}

fn is_loopback_host(h: &str) -> bool {
    h == "127.0.0.1" || h == "localhost" || h == "[::1]" || h.starts_with("127.")
}

fn serve_conn(app: &App, stream: TcpStream) -> Result<()> {
    stream.set_nonblocking(false).context("blocking")?;
    stream
        .set_read_timeout(Some(IDLE_TIMEOUT))
        .context("read timeout")?;
    stream
        .set_write_timeout(Some(IDLE_TIMEOUT))
        .context("write timeout")?;
    let mut reader = BufReader::new(stream.try_clone().context("clone stream")?);
    let mut writer = stream;
    // Bounded: a keep-alive connection serves at most this many requests.
    for _ in 0..10_000 {
        let Some(head) = http::read_head(&mut reader)? else {
            return Ok(());
        };
        if head.method == "CONNECT" {
            // Only plain-HTTP hosts are served; tunnelling (e.g. gh probing
            // api.github.com:443) is refused so nothing leaves the machine.
            let url = format!("https://{}", head.target);
            LoggedRequest::new("http", "CONNECT", &url, 403, b"").append_to(&app.log_path())?;
            let r = Response::text(403, "CONNECT is refused by nexy-sandbox\n");
            let mut r = r;
            r.close = true;
            http::write_response(&mut writer, &r, false)?;
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
        let (authority, path, query) = split_target(&head.target, head.header("host"));
        let host = authority
            .rsplit_once(':')
            .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
            .map(|(h, _)| h)
            .unwrap_or(&authority)
            .to_ascii_lowercase();
        let url = format!(
            "http://{authority}{path}{}",
            if query.is_empty() {
                String::new()
            } else {
                format!("?{query}")
            }
        );
        let is_upload = head.method == "POST"
            && host == "uploads.github.localhost"
            && path.ends_with("/assets");
        let (cut, fail_status) = if is_upload {
            let mut fs = lock(&app.faults);
            fs.uploads += 1;
            let n = fs.uploads;
            let cut = fs
                .faults
                .upload_cut
                .as_ref()
                .filter(|c| c.nth == n)
                .map(|c| c.after_bytes);
            let fail = fs
                .faults
                .upload_fail
                .as_ref()
                .filter(|f| n >= f.nth && n < f.nth.saturating_add(f.count))
                .map(|f| f.status);
            (cut, fail)
        } else {
            (None, None)
        };
        let framing = head.framing()?;
        if head
            .header("expect")
            .map(|e| e.eq_ignore_ascii_case("100-continue"))
            .unwrap_or(false)
        {
            // curl waits for this before sending large bodies.
            std::io::Write::write_all(&mut writer, b"HTTP/1.1 100 Continue\r\n\r\n")
                .context("write 100 Continue")?;
        }
        let body = match http::read_body(&mut reader, framing, cut) {
            Ok(b) => b,
            Err(e) => {
                LoggedRequest::new("http", &head.method, &url, 400, b"")
                    .append_to(&app.log_path())?;
                return Err(e);
            }
        };
        let req = Req {
            method: head.method.clone(),
            url: url.clone(),
            direct: is_loopback_host(&host),
            host,
            path,
            query,
            headers: head.headers.clone(),
            body,
            cut: cut.is_some(),
            fail_status,
        };
        // The latency profile's GitHub round trip is not a fault: it is not
        // logged as held. An upload's body then crosses the uplink it
        // shares with the other uploads in flight (not capped).
        if req.host.ends_with("github.localhost") {
            let rtt = app.latency.github_rtt_ms.min(MAX_SLEEP_MS);
            if rtt > 0 {
                std::thread::sleep(Duration::from_millis(rtt));
            }
            if is_upload {
                app.uplink.send(req.body.len() as u64);
            }
        }
        let delay = app.faults_snapshot().delay_for(&req.method, &req.url);
        if delay > 0 {
            // Logged on arrival, so that a test can kill its sender while
            // the request is known to be held here, not merely sent.
            LoggedRequest::new("held", &req.method, &req.url, 0, &req.body)
                .append_to(&app.log_path())?;
            std::thread::sleep(Duration::from_millis(delay.min(MAX_SLEEP_MS)));
        }
        let mut resp = match injected_failure(app, &req) {
            Some(r) => r,
            None => match dispatch(app, &req) {
                Ok(r) => r,
                Err(e) => Response::json(500, &json!({"message": format!("nexy-sandbox: {e:#}")})),
            },
        };
        if req.path.starts_with("/_storage/") && resp.status == 200 {
            let mut fs = lock(&app.faults);
            if let Some(d) = fs.faults.download_drop.clone() {
                if d.times.map(|t| fs.drops < t).unwrap_or(true) {
                    fs.drops += 1;
                    resp.drop_after = Some(d.after_bytes);
                }
            }
        }
        let mut entry = LoggedRequest::new(
            "http",
            &req.method,
            &req.url,
            if resp.abort { 0 } else { resp.status as i64 },
            &req.body,
        );
        if req.path.starts_with("/_sandbox/") {
            entry.kind = "control".into();
        }
        entry.append_to(&app.log_path())?;
        if resp.abort {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
        http::write_response(&mut writer, &resp, req.method == "HEAD")?;
        if resp.close || resp.drop_after.is_some() || !head.keep_alive() {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    Ok(())
}

/// The answer of a `fails` rule that matches `req` and has answers left.
fn injected_failure(app: &App, req: &Req) -> Option<Response> {
    let mut fs = lock(&app.faults);
    let i = fs.faults.fail_for(&req.method, &req.url, &req.body)?;
    let rule = fs.faults.fails[i].clone();
    if fs.failed.len() <= i {
        fs.failed.resize(i + 1, 0);
    }
    if rule.times.is_some_and(|t| fs.failed[i] >= t) {
        return None;
    }
    fs.failed[i] += 1;
    Some(Response::json(
        rule.status,
        &json!({"message": "Server Error (sandbox fault)"}),
    ))
}

fn dispatch(app: &App, req: &Req) -> Result<Response> {
    match req.host.as_str() {
        // A request with the stand-in read-only token is answered by
        // `tokens` (which falls back to `github` for reads), so that
        // `github` need not know of it.
        "api.github.localhost" | "uploads.github.localhost" => {
            let uploads = req.host == "uploads.github.localhost";
            return crate::tokens::handle(app, req, uploads)
                .unwrap_or_else(|| crate::github::handle_api(app, req, uploads));
        }
        "github.localhost" | "www.github.localhost" => {
            let stale = app.faults_snapshot().download_stale_secs;
            return crate::github::public_download(app, req, stale);
        }
        "objects.github.localhost" => return crate::github::storage(app, req),
        _ => {}
    }
    let p = req.path.as_str();
    if p.starts_with("/_sandbox/") {
        return control(app, req);
    }
    if p.starts_with("/_storage/") {
        return crate::github::storage(app, req);
    }
    if let Some(r) = crate::feed::handle(app, p)? {
        return Ok(r);
    }
    if p.contains("/releases/download/") {
        let stale = app.faults_snapshot().download_stale_secs;
        return crate::github::public_download(app, req, stale);
    }
    Ok(Response::text(404, "Not Found"))
}

/// `/_sandbox/...` control endpoints (see the crate docs for the formats).
fn control(app: &App, req: &Req) -> Result<Response> {
    let bad = |m: String| Response::json(400, &json!({"error": m}));
    let body_json = || -> Result<serde_json::Value, Response> {
        serde_json::from_slice(&req.body).map_err(|e| bad(format!("bad JSON: {e}")))
    };
    let q = crate::util::parse_query(&req.query);
    let qget = |k: &str| q.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/_sandbox/requests") => {
            let log = reqlog::read_log(&app.log_path())?;
            Ok(Response::json(200, &serde_json::to_value(log)?))
        }
        ("GET", "/_sandbox/faults") => Ok(Response::json(
            200,
            &serde_json::to_value(app.faults_snapshot())?,
        )),
        ("POST" | "PUT", "/_sandbox/faults") => {
            let f: Faults = match serde_json::from_slice(&req.body) {
                Ok(f) => f,
                Err(e) => return Ok(bad(format!("bad faults: {e}"))),
            };
            app.set_faults(f)?;
            Ok(Response::json(
                200,
                &serde_json::to_value(app.faults_snapshot())?,
            ))
        }
        ("POST", "/_sandbox/immutable") => {
            let v = match body_json() {
                Ok(v) => v,
                Err(r) => return Ok(r),
            };
            let tag = v["tag"].as_str().unwrap_or("");
            let repo = v["repo"].as_str().unwrap_or(crate::store::PROD);
            let imm = v["immutable"].as_bool().unwrap_or(true);
            match set_immutable(app, repo, tag, imm) {
                Ok(()) => Ok(Response::json(200, &json!({"tag": tag, "immutable": imm}))),
                Err(e) => Ok(Response::json(404, &json!({"error": format!("{e:#}")}))),
            }
        }
        ("POST", "/_sandbox/seed-asset") => {
            let (Some(tag), Some(name)) = (qget("tag"), qget("name")) else {
                return Ok(bad("need ?tag=&name=".into()));
            };
            let repo = qget("repo").unwrap_or_else(|| crate::store::PROD.to_string());
            match seed_asset(app, &repo, &tag, &name, &req.body) {
                Ok(id) => Ok(Response::json(201, &json!({"id": id}))),
                Err(e) => Ok(Response::json(404, &json!({"error": format!("{e:#}")}))),
            }
        }
        ("GET", "/_sandbox/info") => Ok(Response::json(
            200,
            &json!({"port": app.port, "tls_port": app.tls_port, "state_dir": app.dir,
                    "base_url": format!("http://127.0.0.1:{}", app.port)}),
        )),
        _ => Ok(Response::json(
            404,
            &json!({"error": "unknown control endpoint"}),
        )),
    }
}
