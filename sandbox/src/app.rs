//! The stand-in's shared state, apart from how it is served: the [`App`]
//! every handler reads (store, faults, ports), one parsed request [`Req`],
//! and the store edits the control endpoints and the in-process handle
//! share. GitHub, the feed and the server all depend on this module, and it
//! on none of them.

use crate::faults::Faults;
use crate::store::Store;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Mutex;

pub use crate::util::lock;

pub struct FaultState {
    pub faults: Faults,
    pub uploads: u32,
    pub drops: u32,
    /// How often each `fails` rule has answered so far.
    pub failed: Vec<u32>,
    /// How often each Azure fault has answered so far.
    pub azure: crate::azure_faults::Counters,
}

/// Shared server state.
pub struct App {
    pub dir: PathBuf,
    pub token: String,
    pub port: u16,
    pub tls_port: u16,
    pub store: Mutex<Store>,
    pub faults: Mutex<FaultState>,
    /// The latency profile (GitHub round trip, upload bandwidth; the Azure
    /// figures are the `Arm`'s).
    pub latency: crate::latency::Latency,
    /// The uplink the uploads share (the profile's bandwidth).
    pub uplink: crate::uplink::Uplink,
}

impl App {
    pub fn faults_snapshot(&self) -> Faults {
        lock(&self.faults).faults.clone()
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.join("requests.jsonl")
    }

    pub fn set_faults(&self, f: Faults) -> Result<()> {
        f.save(&self.dir.join("faults.json"))?;
        let mut st = lock(&self.faults);
        *st = FaultState {
            faults: f,
            uploads: 0,
            drops: 0,
            failed: Vec::new(),
            azure: Default::default(),
        };
        Ok(())
    }
}

/// One request after its body was read.
pub struct Req {
    pub method: String,
    /// Absolute URL as the log shows it.
    pub url: String,
    /// Lower-case host without port.
    pub host: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The upload-cut fault stopped reading the body.
    pub cut: bool,
    /// The upload-fail fault wants this status.
    pub fail_status: Option<u16>,
    /// Reached on 127.0.0.1/localhost without the proxy.
    pub direct: bool,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The release of `tag` in `repo`, for the control endpoints.
fn release_mut<'a>(
    st: &'a mut crate::store::Store,
    repo: &str,
    tag: &str,
) -> Result<&'a mut crate::store::Release> {
    st.repo_mut(repo)
        .with_context(|| format!("no repository {repo}"))?
        .releases
        .iter_mut()
        .find(|r| r.tag_name == tag)
        .with_context(|| format!("no release {tag}"))
}

pub(crate) fn set_immutable(app: &App, repo: &str, tag: &str, immutable: bool) -> Result<()> {
    let mut st = lock(&app.store);
    let rel = release_mut(&mut st, repo, tag)?;
    rel.immutable = immutable;
    st.save()
}

pub(crate) fn seed_asset(
    app: &App,
    repo: &str,
    tag: &str,
    name: &str,
    bytes: &[u8],
) -> Result<u64> {
    let mut st = lock(&app.store);
    let id = st.alloc_id();
    let blob = id.to_string();
    let path = st.blob_path(&blob);
    std::fs::write(&path, bytes).with_context(|| format!("write {}", path.display()))?;
    let now = crate::util::now_ms();
    let rel = release_mut(&mut st, repo, tag)?;
    rel.assets.retain(|a| a.name != name);
    rel.assets.push(crate::store::Asset {
        id,
        name: name.to_string(),
        label: String::new(),
        // As the old flow's `gh release upload` stored them.
        content_type: if name.ends_with(".dmg") {
            "application/x-apple-diskimage"
        } else {
            "application/octet-stream"
        }
        .into(),
        size: bytes.len() as u64,
        state: "uploaded".into(),
        sha256: crate::util::sha256_hex(bytes),
        created_ms: now,
        updated_ms: now,
        download_count: 0,
        blob,
    });
    st.save()?;
    st.gc_blobs()?;
    Ok(id)
}
