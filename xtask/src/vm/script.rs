//! The shell text of the VM scripts: the read (manifest, version, the
//! restart gate, the version the service answers with) and the sync
//! (manifest, backups, and on the stable channel the server's version with
//! its gated restart, bounded wait and restore).
//!
//! Every value that is not a validated version or a number travels in
//! single quotes ([`proc::sh_quote`]), the manifest base64-encoded, so no
//! byte of it is interpreted by a shell. Each script ends with `NEXY_MARK:`
//! lines (see `az.rs`), and each is safe to run twice: a retry after a 5xx
//! may repeat it, and the second run finds the work done (the same
//! manifest is not backed up again, a service already on the version is
//! not restarted again).

use base64::Engine as _;

use super::Target;
use crate::{hash, proc, util::BASE64};

/// The gate: can `config.env` start the service? Sets `gate` to the
/// problems found (space-separated tokens, empty when none). The key's
/// value is read into a variable and compared, never printed. A version
/// line is well formed when it is exactly `SERVER_VERSION=X.Y.Z.W` (or
/// `SERVER_BUILD=`, the value optionally double-quoted); any other line
/// assigning one of them (`export`, spaces, a CR) is one our edit would not
/// replace, so it is refused rather than left to win over ours.
const GATE_FN: &str = r#"nexy_gate() {
  gate=""
  if [ ! -f "$1" ]; then gate="no-config"; return 0; fi
  key=$(grep -E '^GEMINI_API_KEY=' "$1" | tail -n 1 | cut -d= -f2- | tr -d '"'"'"' \t\r')
  case "$key" in
    '') gate="key-missing" ;;
    YOUR_GEMINI_API_KEY_HERE) gate="key-placeholder" ;;
  esac
  key=""
  bad=$(grep -E '^[[:space:]]*(export[[:space:]]+)?SERVER_(VERSION|BUILD)[[:space:]]*=' "$1" | grep -cvE '^SERVER_(VERSION|BUILD)=("[0-9]+(\.[0-9]+){3}"|[0-9]+(\.[0-9]+){3})$' || true)
  if [ "$bad" != 0 ]; then gate="${gate:+$gate }version-lines:$bad"; fi
  return 0
}
"#;

/// `nexy_version URL`: the `latest_version` a health endpoint answers
/// with, empty when it does not answer (bounded by curl's `--max-time`).
const VERSION_FN: &str = r#"nexy_version() {
  curl -fsS --max-time 3 "$1" 2>/dev/null | sed -n 's/.*"latest_version"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1 || true
}
"#;

/// `nexy_wait SERVICE_VERSION`: waits (bounded by `$wait` seconds) until
/// the unit is active and the service's `/health` answers with that version
/// and the feed's `/updates/health` with the manifest's (`$new`). Sets
/// `waited` (seconds) on success and `seen` (what was last seen) on failure.
/// A unit not yet active is not asked over HTTP (it cannot answer), and
/// the poll is every 0.2 s: the service's answer is noticed within a fifth
/// of a second, for three short local processes a poll.
const WAIT_FN: &str = r#"nexy_wait() {
  start=$(date +%s)
  while :; do
    a=$(systemctl is-active voice-assistant 2>/dev/null || true)
    h=""; f=""
    if [ "$a" = active ]; then
      h=$(nexy_version "$health")
      f=$(nexy_version "$feed")
    fi
    now=$(date +%s)
    if [ "$a" = active ] && [ "$h" = "$1" ] && [ "$f" = "$new" ]; then
      waited=$(( now - start )); return 0
    fi
    seen="is-active=${a:-nothing},health=${h:-no-answer},updates-health=${f:-no-answer}"
    if [ $(( now - start )) -ge "$wait" ]; then return 1; fi
    sleep 0.2
  done
}
"#;

/// The read-only script: the manifest, the configured and the running
/// version, and the gate's verdict. It neither writes nor restarts (a dry
/// run runs it), so it asks the service's `/health` rather than systemctl.
pub fn read(target: &Target) -> String {
    let m = proc::sh_quote(&format!(
        "{}/server/updates/manifests/{}",
        target.base, target.manifest_file
    ));
    let cfg = proc::sh_quote(&format!("{}/config.env", target.base));
    let health = proc::sh_quote(&target.health_url);
    format!(
        "{GATE_FN}{VERSION_FN}\
         m={m}\n\
         cfg={cfg}\n\
         if [ -f \"$m\" ]; then echo \"NEXY_MARK:manifest_b64:$(base64 -w0 \"$m\")\"; else echo NEXY_MARK:manifest_b64:; fi\n\
         v=$(grep -E '^SERVER_VERSION=' \"$cfg\" 2>/dev/null | tail -n 1 | cut -d= -f2- | tr -d '\"')\n\
         echo \"NEXY_MARK:server_version:$v\"\n\
         echo \"NEXY_MARK:running_version:$(nexy_version {health})\"\n\
         nexy_gate \"$cfg\"\n\
         if [ -n \"$gate\" ]; then echo \"NEXY_MARK:gate:refused:$gate\"; else echo NEXY_MARK:gate:ok; fi\n\
         echo NEXY_MARK:read:ok\n"
    )
}

/// The sync script. Without `restart` (a beta manifest, or a stable one
/// whose server already runs the version) it installs the manifest only.
/// With it, the gate runs first and a refusal changes nothing; then the
/// manifest, then the new config.env and VERSION (the previous ones kept in
/// `.nexy-restore/` first), the restart, the wait, and on failure the
/// restore and a second restart.
pub fn sync(target: &Target, version: &str, manifest: &str, restart: bool) -> String {
    let manifest_file = &target.manifest_file;
    let b64 = BASE64.encode(manifest.as_bytes());
    let sum = hash::bytes_sha256(manifest.as_bytes());
    let stem = manifest_file.strip_suffix(".json").unwrap_or(manifest_file);
    let base = proc::sh_quote(&target.base);
    let mf = proc::sh_quote(manifest_file);
    let keep_n = target.backups_keep;
    let mut s = String::from("set -eu\n");
    if restart {
        s.push_str(GATE_FN);
        s.push_str(VERSION_FN);
        s.push_str(WAIT_FN);
    }
    s.push_str(&format!(
        "base={base}\n\
         new={version}\n\
         dir=\"$base/server/updates/manifests\"\n\
         cfg=\"$base/config.env\"\n\
         keep=\"$base/.nexy-restore\"\n\
         mkdir -p \"$dir\"\n\
         tmp=$(mktemp \"$dir/.{manifest_file}.XXXXXX\")\n\
         printf '%s' '{b64}' | base64 -d > \"$tmp\"\n\
         sum=$(sha256sum \"$tmp\" | cut -d' ' -f1)\n\
         if [ \"$sum\" != '{sum}' ]; then rm -f \"$tmp\"; echo NEXY_MARK:sync:corrupt; exit 1; fi\n\
         exec 9>/tmp/nexy_manifest.lock\n\
         if ! flock -w 60 9; then rm -f \"$tmp\"; echo NEXY_MARK:sync:locked; exit 1; fi\n"
    ));
    if restart {
        // The gate, then the new config.env built beside the old one and
        // checked, all before anything on the VM changes. A config.env
        // without a final newline gets one before a line is appended, so
        // the appended line cannot join the key's.
        s.push_str(&format!(
            "health={health}\n\
             feed={feed}\n\
             wait={wait}\n\
             nexy_gate \"$cfg\"\n\
             if [ -n \"$gate\" ]; then rm -f \"$tmp\"; echo \"NEXY_MARK:gate:refused:$gate\"; exit 1; fi\n\
             ncfg=$(mktemp \"$base/.config.env.XXXXXX\")\n\
             cp -p \"$cfg\" \"$ncfg\"\n\
             if [ -n \"$(tail -c 1 \"$ncfg\")\" ]; then echo >> \"$ncfg\"; fi\n\
             for kv in SERVER_VERSION=$new SERVER_BUILD=$new; do\n\
               k=${{kv%%=*}}\n\
               if grep -q \"^$k=\" \"$ncfg\"; then sed -i \"s/^$k=.*/$kv/\" \"$ncfg\"; else echo \"$kv\" >> \"$ncfg\"; fi\n\
             done\n\
             nexy_gate \"$ncfg\"\n\
             if [ -n \"$gate\" ] || [ \"$(grep -E '^SERVER_VERSION=' \"$ncfg\" | tail -n 1)\" != \"SERVER_VERSION=$new\" ]; then\n\
               rm -f \"$tmp\" \"$ncfg\"; echo \"NEXY_MARK:gate:refused:${{gate:-edit-failed}}\"; exit 1\n\
             fi\n\
             echo NEXY_MARK:gate:ok\n",
            health = proc::sh_quote(&target.health_url),
            feed = proc::sh_quote(&target.feed_health_url),
            wait = target.restart_wait_secs,
        ));
    }
    // The manifest: backed up unless the same bytes are already there, the
    // backups pruned to the newest N by modification time (when each backup
    // was made, whatever its name's format: the backup is a plain copy, not
    // `cp -p`), the versioned copy, then the atomic rename.
    s.push_str(&format!(
        "if [ -f \"$dir/{manifest_file}\" ] && ! cmp -s \"$dir/{manifest_file}\" \"$tmp\"; then cp \"$dir/{manifest_file}\" \"$dir/{manifest_file}.backup.$(date -u +%Y%m%dT%H%M%S%NZ)\"; fi\n\
         old=$(find \"$dir\" -maxdepth 1 -type f -name {mf}'.backup.*' -printf '%T@ %p\\n' | sort -rn | cut -d' ' -f2- | tail -n +{first_pruned})\n\
         removed=0\n\
         if [ -n \"$old\" ]; then removed=$(printf '%s\\n' \"$old\" | wc -l); printf '%s\\n' \"$old\" | xargs -d '\\n' rm -f --; fi\n\
         kept=$(find \"$dir\" -maxdepth 1 -type f -name {mf}'.backup.*' | wc -l)\n\
         echo \"NEXY_MARK:backups:$removed:$kept\"\n\
         cp \"$tmp\" \"$dir/{stem}_{version}.json\"\n\
         chmod 644 \"$tmp\"\n\
         mv -f \"$tmp\" \"$dir/{manifest_file}\"\n",
        first_pruned = u64::from(keep_n) + 1,
    ));
    if restart {
        s.push_str(RESTART);
    } else {
        s.push_str("echo NEXY_MARK:restart:none:not-asked\n");
    }
    s.push_str(&format!(
        "echo \"NEXY_MARK:sync:ok:$(sha256sum \"$dir/{manifest_file}\" | cut -d' ' -f1)\"\n"
    ));
    s
}

/// The server's part of a stable sync. The service is restarted only if
/// something says it does not run `$new` yet (config.env, VERSION, the unit
/// or its `/health`), so a repeated run does not restart it again; the unit
/// and `/health` are asked only when the files already name `$new` (a
/// release moving the version restarts whatever they say). The
/// previous config.env and VERSION are kept once per version moved to
/// (`for` names it): a run repeated after the config was written keeps the
/// copy of the real previous one.
const RESTART: &str = r#"cur=$(grep -E '^SERVER_VERSION=' "$cfg" | tail -n 1 | cut -d= -f2- | tr -d '"')
curv=$(tr -d ' \t\r\n' 2>/dev/null < "$base/VERSION" || true)
a=""; h=""
if [ "$cur" = "$new" ] && [ "$curv" = "$new" ]; then
  a=$(systemctl is-active voice-assistant 2>/dev/null || true)
  h=$(nexy_version "$health")
fi
if [ "$cur" = "$new" ] && [ "$curv" = "$new" ] && [ "$a" = active ] && [ "$h" = "$new" ]; then
  rm -f "$ncfg"
  echo NEXY_MARK:restart:none:already-running
else
  if [ "$cur" != "$new" ]; then
    rm -rf "$keep.tmp"
    mkdir -m 700 "$keep.tmp"
    cp -p "$cfg" "$keep.tmp/config.env"
    if [ -f "$base/VERSION" ]; then cp -p "$base/VERSION" "$keep.tmp/VERSION"; fi
    printf '%s\n' "$cur" > "$keep.tmp/version"
    printf '%s\n' "$new" > "$keep.tmp/for"
    rm -rf "$keep"
    mv "$keep.tmp" "$keep"
  fi
  mv -f "$ncfg" "$cfg"
  printf '%s\n' "$new" > "$base/.VERSION.nexy"
  mv -f "$base/.VERSION.nexy" "$base/VERSION"
  systemctl restart voice-assistant >/dev/null 2>&1 || true
  if nexy_wait "$new"; then
    echo "NEXY_MARK:restart:ok:$new:$waited"
  else
    echo "NEXY_MARK:restart:failed:$new:$seen"
    if [ -f "$keep/for" ] && [ "$(cat "$keep/for")" = "$new" ]; then
      prev=$(cat "$keep/version")
      cp -p "$keep/config.env" "$base/.config.env.nexy"
      mv -f "$base/.config.env.nexy" "$cfg"
      if [ -f "$keep/VERSION" ]; then cp -p "$keep/VERSION" "$base/.VERSION.nexy"; mv -f "$base/.VERSION.nexy" "$base/VERSION"; else rm -f "$base/VERSION"; fi
      systemctl restart voice-assistant >/dev/null 2>&1 || true
      if nexy_wait "$prev"; then
        echo "NEXY_MARK:restore:ok:$prev:$waited"
      else
        echo "NEXY_MARK:restore:failed:$prev:$seen"
      fi
    else
      echo NEXY_MARK:restore:nothing-kept
    fi
  fi
fi
"#;
