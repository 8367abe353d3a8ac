//! The public handle tests and `nexy-sandbox up` use: [`Sandbox::start`]
//! makes the state directory, binds both listeners and starts the accept
//! threads; the methods read and seed state in-process; drop stops it.

use crate::app::{lock, seed_asset, set_immutable, App, FaultState};
use crate::faults::Faults;
use crate::reqlog::{self, LoggedRequest};
use crate::store::Store;
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The token the stand-in accepts unless told otherwise.
pub const DEFAULT_TOKEN: &str = "nexy-sandbox-token";

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
            uplink: crate::uplink::Uplink::new(opts.latency.upload_bytes_per_sec),
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
                .spawn(move || crate::server::http_accept_loop(listener, a, stop))
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
