//! The one process that serves everything: an HTTP/1.1 listener (GitHub
//! through the proxy, the update feed, storage, and the `/_sandbox/` control
//! endpoints) and a TLS listener (gRPC stand-in), plus the public `Sandbox`
//! handle tests use in-process.

use crate::faults::{Faults, MAX_SLEEP_MS};
use crate::http::{self, Response};
use crate::reqlog::{self, LoggedRequest};
use crate::store::Store;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::io::BufReader;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// The token the stand-in accepts unless told otherwise.
pub const DEFAULT_TOKEN: &str = "nexy-sandbox-token";
/// Idle keep-alive connections are closed after this long, which also bounds
/// how long connection threads outlive a stopped sandbox.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Lock, recovering from poisoning: a panicked handler thread must not take
/// the whole stand-in down with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct FaultState {
    pub faults: Faults,
    pub uploads: u32,
    pub drops: u32,
    /// How often each `fails` rule has answered so far.
    pub failed: Vec<u32>,
    /// How often each Azure fault has answered so far.
    pub azure: crate::arm::Counters,
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
    pub latency: crate::arm::Latency,
}

impl App {
    pub fn faults_snapshot(&self) -> Faults {
        lock(&self.faults).faults.clone()
    }

    fn log_path(&self) -> PathBuf {
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

/// Options for `Sandbox::start`.
#[derive(Clone, Debug)]
pub struct Options {
    /// State directory; `None` makes a fresh one under the temp dir that is
    /// removed on drop.
    pub state_dir: Option<PathBuf>,
    /// HTTP port on 127.0.0.1 (0 = any free port).
    pub port: u16,
    /// TLS port on 127.0.0.1 (0 = any free port).
    pub tls_port: u16,
    /// The token gh must present.
    pub token: String,
    /// Faults active from the start (replaces `DIR/faults.json`).
    pub faults: Option<Faults>,
    /// The VM's `systemctl` shim (`nexy-vm-systemctl`), linked as
    /// `DIR/vm-bin/systemctl`. `None`: look next to the running executable.
    pub systemctl_binary: Option<PathBuf>,
    /// The real az (`crate::azcli::find()`): linked as `DIR/bin/az`, its
    /// config dir made and the service principal logged in at start.
    /// `None`: Azure is served but az is not set up.
    pub az: Option<PathBuf>,
    /// HTTPS port of the Azure stand-in on 127.0.0.1 (0 = any free port).
    pub azure_port: u16,
    /// The latency profile (`fast` unless told).
    pub latency: crate::arm::Latency,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            state_dir: None,
            port: 0,
            tls_port: 0,
            token: DEFAULT_TOKEN.to_string(),
            faults: None,
            systemctl_binary: None,
            az: None,
            azure_port: 0,
            latency: crate::arm::Latency::fast(),
        }
    }
}

/// A running stand-in. Stops (bounded) on drop.
pub struct Sandbox {
    app: Arc<App>,
    arm: Arc<crate::arm::Arm>,
    az: Option<PathBuf>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    remove_dir_on_drop: bool,
}

static DIR_SEQ: AtomicU64 = AtomicU64::new(0);

/// Find the systemctl shim: `$NEXY_SANDBOX_SYSTEMCTL_BIN`, else beside
/// this executable, or one level up (test executables live in
/// `target/<profile>/deps/`).
pub fn find_systemctl_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NEXY_SANDBOX_SYSTEMCTL_BIN") {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    let name = "nexy-vm-systemctl";
    [dir.join(name), dir.parent()?.join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

fn relink(target: &Path, link: &Path) -> Result<()> {
    if let Some(p) = link.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("mkdir {}", p.display()))?;
    }
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(link).with_context(|| format!("remove {}", link.display()))?;
    }
    std::os::unix::fs::symlink(target, link)
        .with_context(|| format!("symlink {} -> {}", link.display(), target.display()))
}

impl Sandbox {
    pub fn start(opts: Options) -> Result<Sandbox> {
        let (dir, remove_dir_on_drop) = match &opts.state_dir {
            Some(d) => (d.clone(), false),
            None => {
                let d = std::env::temp_dir().join(format!(
                    "nexy-sandbox-{}-{}-{}",
                    std::process::id(),
                    DIR_SEQ.fetch_add(1, Ordering::SeqCst),
                    crate::util::now_ms()
                ));
                (d, true)
            }
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let dir = dir
            .canonicalize()
            .with_context(|| format!("canonicalize {}", dir.display()))?;
        for sub in ["gh-config", "feed", "bin", "vm-bin"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("mkdir {}/{sub}", dir.display()))?;
        }
        crate::vm::init_vm(&dir)?;
        let store = Store::open(&dir)?;

        let shim = opts.systemctl_binary.clone().or_else(find_systemctl_binary);
        match &shim {
            Some(shim) => {
                let shim = shim
                    .canonicalize()
                    .with_context(|| format!("canonicalize {}", shim.display()))?;
                relink(&shim, &dir.join("vm-bin").join("systemctl"))?;
            }
            None => eprintln!("nexy-sandbox: nexy-vm-systemctl not found; the VM has no systemctl"),
        }
        if let Some(az) = &opts.az {
            relink(az, &dir.join("bin").join("az"))?;
        }

        let listener = TcpListener::bind(("127.0.0.1", opts.port))
            .with_context(|| format!("bind 127.0.0.1:{}", opts.port))?;
        let tls_listener = TcpListener::bind(("127.0.0.1", opts.tls_port))
            .with_context(|| format!("bind 127.0.0.1:{}", opts.tls_port))?;
        listener.set_nonblocking(true).context("nonblocking")?;
        tls_listener.set_nonblocking(true).context("nonblocking")?;
        let port = listener.local_addr().context("local addr")?.port();
        let tls_port = tls_listener.local_addr().context("local addr")?.port();

        let tls = crate::tls::make_material()?;
        std::fs::write(dir.join("ca.pem"), &tls.ca_pem).context("write ca.pem")?;
        let (arm, arm_listener) = crate::arm::Arm::bind(
            &dir,
            opts.azure_port,
            tls.https_config.clone(),
            opts.latency.clone(),
        )?;

        let faults = match &opts.faults {
            Some(f) => f.clone(),
            None => Faults::load(&dir.join("faults.json"))?,
        };
        let app = Arc::new(App {
            dir: dir.clone(),
            token: opts.token.clone(),
            port,
            tls_port,
            store: Mutex::new(store),
            faults: Mutex::new(FaultState {
                faults: Faults::default(),
                uploads: 0,
                drops: 0,
                failed: Vec::new(),
                azure: Default::default(),
            }),
            latency: opts.latency.clone(),
        });
        app.set_faults(faults)?;

        let sb = Sandbox {
            app: app.clone(),
            arm: arm.clone(),
            az: opts.az.clone(),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
            remove_dir_on_drop,
        };
        std::fs::write(dir.join("env"), sb.env_file_text()).context("write env")?;
        let mut sb = sb;
        let stop = sb.stop.clone();
        let a = app.clone();
        sb.threads.push(
            std::thread::Builder::new()
                .name("nexy-http-accept".into())
                .spawn(move || http_accept_loop(listener, a, stop))
                .context("spawn accept thread")?,
        );
        let stop = sb.stop.clone();
        let state = dir.clone();
        sb.threads.push(
            std::thread::Builder::new()
                .name("nexy-tls-accept".into())
                .spawn(move || crate::tls::accept_loop(tls_listener, tls.config, stop, state))
                .context("spawn tls thread")?,
        );
        let (stop, a, r) = (sb.stop.clone(), app.clone(), arm.clone());
        sb.threads.push(
            std::thread::Builder::new()
                .name("nexy-arm-accept".into())
                .spawn(move || crate::arm::accept_loop(arm_listener, a, r, stop))
                .context("spawn azure thread")?,
        );
        if let Some(az) = &opts.az {
            crate::azcli::configure(&dir, az, &arm.base(), arm.secret(), &sb.env())?;
        }
        // Last: a reader of sandbox.json may use everything at once.
        crate::util::write_atomic(
            &dir.join("sandbox.json"),
            serde_json::to_string_pretty(&json!({
                "port": port, "tls_port": tls_port, "base_url": sb.base_url(),
                "azure_port": arm.port, "latency": &opts.latency,
                "state_dir": dir, "pid": std::process::id(),
            }))
            .context("serialise sandbox.json")?
            .as_bytes(),
        )?;

        Ok(sb)
    }

    pub fn state_dir(&self) -> &Path {
        &self.app.dir
    }
    pub fn port(&self) -> u16 {
        self.app.port
    }
    pub fn tls_port(&self) -> u16 {
        self.app.tls_port
    }
    /// `http://127.0.0.1:PORT`: control, feed and direct download URLs.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.app.port)
    }
    /// The GitHub API base gh is pointed at (through the proxy).
    pub fn api_url(&self) -> &'static str {
        crate::github::API
    }
    /// Public download URL of a production asset as the proxy sees it.
    pub fn public_download_url(&self, tag: &str, name: &str) -> String {
        format!(
            "{}/{}/releases/download/{}/{}",
            crate::github::WEB,
            crate::store::PROD,
            crate::util::percent_encode(tag),
            crate::util::percent_encode(name)
        )
    }
    /// The same download reached directly on 127.0.0.1 (no proxy needed).
    pub fn direct_download_url(&self, tag: &str, name: &str) -> String {
        format!(
            "{}/{}/releases/download/{}/{}",
            self.base_url(),
            crate::store::PROD,
            crate::util::percent_encode(tag),
            crate::util::percent_encode(name)
        )
    }
    /// The update feed (`/health`, `/status`, `/updates/...`) on 127.0.0.1.
    pub fn feed_url(&self) -> String {
        self.base_url()
    }
    pub fn token(&self) -> &str {
        &self.app.token
    }
    pub fn ca_pem_path(&self) -> PathBuf {
        self.app.dir.join("ca.pem")
    }

    /// The environment a tool (or gh/az) needs to talk to the stand-in.
    /// `PATH` is the state's `bin` (holding `az`) before the current PATH.
    pub fn env(&self) -> Vec<(String, String)> {
        let proxy = self.base_url();
        let dir = self.app.dir.display().to_string();
        let path = format!(
            "{dir}/bin:{}",
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
        );
        vec![
            ("GH_HOST".into(), "github.localhost".into()),
            ("GH_TOKEN".into(), self.app.token.clone()),
            ("GH_CONFIG_DIR".into(), format!("{dir}/gh-config")),
            ("GH_NO_UPDATE_NOTIFIER".into(), "1".into()),
            ("GH_PROMPT_DISABLED".into(), "1".into()),
            ("NO_COLOR".into(), "1".into()),
            ("http_proxy".into(), proxy.clone()),
            ("https_proxy".into(), proxy.clone()),
            ("HTTP_PROXY".into(), proxy.clone()),
            ("HTTPS_PROXY".into(), proxy.clone()),
            // az reaches the Azure stand-in on 127.0.0.1 directly.
            ("NO_PROXY".into(), "127.0.0.1".into()),
            ("no_proxy".into(), "127.0.0.1".into()),
            ("NEXY_SANDBOX_STATE".into(), dir.clone()),
            ("NEXY_SANDBOX_URL".into(), proxy),
            (
                "NEXY_SANDBOX_TLS_PORT".into(),
                self.app.tls_port.to_string(),
            ),
            ("NEXY_SANDBOX_CA".into(), format!("{dir}/ca.pem")),
            ("NEXY_SANDBOX_AZURE_URL".into(), self.arm.base()),
        ]
        .into_iter()
        .chain(crate::azcli::env(&self.app.dir))
        .chain([("PATH".to_string(), path)])
        .collect()
    }

    /// `https://127.0.0.1:PORT`: the Azure stand-in (ARM and Entra ID).
    pub fn azure_url(&self) -> String {
        self.arm.base()
    }

    /// The real az this stand-in set up, if any.
    pub fn az_path(&self) -> Option<&Path> {
        self.az.as_deref()
    }

    /// The service principal's secret (what `az login` was given).
    pub fn sp_secret(&self) -> &str {
        self.arm.secret()
    }

    /// `DIR/env`: the same as `env()` as shell exports (PATH kept relative
    /// to the caller's PATH).
    pub fn env_file_text(&self) -> String {
        let mut out = String::from("# nexy-sandbox environment: source this file\n");
        for (k, v) in self.env() {
            if k == "PATH" {
                out.push_str(&format!(
                    "export PATH={}:\"$PATH\"\n",
                    shell_quote(&format!("{}/bin", self.app.dir.display()))
                ));
            } else {
                out.push_str(&format!("export {k}={}\n", shell_quote(&v)));
            }
        }
        out
    }

    /// Write an extra file into the state dir (e.g. `release.toml` that an
    /// integrator renders from `state_dir()`/`port()`/`base_url()`).
    pub fn write_state_file(&self, rel: &str, content: &str) -> Result<PathBuf> {
        write_state_file(&self.app.dir, rel, content)
    }

    pub fn requests(&self) -> Vec<LoggedRequest> {
        // An unreadable log reads as empty; the error is reported on stderr
        // because a test asserting on it will then fail visibly anyway.
        reqlog::read_log(&self.app.log_path()).unwrap_or_else(|e| {
            eprintln!("nexy-sandbox: reading log: {e:#}");
            Vec::new()
        })
    }

    pub fn set_faults(&self, f: Faults) -> Result<()> {
        self.app.set_faults(f)
    }

    pub fn faults(&self) -> Faults {
        self.app.faults_snapshot()
    }

    pub fn set_immutable(&self, tag: &str, immutable: bool) -> Result<()> {
        set_immutable(&self.app, crate::store::PROD, tag, immutable)
    }

    /// Bytes of an uploaded asset of the production repository.
    pub fn asset_bytes(&self, tag: &str, name: &str) -> Option<Vec<u8>> {
        let st = lock(&self.app.store);
        let repo = st.repo(crate::store::PROD)?;
        let rel = repo.releases.iter().find(|r| r.tag_name == tag)?;
        let a = rel.assets.iter().find(|a| a.name == name)?;
        std::fs::read(st.blob_path(&a.blob)).ok()
    }

    /// Put an asset in place directly (not logged as a request): the state
    /// a test starts from.
    pub fn seed_asset(&self, tag: &str, name: &str, bytes: &[u8]) -> Result<u64> {
        seed_asset(&self.app, crate::store::PROD, tag, name, bytes)
    }

    /// Log the real az out (`az logout`) or in again (a fresh config dir).
    pub fn set_az_logged_in(&self, logged_in: bool) -> Result<()> {
        let az = self
            .az
            .as_deref()
            .context("this stand-in was started without az (Options::az)")?;
        set_az_logged_in(&self.app.dir, az, &self.arm, &self.env(), logged_in)
    }

    /// The VM's `/home/azureuser/voice-assistant` on the host.
    pub fn vm_app_dir(&self) -> PathBuf {
        crate::vm::app_dir(&self.app.dir)
    }

    /// Stop serving; bounded by the accept loops' 20 ms poll.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
        if self.remove_dir_on_drop {
            let _ = std::fs::remove_dir_all(&self.app.dir);
        }
    }
}

pub fn write_state_file(dir: &Path, rel: &str, content: &str) -> Result<PathBuf> {
    if rel.starts_with('/') || rel.split('/').any(|s| s == "..") {
        bail!("state file path must be relative and stay inside the state dir: {rel}");
    }
    let p = dir.join(rel);
    crate::util::write_atomic(&p, content.as_bytes())?;
    Ok(p)
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
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

fn set_immutable(app: &App, repo: &str, tag: &str, immutable: bool) -> Result<()> {
    let mut st = lock(&app.store);
    let rel = release_mut(&mut st, repo, tag)?;
    rel.immutable = immutable;
    st.save()
}

fn seed_asset(app: &App, repo: &str, tag: &str, name: &str, bytes: &[u8]) -> Result<u64> {
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

fn set_az_logged_in(
    dir: &Path,
    az: &Path,
    arm: &crate::arm::Arm,
    env: &[(String, String)],
    logged_in: bool,
) -> Result<()> {
    if logged_in {
        return crate::azcli::configure(dir, az, &arm.base(), arm.secret(), env);
    }
    let (code, _, err) = crate::azcli::run(az, &["logout"], dir, env, None)?;
    if code != 0 {
        bail!("az logout failed: {}", err.trim());
    }
    Ok(())
}

fn http_accept_loop(listener: TcpListener, app: Arc<App>, stop: Arc<AtomicBool>) {
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
        let delay = app.faults_snapshot().delay_for(&req.method, &req.url)
            + if req.host.ends_with("github.localhost") {
                app.latency
                    .github_delay_ms(is_upload, req.body.len() as u64)
            } else {
                0
            };
        if delay > 0 {
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
        "api.github.localhost" => return crate::github::handle_api(app, req, false),
        "uploads.github.localhost" => return crate::github::handle_api(app, req, true),
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
