//! HTTP checks of the update feed and the fixed download URLs, and the TLS
//! handshake with the gRPC endpoint. Blocking, with timeouts on every call.

use std::{
    net::{TcpStream, ToSocketAddrs},
    path::Path,
    sync::Arc,
    time::Duration,
};

use anyhow::{bail, Context, Result};

use crate::hash::FileDigest;

const TIMEOUT: Duration = Duration::from_secs(20);

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .redirects(5)
        .build()
}

/// GET `url` and parse its JSON body; the error says which URL failed.
pub fn get_json(agent: &ureq::Agent, url: &str) -> Result<serde_json::Value> {
    let resp = agent
        .get(url)
        .timeout(TIMEOUT)
        .call()
        .map_err(|e| anyhow::anyhow!("GET {url} failed: {}", short(&e)))?;
    let text = resp
        .into_string()
        .with_context(|| format!("GET {url}: cannot read the body"))?;
    serde_json::from_str(&text).with_context(|| format!("GET {url} did not answer JSON"))
}

/// GET `url` and return its body as text.
pub fn get_text(agent: &ureq::Agent, url: &str) -> Result<String> {
    agent
        .get(url)
        .timeout(TIMEOUT)
        .call()
        .map_err(|e| anyhow::anyhow!("GET {url} failed: {}", short(&e)))?
        .into_string()
        .with_context(|| format!("GET {url}: cannot read the body"))
}

/// The size a client would download from `url` (after redirects), read
/// from Content-Length without fetching the body.
pub fn content_length(agent: &ureq::Agent, url: &str) -> Result<u64> {
    let resp = agent
        .get(url)
        .timeout(TIMEOUT)
        .call()
        .map_err(|e| anyhow::anyhow!("GET {url} failed: {}", short(&e)))?;
    resp.header("Content-Length")
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("GET {url} answered without a Content-Length"))
}

/// Downloads `url` and hashes what a client would receive, streaming.
pub fn download_digest(agent: &ureq::Agent, url: &str) -> Result<FileDigest> {
    let resp = agent
        .get(url)
        .call()
        .map_err(|e| anyhow::anyhow!("GET {url} failed: {}", short(&e)))?;
    crate::hash::digest_reader(resp.into_reader())
        .with_context(|| format!("GET {url}: the download broke off"))
}

/// Downloads `url` into memory (for a signature check; at most 2 GiB).
pub fn download_bytes(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let resp = agent
        .get(url)
        .call()
        .map_err(|e| anyhow::anyhow!("GET {url} failed: {}", short(&e)))?;
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(2 << 30)
        .read_to_end(&mut bytes)
        .with_context(|| format!("GET {url}: the download broke off"))?;
    Ok(bytes)
}

/// ureq's errors carry the whole response; one line is enough here.
fn short(err: &ureq::Error) -> String {
    match err {
        ureq::Error::Status(code, _) => format!("HTTP {code}"),
        ureq::Error::Transport(t) => t.to_string(),
    }
}

/// Completes a TLS handshake with `endpoint` (`host:port`) offering ALPN
/// `h2`, as a gRPC client does, and returns the negotiated protocol.
pub fn tls_alpn(
    endpoint: &str,
    connect: Option<&str>,
    ca_file: Option<&Path>,
) -> Result<Option<String>> {
    let (host, _) = endpoint
        .rsplit_once(':')
        .with_context(|| format!("grpc.endpoint `{endpoint}` must be host:port"))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = ca_file {
        let pem = std::fs::read(ca)
            .with_context(|| format!("cannot read grpc.ca_file {}", ca.display()))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.with_context(|| format!("{} holds a broken certificate", ca.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("{} holds a certificate rustls refuses", ca.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("no TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .with_context(|| format!("`{host}` is not a valid TLS server name"))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)
        .context("cannot start a TLS client")?;
    let addr = connect
        .unwrap_or(endpoint)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {endpoint}"))?
        .next()
        .with_context(|| format!("{endpoint} resolves to no address"))?;
    let mut sock = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("cannot connect to {endpoint}"))?;
    sock.set_read_timeout(Some(TIMEOUT))?;
    sock.set_write_timeout(Some(TIMEOUT))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .with_context(|| format!("TLS handshake with {endpoint} failed"))?;
    }
    let alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    if alpn.is_none() {
        bail!("{endpoint} completed TLS but negotiated no ALPN protocol; gRPC clients need h2");
    }
    Ok(alpn)
}
