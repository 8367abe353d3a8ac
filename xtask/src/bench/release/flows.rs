//! The reference flows the release is measured against: the floor (one
//! `gh release upload` of both files, then the one run-command every
//! release makes; and raw HTTP POSTs with no gh) and the naive runbook
//! flow (`upload --clobber` per asset).

use super::*;

impl Bench<'_> {
    /// One `gh release upload` of both files under fresh names (symlinks,
    /// as publish stages its uploads).
    pub(super) fn floor_gh(&self, dir: &Path, tag: &str) -> Result<Usage> {
        let links = floor_links(dir, &self.inbox)?;
        let (sh, cfg) = (self.sh, &self.ws.config.github);
        let target = format!("{}/{}", cfg.host, cfg.assets_repo);
        let from = self.mark()?;
        let m = measure(
            ghenv::cmd(cmd!(sh, "gh release upload {tag} {links...} -R {target}")),
            "gh release upload (floor)",
            UPLOAD_TIMEOUT,
            false,
        )?;
        let to = self.mark()?;
        if !m.success() {
            bail!("the floor's `gh release upload` failed: {}", m.said());
        }
        self.usage(&from, &to)
    }

    /// The floor's one run-command ([`floor_run_command`]), as a usage.
    pub(super) fn floor_vm(&self) -> Result<Usage> {
        let from = self.mark()?;
        floor_run_command(self.sh, self.ws, "stable")?;
        let to = self.mark()?;
        self.usage(&from, &to)
    }

    /// The same bytes as two raw HTTP POSTs straight to the stand-in (the
    /// kernel copies the file to the socket): the transfer with no gh.
    pub(super) fn floor_raw(&self, tag: &str, token: &str) -> Result<Usage> {
        let cfg = &self.ws.config.github;
        let release = self.release_json(tag)?;
        let id = release
            .get("id")
            .and_then(Value::as_u64)
            .context("the release JSON has no id")?;
        let base = cfg
            .download_base
            .as_deref()
            .context("the stand-in config has no github.download_base")?;
        let addr: SocketAddr = base
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("{base} is not http://ADDRESS:PORT"))?;
        let from = self.mark()?;
        for name in ["Nexy.dmg", "Nexy.pkg"] {
            raw_upload(
                addr,
                token,
                &cfg.assets_repo,
                id,
                &format!("{RAW_PREFIX}{name}"),
                &self.inbox.join(name),
            )?;
        }
        let to = self.mark()?;
        self.usage(&from, &to)
    }

    /// The release JSON of `tag` as `gh api` prints it.
    pub(super) fn release_json(&self, tag: &str) -> Result<Value> {
        let (sh, cfg) = (self.sh, &self.ws.config.github);
        let host = &cfg.host;
        let path = format!("repos/{}/releases/tags/{tag}", cfg.assets_repo);
        let out = proc::run(
            ghenv::cmd(cmd!(sh, "gh api --hostname {host} {path}")),
            "gh api",
            API_TIMEOUT,
        )?;
        if !out.success() {
            bail!("`gh api {path}` failed: {}", out.stderr.trim());
        }
        serde_json::from_str(&out.stdout).with_context(|| format!("`gh api {path}` is not JSON"))
    }

    /// Deletes the floor's uploads, so the release holds only its own assets.
    pub(super) fn remove_bench_assets(&self, tag: &str) -> Result<()> {
        let cfg = &self.ws.config.github;
        let gh = Gh::new(self.sh, &cfg.host, &cfg.assets_repo);
        let release = gh
            .release(tag)?
            .with_context(|| format!("the release {tag} disappeared"))?;
        for asset in &release.assets {
            if asset.name.starts_with(FLOOR_PREFIX) || asset.name.starts_with(RAW_PREFIX) {
                gh.delete(asset.id)?;
            }
        }
        Ok(())
    }

    /// The naive runbook flow on stable: `--clobber` per asset, the
    /// manifest, the VM sync.
    pub(super) fn naive_publish(&self, v: Version) -> Result<()> {
        replace_and_sync(self.sh, self.ws, "stable", v, true)
    }
}

/// Replaces the channel's live assets the way the reference flows do (per
/// asset `--clobber`, or delete then upload, as the old scripts did), then
/// writes the manifest and syncs the VM: the naive and old-scripts flows
/// of both benchmarks.
pub(in crate::bench) fn replace_and_sync(
    sh: &Shell,
    ws: &Workspace,
    channel: &str,
    v: Version,
    clobber: bool,
) -> Result<()> {
    let job = publish::Job::new(sh, ws, channel)?;
    let inbox = ws.root.join(ws.inbox_dir(channel));
    let locals = job.artifacts(&inbox)?;
    let manifest = job.new_manifest(&locals, None)?;
    let target = format!("{}/{}", ws.config.github.host, ws.config.github.assets_repo);
    for local in &locals {
        let (tag, file, name) = (&local.tag, &local.path, local.name());
        if !clobber {
            let out = proc::run(
                ghenv::cmd(cmd!(
                    sh,
                    "gh release delete-asset {tag} {name} -y -R {target}"
                )),
                "gh release delete-asset",
                UPLOAD_TIMEOUT,
            )?;
            if !out.success() {
                bail!(
                    "`gh release delete-asset {tag} {name}` failed: {}",
                    out.stderr.trim()
                );
            }
        }
        let flag = clobber.then_some("--clobber");
        let out = proc::run(
            ghenv::cmd(cmd!(
                sh,
                "gh release upload {tag} {file} {flag...} -R {target}"
            )),
            "gh release upload",
            UPLOAD_TIMEOUT,
        )?;
        if !out.success() {
            bail!(
                "`gh release upload` of {} failed: {}",
                file.display(),
                out.stderr.trim()
            );
        }
    }
    let change = manifest.context("the flow publishes a DMG, so it has a manifest")?;
    changes::apply(std::slice::from_ref(&change))?;
    let cfg = &ws.config.azure;
    let az = Az::new(sh, &cfg.resource_group, &cfg.vm_name);
    crate::vm::sync_checked(
        &az,
        &job.vm_target(),
        &v.to_string(),
        &change.new,
        channel == "stable",
    )
    .map(drop)
    .context("the flow's VM sync did not confirm")
}

/// The floor's uploads, staged in `dir/floor` as publish stages its own:
/// symlinks to the inbox's DMG and PKG under fresh names (never the
/// fixed ones). Shared by both benchmarks.
pub(in crate::bench) fn floor_links(dir: &Path, inbox: &Path) -> Result<Vec<PathBuf>> {
    let staging = dir.join("floor");
    fs::create_dir_all(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
    let mut links = Vec::new();
    for name in ["Nexy.dmg", "Nexy.pkg"] {
        let link = staging.join(format!("{FLOOR_PREFIX}{name}"));
        let target = fs::canonicalize(inbox.join(name))
            .with_context(|| format!("cannot resolve {}", inbox.join(name).display()))?;
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)
            .with_context(|| format!("cannot create {}", link.display()))?;
        links.push(link);
    }
    Ok(links)
}

/// The floor's one run-command, the least a release does on the VM: on
/// stable the restart and its health wait, on beta an empty script; how
/// long it took. Shared by both benchmarks.
pub(in crate::bench) fn floor_run_command(
    sh: &Shell,
    ws: &Workspace,
    channel: &str,
) -> Result<Duration> {
    let cfg = &ws.config;
    let script = if channel == "stable" {
        format!(
            "systemctl restart voice-assistant\n\
             i=0\n\
             while [ $i -lt 240 ]; do curl -fsS --max-time 3 {} >/dev/null 2>&1 && break; i=$((i+1)); sleep 0.25; done\n\
             echo NEXY_MARK:floor:ok\n",
            proc::sh_quote(&cfg.vm.health_url)
        )
    } else {
        "echo NEXY_MARK:floor:ok\n".to_string()
    };
    let az = Az::new(sh, &cfg.azure.resource_group, &cfg.azure.vm_name);
    let started = Instant::now();
    let answer = az.run_script(&script)?;
    let run = started.elapsed();
    if answer.marker("floor") != Some("ok") {
        bail!(
            "the floor's run-command printed no verdict: {}",
            answer.stderr
        );
    }
    Ok(run)
}

/// Writes one file as a raw asset upload; expects 201.
pub(super) fn raw_upload(
    addr: SocketAddr,
    token: &str,
    repo: &str,
    release_id: u64,
    name: &str,
    file: &Path,
) -> Result<()> {
    let size = fs::metadata(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .len();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .with_context(|| format!("cannot connect to the stand-in at {addr}"))?;
    stream.set_write_timeout(Some(Duration::from_secs(300)))?;
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    write!(
        stream,
        "POST http://uploads.github.localhost/repos/{repo}/releases/{release_id}/assets?name={name}&label= HTTP/1.1\r\n\
         Host: uploads.github.localhost\r\n\
         Authorization: token {token}\r\n\
         Content-Type: application/octet-stream\r\n\
         Content-Length: {size}\r\n\
         Connection: close\r\n\r\n"
    )?;
    let mut f = fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let sent = std::io::copy(&mut f, &mut stream).context("the raw upload was cut")?;
    if sent != size {
        bail!("sent {sent} of {size} bytes of {}", file.display());
    }
    let mut line = String::new();
    BufReader::new((&stream).take(1024))
        .read_line(&mut line)
        .context("the stand-in did not answer the raw upload")?;
    if line.split_whitespace().nth(1) != Some("201") {
        bail!("the raw upload of {name} answered {:?}", line.trim());
    }
    Ok(())
}
