//! `cargo xtask sandbox up|config`: the local stand-in of production.
//!
//! The stand-in itself (GitHub for the real gh, Azure for the real az, the
//! update feed) is the separate `nexy-sandbox` crate, so that its TLS and
//! server code never weighs on the everyday `cargo xtask` build; this
//! module only starts it and writes the release target that points at it.
//! That target differs from production only in how each service is
//! reached (`server.base_url`, `grpc.connect`, `github.host`,
//! `github.download_base`, and the service's ports on the VM,
//! `vm.health_url` and `vm.feed_health_url`): tags, URLs and the VM are the production ones,
//! so a rehearsal writes the very manifest production would get.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::cli::{SandboxCmd, SandboxSub};

impl SandboxCmd {
    pub fn run(self, sh: &Shell, config: &Path) -> Result<()> {
        match self.sub {
            SandboxSub::Up { state, port } => up(sh, config, &state, port),
            SandboxSub::Config { state } => {
                let out = write_config(config, &state)?;
                crate::say!("wrote {}", out.display());
                Ok(())
            }
        }
    }
}

fn up(sh: &Shell, config: &Path, state: &Path, port: u16) -> Result<()> {
    // Armed before the stand-in starts, so that a signal at any moment
    // from here on ends it: without handlers a SIGTERM would kill this
    // process and leave the stand-in serving (drop never runs).
    let stop = stop_on_signals()?;
    let mut stand_in = StandIn::start(sh, state, port)?;
    let out = write_config(config, &stand_in.state)?;
    crate::say!("release target for the stand-in: {}", out.display());
    crate::say!(
        "use it with: . {}/env && cargo xtask release --config {}",
        stand_in.state.display(),
        out.display()
    );
    crate::say!("serving until interrupted (Ctrl-C)");
    loop {
        if let Some(status) = stand_in
            .child
            .try_wait()
            .context("waiting for nexy-sandbox")?
        {
            if !status.success() {
                bail!("nexy-sandbox exited with {status}");
            }
            return Ok(());
        }
        if stop.load(Ordering::SeqCst) {
            crate::say!("stopping the stand-in");
            // Dropping it sends SIGTERM and waits (bounded).
            drop(stand_in);
            return Ok(());
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A flag raised by SIGTERM, SIGINT or SIGHUP (a `kill`, Ctrl-C, a closed
/// terminal), for `up` to end its stand-in before it exits.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, stop.clone())
            .with_context(|| format!("cannot handle signal {signal}"))?;
    }
    Ok(stop)
}

/// The repository the xtask was built from (it holds `sandbox/`).
fn project_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// What the stand-in needs from the network: the real az installed and
/// the stand-in built (so that a rehearsal can then run where only
/// loopback exists).
pub fn prepare(sh: &Shell) -> Result<()> {
    crate::azure_cli::ensure(sh, project_root())?;
    let _dir = sh.push_dir(project_root());
    cmd!(sh, "cargo build -q -p nexy-sandbox --bins")
        .run()
        .context("building nexy-sandbox failed; run `cargo build -p nexy-sandbox` to see why")
}

/// A running `nexy-sandbox` process; stopped when dropped.
pub struct StandIn {
    pub child: Child,
    pub state: PathBuf,
}

impl StandIn {
    /// Builds and starts the stand-in on `port` (0: any), keeping its
    /// state in `state`, and waits (bounded) until it is serving. The
    /// stand-in ends itself when this process dies, however it dies (see
    /// `nexy-sandbox`'s parent watch); on Linux that watch follows the
    /// thread that started it, so call this from the main thread.
    pub fn start(sh: &Shell, state: &Path, port: u16) -> Result<StandIn> {
        StandIn::start_with(sh, state, port, &[])
    }

    /// [`StandIn::start`] with more arguments for `nexy-sandbox up` (the
    /// benchmark's `--profile production-like --latency K=V`).
    pub fn start_with(sh: &Shell, state: &Path, port: u16, extra: &[String]) -> Result<StandIn> {
        // The stand-in's source sits beside the xtask's own, whatever
        // workspace root the command works on.
        let _dir = sh.push_dir(project_root());
        // Built here, not as a dependency, so that its TLS and server code
        // never weigh on the xtask's own build.
        let messages = cmd!(
            sh,
            "cargo build -q -p nexy-sandbox --bins --message-format=json"
        )
        .read()
        .context("building nexy-sandbox failed; run `cargo build -p nexy-sandbox` to see why")?;
        let binary = messages
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|m| m.pointer("/target/name").and_then(Value::as_str) == Some("nexy-sandbox"))
            .find_map(|m| {
                m.get("executable")
                    .and_then(Value::as_str)
                    .map(PathBuf::from)
            })
            .context("cargo did not report the nexy-sandbox executable")?;
        let az = crate::azure_cli::ensure(sh, project_root())?;
        fs::create_dir_all(state).with_context(|| format!("cannot create {}", state.display()))?;
        let state = fs::canonicalize(state)?;
        let started = SystemTime::now();
        let port = port.to_string();
        let parent = std::process::id().to_string();
        let mut command: Command = cmd!(
            sh,
            "{binary} up --state {state} --port {port} --parent-pid {parent} --az {az} {extra...}"
        )
        .into();
        let mut child = command
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start nexy-sandbox")?;
        let info = state.join("sandbox.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let fresh = fs::metadata(&info)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t >= started);
            if fresh {
                return Ok(StandIn { child, state });
            }
            if let Some(status) = child.try_wait()? {
                bail!("nexy-sandbox exited ({status}) before it was ready");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("nexy-sandbox did not start within 30s");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The environment gh and az need to reach the stand-in, from its
    /// `STATE/env` file (`export K='V'` lines).
    pub fn env(&self) -> Result<Vec<(String, String)>> {
        let path = self.state.join("env");
        let text =
            fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mut out = Vec::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("export ") else {
                continue;
            };
            let Some((k, v)) = rest.split_once('=') else {
                continue;
            };
            if k == "PATH" {
                // The file prepends the stand-in's bin to the caller's PATH.
                let path = std::env::var("PATH").unwrap_or_default();
                out.push((
                    k.to_string(),
                    format!("{}/bin:{path}", self.state.display()),
                ));
                continue;
            }
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            let v = v.replace("'\\''", "'");
            out.push((k.to_string(), v));
        }
        Ok(out)
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        // SIGTERM first so it stops cleanly; kill if it lingers.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `STATE/release.toml`: the workspace's target, reached through
/// the stand-in described by `STATE/sandbox.json`.
pub fn write_config(config: &Path, state: &Path) -> Result<PathBuf> {
    let info_path = state.join("sandbox.json");
    let info: Value = serde_json::from_str(&fs::read_to_string(&info_path).with_context(|| {
        format!(
            "cannot read {}; start the stand-in first",
            info_path.display()
        )
    })?)
    .with_context(|| format!("{} is not JSON", info_path.display()))?;
    let port = info
        .get("port")
        .and_then(Value::as_u64)
        .context("sandbox.json has no port")?;
    let tls_port = info
        .get("tls_port")
        .and_then(Value::as_u64)
        .context("sandbox.json has no tls_port")?;
    let text =
        fs::read_to_string(config).with_context(|| format!("cannot read {}", config.display()))?;
    let rendered = render_config(&text, port, tls_port, &state.join("ca.pem"))?;
    let out = state.join("release.toml");
    // Written aside and renamed into place: a reader that waits for the
    // file (a test, a second terminal) never sees it half-written.
    let part = state.join("release.toml.part");
    fs::write(&part, rendered).with_context(|| format!("cannot write {}", part.display()))?;
    fs::rename(&part, &out)
        .with_context(|| format!("cannot rename {} to {}", part.display(), out.display()))?;
    Ok(out)
}

/// The production config text with the stand-in's access points.
pub fn render_config(text: &str, port: u64, tls_port: u64, ca: &Path) -> Result<String> {
    let mut table: toml::Table = text.parse().context("the release config is not TOML")?;
    let base = format!("http://127.0.0.1:{port}");
    let set =
        |table: &mut toml::Table, section: &str, key: &str, value: toml::Value| -> Result<()> {
            table
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("[{section}] is not a table"))?
                .insert(key.to_string(), value);
            Ok(())
        };
    set(&mut table, "server", "base_url", base.clone().into())?;
    set(
        &mut table,
        "grpc",
        "connect",
        format!("127.0.0.1:{tls_port}").into(),
    )?;
    set(
        &mut table,
        "grpc",
        "ca_file",
        ca.display().to_string().into(),
    )?;
    // The stand-in's view of the service's own ports on the VM (see its
    // feed module): the same answers as the public paths, without a cache.
    set(
        &mut table,
        "vm",
        "health_url",
        format!("{base}/_vm/8080/health").into(),
    )?;
    set(
        &mut table,
        "vm",
        "feed_health_url",
        format!("{base}/_vm/8081/updates/health").into(),
    )?;
    set(&mut table, "github", "host", "github.localhost".into())?;
    set(&mut table, "github", "download_base", base.into())?;
    set(
        &mut table,
        "verify",
        "timeout_secs",
        toml::Value::Integer(30),
    )?;
    set(
        &mut table,
        "verify",
        "interval_ms",
        toml::Value::Integer(250),
    )?;
    let header = "# Generated by `cargo xtask sandbox`: the release target reached through the\n\
                  # local stand-in. Only how services are reached differs from production.\n";
    Ok(format!(
        "{header}{}",
        toml::to_string(&table).context("cannot write the stand-in config")?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_in_config_keeps_the_target_and_changes_only_access() {
        let text =
            fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../release.toml"))
                .unwrap();
        let out = render_config(&text, 4000, 4001, Path::new("/s/ca.pem")).unwrap();
        let a: toml::Table = text.parse().unwrap();
        let b: toml::Table = out.parse().unwrap();
        assert_eq!(a["channels"], b["channels"]);
        assert_eq!(a["azure"], b["azure"]);
        assert_eq!(a["version_files"], b["version_files"]);
        assert_eq!(
            b["server"]["base_url"].as_str(),
            Some("http://127.0.0.1:4000")
        );
        assert_eq!(b["grpc"]["connect"].as_str(), Some("127.0.0.1:4001"));
        assert_eq!(
            b["vm"]["health_url"].as_str(),
            Some("http://127.0.0.1:4000/_vm/8080/health")
        );
        assert_eq!(a["vm"]["restart_wait_secs"], b["vm"]["restart_wait_secs"]);
        assert_eq!(b["github"]["host"].as_str(), Some("github.localhost"));
    }
}
