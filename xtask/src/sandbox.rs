//! `cargo xtask sandbox up|config`: the local stand-in of production.
//!
//! The stand-in itself (GitHub for the real gh, the az executable, the
//! update feed) is the separate `nexy-sandbox` crate, so that its TLS and
//! server code never weighs on the everyday `cargo xtask` build; this
//! module only starts it and writes the release target that points at it.
//! That target differs from production only in how each service is
//! reached (`server.base_url`, `grpc.connect`, `github.host`,
//! `github.download_base`): tags, URLs and the VM are the production ones,
//! so a rehearsal writes the very manifest production would get.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    thread,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{bail, Context, Result};
use serde_json::Value;
use xshell::{cmd, Shell};

use crate::cli::{SandboxCmd, SandboxSub};

impl SandboxCmd {
    pub fn run(self, sh: &Shell, root: &Path, config: &Path) -> Result<()> {
        match self.sub {
            SandboxSub::Up { state, port } => up(sh, root, config, &state, port),
            SandboxSub::Config { state } => {
                let out = write_config(config, &state)?;
                println!("wrote {}", out.display());
                Ok(())
            }
        }
    }
}

fn up(sh: &Shell, root: &Path, config: &Path, state: &Path, port: u16) -> Result<()> {
    let _dir = sh.push_dir(root);
    println!("building the stand-in (nexy-sandbox)...");
    cmd!(sh, "cargo build -q -p nexy-sandbox --bins")
        .run()
        .context("building nexy-sandbox failed")?;
    fs::create_dir_all(state).with_context(|| format!("cannot create {}", state.display()))?;
    let state = fs::canonicalize(state)?;
    let started = SystemTime::now();
    let port = port.to_string();
    let mut child: Command = cmd!(
        sh,
        "cargo run -q -p nexy-sandbox --bin nexy-sandbox -- up --state {state} --port {port}"
    )
    .into();
    let mut child = child.spawn().context("cannot start nexy-sandbox")?;
    // Wait (bounded) for the stand-in to announce its ports.
    let info = state.join("sandbox.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let fresh = fs::metadata(&info)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t >= started);
        if fresh {
            break;
        }
        if let Some(status) = child.try_wait()? {
            bail!("nexy-sandbox exited ({status}) before it was ready");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("nexy-sandbox did not start within 60s");
        }
        thread::sleep(Duration::from_millis(50));
    }
    let out = write_config(config, &state)?;
    println!("release target for the stand-in: {}", out.display());
    println!(
        "use it with: . {}/env && cargo xtask release --config {}",
        state.display(),
        out.display()
    );
    let status = child.wait().context("waiting for nexy-sandbox")?;
    if !status.success() {
        bail!("nexy-sandbox exited with {status}");
    }
    Ok(())
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
    fs::write(&out, rendered).with_context(|| format!("cannot write {}", out.display()))?;
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
        assert_eq!(b["github"]["host"].as_str(), Some("github.localhost"));
    }
}
