//! HTTP checks of the update feed and the fixed download URLs, and the TLS
//! handshake with the gRPC endpoint. Blocking, with timeouts on every call.
//! Every request and connection passes the effect seam (`effect::get`,
//! `effect::connect`); this module reads what they answer.

use std::{net::ToSocketAddrs, path::Path, sync::Arc, time::Duration};

use anyhow::{bail, Context, Result};

use crate::{effect, hash::FileDigest};

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
    let resp = effect::get(agent, url, Some(TIMEOUT))?;
    let text = resp
        .into_string()
        .with_context(|| format!("GET {url}: cannot read the body"))?;
    serde_json::from_str(&text).with_context(|| format!("GET {url} did not answer JSON"))
}

/// GET `url` and return its body as text.
pub fn get_text(agent: &ureq::Agent, url: &str) -> Result<String> {
    effect::get(agent, url, Some(TIMEOUT))?
        .into_string()
        .with_context(|| format!("GET {url}: cannot read the body"))
}

/// The size a client would download from `url` (after redirects), read
/// from Content-Length without fetching the body.
pub fn content_length(agent: &ureq::Agent, url: &str) -> Result<u64> {
    let resp = effect::get(agent, url, Some(TIMEOUT))?;
    resp.header("Content-Length")
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("GET {url} answered without a Content-Length"))
}

/// Downloads `url` and hashes what a client would receive, streaming.
pub fn download_digest(agent: &ureq::Agent, url: &str) -> Result<FileDigest> {
    let resp = effect::get(agent, url, None)?;
    crate::hash::digest_reader(resp.into_reader())
        .with_context(|| format!("GET {url}: the download broke off"))
}

/// Downloads `url` into memory (for a signature check; at most 2 GiB).
pub fn download_bytes(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let resp = effect::get(agent, url, None)?;
    let mut bytes = Vec::new();
    resp.into_reader()
        .take(2 << 30)
        .read_to_end(&mut bytes)
        .with_context(|| format!("GET {url}: the download broke off"))?;
    Ok(bytes)
}

/// Downloads `url` into the file `spool` (a scratch file of the caller's,
/// which removes it after use).
pub fn download_to(agent: &ureq::Agent, url: &str, spool: &Path) -> Result<()> {
    let resp = effect::get(agent, url, None)?;
    let mut file = std::fs::File::create(spool)
        .with_context(|| format!("cannot create {}", spool.display()))?;
    std::io::copy(&mut resp.into_reader(), &mut file)
        .with_context(|| format!("GET {url}: the download broke off"))?;
    Ok(())
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
    let mut sock = effect::connect(&addr, endpoint, TIMEOUT)?;
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
