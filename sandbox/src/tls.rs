//! A TLS listener standing in for the production gRPC endpoint on 443: it
//! completes a handshake with ALPN `h2` on a certificate made at start and
//! serves the gRPC service over HTTP/2 (`grpc.rs`). The issuing CA is
//! written to `DIR/ca.pem` so clients can trust it the way they would trust
//! a real certificate.

use anyhow::{Context, Result};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct TlsMaterial {
    pub ca_pem: String,
    /// The gRPC stand-in's (ALPN h2).
    pub config: Arc<rustls::ServerConfig>,
    /// The same certificate for HTTP/1.1 (the Azure stand-in).
    pub https_config: Arc<rustls::ServerConfig>,
}

/// Make a CA and a leaf for `localhost`/`127.0.0.1` signed by it.
pub fn make_material() -> Result<TlsMaterial> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("ca params")?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "nexy-sandbox test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().context("ca key")?;
    let ca_cert = ca_params.self_signed(&ca_key).context("self-sign ca")?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut leaf_params =
        // The production host too, so that a client can keep the real TLS
        // name and only connect here (curl's --connect-to).
        CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "nexy-prod-sergiy.canadacentral.cloudapp.azure.com".to_string(),
        ])
            .context("leaf params")?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf_key = KeyPair::generate().context("leaf key")?;
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .context("sign leaf")?;

    let server_config = || -> Result<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("tls versions")?
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), ca_cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .context("tls server config")
    };
    let mut config = server_config()?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let mut https = server_config()?;
    https.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem: ca_cert.pem(),
        config: Arc::new(config),
        https_config: Arc::new(https),
    })
}

/// DER of the first certificate in a PEM text (for test clients).
pub fn pem_to_der(pem: &str) -> Result<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes()).context("parse PEM certificate")
}

fn serve_one(config: Arc<rustls::ServerConfig>, mut tcp: TcpStream, dir: &Path) -> Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .context("timeout")?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .context("timeout")?;
    // Small frames answer small requests: do not let Nagle hold them.
    let _ = tcp.set_nodelay(true);
    let mut conn = rustls::ServerConnection::new(config).context("tls conn")?;
    // Bounded: each complete_io blocks at most the read timeout, and the
    // handshake needs only a few round trips.
    let mut rounds = 0;
    while conn.is_handshaking() && rounds < 16 {
        rounds += 1;
        conn.complete_io(&mut tcp).context("tls handshake")?;
    }
    if conn.alpn_protocol() == Some(b"h2") {
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        let served = crate::grpc::serve(&mut stream, dir);
        stream.conn.send_close_notify();
        let _ = stream.flush();
        return served;
    }
    conn.send_close_notify();
    // Best effort: the peer may already be gone.
    let _ = conn.complete_io(&mut tcp);
    Ok(())
}

/// Accept until `stop`; each connection on its own short-lived thread.
pub fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    stop: Arc<AtomicBool>,
    dir: PathBuf,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((s, _)) => {
                let cfg = config.clone();
                let dir = dir.clone();
                let _ = s.set_nonblocking(false);
                std::thread::spawn(move || {
                    // A failed handshake is the client's business.
                    let _ = serve_one(cfg, s, &dir);
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}
