//! The VM side of a release: the scripts run through `az vm run-command`,
//! their markers, and the one manifest sync used by publish, rollback,
//! promote, rehearse and the bench.
//!
//! az reports a script's verdict nowhere (see `az.rs`), so each script ends
//! by printing `NEXY_MARK:` lines; the functions here read them.

use anyhow::{bail, Context, Result};
use base64::Engine as _;

use crate::{
    az::{Az, ScriptOutput},
    hash, proc,
    util::{last_lines, BASE64},
};

/// The VM's manifest and server version, read through az.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VmState {
    pub manifest: Option<String>,
    pub server_version: Option<String>,
}

/// Where the VM keeps things: the service's base directory and the
/// manifest's file name there.
#[derive(Debug, Clone)]
pub struct Target {
    pub base: String,
    pub manifest_file: String,
}

impl Target {
    /// The read-only script that reports the VM's manifest and version.
    pub fn read_script(&self) -> String {
        let (base, manifest_file) = (&self.base, &self.manifest_file);
        let m = proc::sh_quote(&format!("{base}/server/updates/manifests/{manifest_file}"));
        let env = proc::sh_quote(&format!("{base}/config.env"));
        format!(
            "m={m}\n\
             if [ -f \"$m\" ]; then echo \"NEXY_MARK:manifest_b64:$(base64 -w0 \"$m\")\"; else echo NEXY_MARK:manifest_b64:; fi\n\
             v=$(grep -E '^SERVER_VERSION=' {env} 2>/dev/null | tail -n 1 | cut -d= -f2-)\n\
             echo \"NEXY_MARK:server_version:$v\"\n\
             echo NEXY_MARK:read:ok\n"
        )
    }

    /// The script that installs a manifest on the VM. The manifest travels
    /// base64-encoded inside single quotes, so no byte of it is interpreted
    /// by a shell; the version has been validated as four numbers.
    pub fn sync_script(&self, version: &str, manifest: &str, server_version: bool) -> String {
        let manifest_file = &self.manifest_file;
        let b64 = BASE64.encode(manifest.as_bytes());
        let sum = hash::bytes_sha256(manifest.as_bytes());
        let stem = manifest_file.strip_suffix(".json").unwrap_or(manifest_file);
        let base_q = proc::sh_quote(&self.base);
        // Only the stable channel moves the server's own version; a beta
        // manifest is served beside it.
        let server_part = if server_version {
            format!(
                "cfg=\"$base/config.env\"\n\
                 touch \"$cfg\"\n\
                 for kv in SERVER_VERSION={version} SERVER_BUILD={version}; do\n\
                   k=${{kv%%=*}}\n\
                   if grep -q \"^$k=\" \"$cfg\"; then sed -i \"s/^$k=.*/$kv/\" \"$cfg\"; else echo \"$kv\" >> \"$cfg\"; fi\n\
                 done\n\
                 echo {version} > \"$base/VERSION\"\n"
            )
        } else {
            String::new()
        };
        format!(
            "set -eu\n\
             base={base_q}\n\
             dir=\"$base/server/updates/manifests\"\n\
             mkdir -p \"$dir\"\n\
             tmp=$(mktemp \"$dir/.{manifest_file}.XXXXXX\")\n\
             printf '%s' '{b64}' | base64 -d > \"$tmp\"\n\
             sum=$(sha256sum \"$tmp\" | cut -d' ' -f1)\n\
             if [ \"$sum\" != '{sum}' ]; then rm -f \"$tmp\"; echo NEXY_MARK:sync:corrupt; exit 1; fi\n\
             exec 9>/tmp/nexy_manifest.lock\n\
             if ! flock -w 60 9; then rm -f \"$tmp\"; echo NEXY_MARK:sync:locked; exit 1; fi\n\
             if [ -f \"$dir/{manifest_file}\" ]; then cp -p \"$dir/{manifest_file}\" \"$dir/{manifest_file}.backup.$(date -u +%Y%m%dT%H%M%S%NZ)\"; fi\n\
             cp \"$tmp\" \"$dir/{stem}_{version}.json\"\n\
             chmod 644 \"$tmp\"\n\
             mv -f \"$tmp\" \"$dir/{manifest_file}\"\n\
             {server_part}\
             systemctl restart voice-assistant\n\
             echo \"NEXY_MARK:sync:ok:$(sha256sum \"$dir/{manifest_file}\" | cut -d' ' -f1)\"\n"
        )
    }
}

/// The VM's manifest and version from the read script's markers.
pub fn parse_state(out: &ScriptOutput) -> Result<VmState> {
    if out.marker("read") != Some("ok") {
        bail!(
            "reading the VM's manifest printed no verdict (stderr: {}); check the VM with `az vm run-command invoke`",
            last_lines(&out.stderr, 2)
        );
    }
    let manifest = match out.marker("manifest_b64") {
        Some(b64) if !b64.is_empty() => Some(
            String::from_utf8(
                BASE64
                    .decode(b64.trim())
                    .context("the VM's manifest came back garbled")?,
            )
            .context("the VM's manifest is not UTF-8")?,
        ),
        _ => None,
    };
    Ok(VmState {
        manifest,
        server_version: out
            .marker("server_version")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
    })
}

/// Checks the sync script's verdict: the VM confirms the sha256 of the
/// manifest it now serves.
pub fn check_synced(out: &ScriptOutput, manifest: &str) -> Result<()> {
    let want = format!("ok:{}", hash::bytes_sha256(manifest.as_bytes()));
    if out.marker("sync") != Some(want.as_str()) {
        bail!(
            "the VM sync did not confirm (marker {:?}, stderr: {}); the assets are live but the VM may serve the old manifest: run `cargo xtask publish` again",
            out.marker("sync"),
            last_lines(&out.stderr, 2)
        );
    }
    Ok(())
}

/// Installs `manifest` on the VM (and, with `server_version`, moves the
/// server's version), restarts the service and checks the verdict.
pub fn sync(
    az: &Az<'_>,
    target: &Target,
    version: &str,
    manifest: &str,
    server_version: bool,
) -> Result<()> {
    let out = az.run_script(&target.sync_script(version, manifest, server_version))?;
    check_synced(&out, manifest)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn stdout(lines: &str) -> ScriptOutput {
        ScriptOutput {
            stdout: lines.to_string(),
            stderr: String::new(),
        }
    }

    #[test]
    fn reads_the_state_from_the_markers() {
        let manifest = "{\"version\": \"2.0.0.5\"}\n";
        let out = stdout(&format!(
            "NEXY_MARK:manifest_b64:{}\nNEXY_MARK:server_version:2.0.0.5\nNEXY_MARK:read:ok\n",
            BASE64.encode(manifest)
        ));
        assert_eq!(
            parse_state(&out).unwrap(),
            VmState {
                manifest: Some(manifest.into()),
                server_version: Some("2.0.0.5".into())
            }
        );
        let empty =
            stdout("NEXY_MARK:manifest_b64:\nNEXY_MARK:server_version:\nNEXY_MARK:read:ok\n");
        assert_eq!(parse_state(&empty).unwrap(), VmState::default());
        assert!(parse_state(&stdout("NEXY_MARK:manifest_b64:\n")).is_err());
    }

    #[test]
    fn a_sync_confirms_only_the_manifest_sent() {
        let m = "{}\n";
        let ok = stdout(&format!(
            "NEXY_MARK:sync:ok:{}\n",
            hash::bytes_sha256(m.as_bytes())
        ));
        assert!(check_synced(&ok, m).is_ok());
        assert!(check_synced(&ok, "{ }\n").is_err());
        assert!(check_synced(&stdout("NEXY_MARK:sync:locked\n"), m).is_err());
    }

    #[test]
    fn sync_script_installs_the_manifest_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_str().unwrap();
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).unwrap();
        // A systemctl that only records the restart.
        fs::write(
            bin.join("systemctl"),
            "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/restarted\"\n",
        )
        .unwrap();
        std::process::Command::new("chmod")
            .arg("755")
            .arg(bin.join("systemctl"))
            .status()
            .unwrap();
        fs::write(
            dir.path().join("config.env"),
            "GEMINI_API_KEY=k\nSERVER_VERSION=2.0.0.4\n",
        )
        .unwrap();
        let manifest = "{\n  \"version\": \"2.0.0.5\",\n  \"x\": \"'$(rm -rf /)`\\\"\"\n}\n";
        let target = Target {
            base: base.to_string(),
            manifest_file: "manifest.json".into(),
        };
        let script = target.sync_script("2.0.0.5", manifest, true);
        let run = || {
            std::process::Command::new("bash")
                .arg("-c")
                .arg(&script)
                .env(
                    "PATH",
                    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
                )
                .output()
                .unwrap()
        };
        let out = run();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            stdout.contains(&format!(
                "NEXY_MARK:sync:ok:{}",
                hash::bytes_sha256(manifest.as_bytes())
            )),
            "{stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mdir = dir.path().join("server/updates/manifests");
        assert_eq!(
            fs::read_to_string(mdir.join("manifest.json")).unwrap(),
            manifest
        );
        assert_eq!(
            fs::read_to_string(mdir.join("manifest_2.0.0.5.json")).unwrap(),
            manifest
        );
        let env = fs::read_to_string(dir.path().join("config.env")).unwrap();
        assert_eq!(
            env,
            "GEMINI_API_KEY=k\nSERVER_VERSION=2.0.0.5\nSERVER_BUILD=2.0.0.5\n"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("VERSION")).unwrap(),
            "2.0.0.5\n"
        );
        assert_eq!(
            fs::read_to_string(bin.join("restarted")).unwrap(),
            "restart voice-assistant\n"
        );
        // The second run backs up the first manifest.
        assert!(run().status.success());
        let backups = fs::read_dir(&mdir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".backup.")
            })
            .count();
        assert_eq!(backups, 1);
        // The read script reports what the sync installed.
        let read = std::process::Command::new("bash")
            .arg("-c")
            .arg(target.read_script())
            .output()
            .unwrap();
        let state = parse_state(&ScriptOutput {
            stdout: String::from_utf8(read.stdout).unwrap(),
            stderr: String::new(),
        })
        .unwrap();
        assert_eq!(state.manifest.as_deref(), Some(manifest));
        assert_eq!(state.server_version.as_deref(), Some("2.0.0.5"));
    }
}
