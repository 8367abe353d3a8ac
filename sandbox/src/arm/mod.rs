//! Azure over HTTPS on loopback, for the real `az` (PyPI azure-cli 2.91):
//! the cloud metadata endpoint, a tenant of Entra ID (OpenID configuration
//! and a client-credentials token endpoint, see `entra.rs`), the
//! subscriptions list and the VM's `runCommand` as a long-running operation
//! (see `runcommand.rs`).
//!
//! It listens on its own port with a certificate issued by the stand-in's CA
//! (`DIR/ca.pem`, SAN IP:127.0.0.1 and DNS:localhost), which az trusts
//! through `REQUESTS_CA_BUNDLE`. Every request goes to `DIR/requests.jsonl`
//! with kind `arm`, az's User-Agent and its `CommandName` header as
//! `command`; a client secret is never written there.

pub mod entra;
pub mod runcommand;

use crate::app::{lock, App};
use crate::http::{self, Response};
use crate::reqlog::LoggedRequest;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::{BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::azure_faults::{AzureFaults, Counters};
pub use crate::latency::Latency;

/// The tenant, service principal and subscription the stand-in knows (the
/// values of the recorded trace `az-2.91-trace.jsonl`).
pub const TENANT: &str = "72f988bf-0000-4000-8000-00000000feed";
pub const APP_ID: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";
pub const SUBSCRIPTION: &str = "11111111-2222-4333-8444-555555555555";
pub const SUBSCRIPTION_NAME: &str = "Nexy Local Stand-in";
pub const LOCATION: &str = "canadacentral";
/// The custom cloud az is pointed at.
pub const CLOUD: &str = "NexyLocal";
/// The VMs that exist: (resource group, name), compared case-insensitively
/// as ARM does.
pub const VMS: &[(&str, &str)] = &[("NexyNewRG", "NexyNew")];

const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The ARM/Entra stand-in's own state.
pub struct Arm {
    pub port: u16,
    pub dir: PathBuf,
    secret: String,
    tls: Arc<rustls::ServerConfig>,
    pub latency: Latency,
    /// Access tokens issued (persisted in `DIR/azure/tokens` so that a
    /// restarted stand-in still honours az's cached token).
    tokens: Mutex<HashSet<String>>,
    pub(crate) ops: Mutex<HashMap<String, runcommand::Op>>,
}

impl Arm {
    /// Binds the HTTPS port and loads (or makes) the service principal's
    /// secret in `DIR/azure/`.
    pub fn bind(
        dir: &Path,
        port: u16,
        tls: Arc<rustls::ServerConfig>,
        latency: Latency,
    ) -> Result<(Arc<Arm>, TcpListener)> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("bind 127.0.0.1:{port} (azure)"))?;
        listener.set_nonblocking(true).context("nonblocking")?;
        let port = listener.local_addr().context("local addr")?.port();
        let azdir = dir.join("azure");
        std::fs::create_dir_all(&azdir).with_context(|| format!("mkdir {}", azdir.display()))?;
        let secret_path = azdir.join("sp-secret");
        let secret = match std::fs::read_to_string(&secret_path) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                let s = format!("nexy-sp~{}", random_hex(16)?);
                write_private(&secret_path, &s)?;
                s
            }
        };
        let tokens = std::fs::read_to_string(azdir.join("tokens"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        Ok((
            Arc::new(Arm {
                port,
                dir: dir.to_path_buf(),
                secret,
                tls,
                latency,
                tokens: Mutex::new(tokens),
                ops: Mutex::new(HashMap::new()),
            }),
            listener,
        ))
    }

    /// `https://127.0.0.1:PORT` (no trailing slash).
    pub fn base(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The service principal's secret (for `az login`; never logged).
    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub(crate) fn issue_token(&self) -> Result<String> {
        let t = format!("nexy-arm-{}", random_hex(24)?);
        lock(&self.tokens).insert(t.clone());
        crate::util::append_line(&self.dir.join("azure").join("tokens"), &t)?;
        Ok(t)
    }

    fn token_known(&self, t: &str) -> bool {
        lock(&self.tokens).contains(t)
    }
}

/// Random hex from the kernel (ids, tokens, secrets).
pub fn random_hex(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("read /dev/urandom")?;
    Ok(crate::util::hex(&buf))
}

fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}

/// One request on the ARM port.
pub struct ArmReq {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ArmReq {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.as_str())
    }
}

/// ARM's error body: `{"error":{"code":..,"message":..}}`.
pub fn arm_error(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({"error": {"code": code, "message": message}}),
    )
    .with_header("x-ms-failure-cause", "gateway")
}

/// Accept until `stop`, one thread per connection.
pub fn accept_loop(listener: TcpListener, app: Arc<App>, arm: Arc<Arm>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                let (a, r) = (app.clone(), arm.clone());
                let spawned = std::thread::Builder::new()
                    .name("nexy-arm-conn".into())
                    .spawn(move || {
                        if let Err(e) = serve_conn(&a, &r, s) {
                            if std::env::var_os("NEXY_SANDBOX_DEBUG").is_some() {
                                eprintln!("nexy-sandbox: azure connection: {e:#}");
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

fn serve_conn(app: &App, arm: &Arm, tcp: TcpStream) -> Result<()> {
    tcp.set_nonblocking(false).context("blocking")?;
    tcp.set_read_timeout(Some(IDLE_TIMEOUT))
        .context("timeout")?;
    tcp.set_write_timeout(Some(IDLE_TIMEOUT))
        .context("timeout")?;
    let conn = rustls::ServerConnection::new(arm.tls.clone()).context("tls conn")?;
    let mut reader = BufReader::new(rustls::StreamOwned::new(conn, tcp));
    // Bounded: a keep-alive connection serves at most this many requests.
    for _ in 0..10_000 {
        let Some(head) = http::read_head(&mut reader)? else {
            return Ok(());
        };
        let body = http::read_body(&mut reader, head.framing()?, None)?;
        let (path, query) = match head.target.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (head.target.clone(), String::new()),
        };
        // A resource manager URL with a trailing slash makes az ask for
        // `//metadata/...`; ARM's front end takes it as one slash.
        let path = format!("/{}", path.trim_start_matches('/'));
        let req = ArmReq {
            method: head.method.clone(),
            path,
            query: crate::util::parse_query(&query),
            headers: head.headers.clone(),
            body,
        };
        let resp = match dispatch(app, arm, &req) {
            Ok(r) => r,
            Err(e) => arm_error(500, "InternalServerError", &format!("nexy-sandbox: {e:#}")),
        };
        log(app, arm, &req, &head.target, resp.status)?;
        let w = reader.get_mut();
        http::write_response(w, &resp, req.method == "HEAD")?;
        if !head.keep_alive() {
            w.conn.send_close_notify();
            // Best effort: the peer may already be gone.
            let _ = std::io::Write::flush(w);
            return Ok(());
        }
    }
    Ok(())
}

fn log(app: &App, arm: &Arm, req: &ArmReq, target: &str, status: u16) -> Result<()> {
    // The token request carries the client secret: log the form without it.
    let body = if req.path.ends_with("/oauth2/v2.0/token") {
        redact_form(&req.body)
    } else {
        req.body.clone()
    };
    let mut e = LoggedRequest::new(
        "arm",
        &req.method,
        &format!("{}{target}", arm.base()),
        status as i64,
        &body,
    );
    e.user_agent = req.header("user-agent").map(str::to_string);
    e.command = req.header("commandname").map(|c| {
        std::iter::once("az".to_string())
            .chain(c.split_whitespace().map(str::to_string))
            .collect()
    });
    e.append_to(&app.dir.join("requests.jsonl"))
}

/// A form body with `client_secret` (and any assertion) replaced.
pub fn redact_form(body: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(body)
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k == "client_secret" || k == "client_assertion" => {
                format!("{k}=<redacted>")
            }
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
        .into_bytes()
}

fn dispatch(app: &App, arm: &Arm, req: &ArmReq) -> Result<Response> {
    let p = req.path.as_str();
    if req.method == "GET" && p == "/metadata/endpoints" {
        return Ok(Response::json(200, &entra::metadata(&arm.base())));
    }
    if let Some(r) = entra::handle(arm, req)? {
        return Ok(r);
    }
    // Everything below is ARM and needs a bearer token.
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return Ok(arm_error(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    if !arm.token_known(token) {
        return Ok(arm_error(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        ));
    }
    let faults = app.faults_snapshot().azure;
    if let Some(t) = &faults.token_expired {
        let mut fs = lock(&app.faults);
        if t.applies(fs.azure.expired) {
            fs.azure.expired += 1;
            let now = crate::util::iso_utc(crate::util::now_ms());
            return Ok(arm_error(
                401,
                "ExpiredAuthenticationToken",
                &format!("The access token expiry UTC time '{now}' is earlier than current UTC time '{now}'."),
            ));
        }
    }
    let segs: Vec<&str> = p.trim_matches('/').split('/').collect();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["subscriptions"]) => Ok(Response::json(
            200,
            &json!({"value": [subscription()], "count": {"type": "Total", "value": 1}}),
        )),
        ("GET", ["subscriptions", s]) if s.eq_ignore_ascii_case(SUBSCRIPTION) => {
            Ok(Response::json(200, &subscription()))
        }
        _ => runcommand::handle(app, arm, req, &segs, &faults),
    }
}

fn subscription() -> Value {
    json!({
        "id": format!("/subscriptions/{SUBSCRIPTION}"),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": SUBSCRIPTION,
        "tenantId": TENANT,
        "displayName": SUBSCRIPTION_NAME,
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_never_reaches_the_log() {
        let b = redact_form(b"client_id=a&client_secret=s3cr3t&scope=x");
        assert_eq!(b, b"client_id=a&client_secret=<redacted>&scope=x");
    }
}
