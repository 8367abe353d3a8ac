//! The update feed that the VM's `voice-assistant` serves behind nginx:
//! `/health`, `/status` (from the running service's version) and
//! `/updates/health`, `/updates/appcast.xml`, `/updates/manifest.json` (from
//! the manifest on disk, read on every request as the real feed does).

use crate::app::App;
use crate::http::Response;
use crate::vm;
use anyhow::Result;
use serde_json::{json, Value};

const CACHE: &str = "public, max-age=30";
const CACHE_APPCAST: &str = "public, max-age=60";

fn cached(r: Response, cc: &str) -> Response {
    r.with_header("Cache-Control", cc)
}

/// (version, build) that the service answers with now, honouring the
/// stale-after-restart fault.
fn served_version(app: &App) -> (String, String) {
    let running = vm::read_running(&app.dir).ok();
    let stale_secs = app.faults_snapshot().feed_stale_secs;
    match running {
        Some(r)
            if stale_secs > 0
                && crate::util::now_ms().saturating_sub(r.restarted_ms) < stale_secs * 1000 =>
        {
            (r.previous_version, r.previous_build)
        }
        Some(r) => (r.version, r.build),
        None => (String::new(), String::new()),
    }
}

fn read_manifest(app: &App) -> std::result::Result<(Value, Vec<u8>), String> {
    read_manifest_file(app, "manifest.json")
}

/// A manifest of the VM's manifests directory: `manifest.json` (stable) or
/// `manifest_beta.json` (the beta channel).
fn read_manifest_file(app: &App, name: &str) -> std::result::Result<(Value, Vec<u8>), String> {
    let p = vm::manifest_path(&app.dir).with_file_name(name);
    let bytes = std::fs::read(&p).map_err(|e| format!("manifest not readable: {e}"))?;
    let v = serde_json::from_slice(&bytes).map_err(|e| format!("manifest is not JSON: {e}"))?;
    Ok((v, bytes))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

fn jstr(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Route a feed path; `None` when the path is not the feed's.
pub fn handle(app: &App, path: &str) -> Result<Option<Response>> {
    let now = crate::util::iso_utc(crate::util::now_ms());
    let r = match path {
        "/health" => {
            let (v, b) = served_version(app);
            cached(
                Response::json(
                    200,
                    &json!({"status": "OK", "latest_version": v, "latest_build": b,
                            "service": vm::SERVICE, "timestamp": now}),
                ),
                CACHE,
            )
        }
        "/status" => {
            let (v, b) = served_version(app);
            cached(
                Response::json(
                    200,
                    &json!({"status": "running", "service": vm::SERVICE, "latest_version": v,
                            "latest_build": b, "timestamp": now}),
                ),
                CACHE,
            )
        }
        "/updates/health" => match read_manifest(app) {
            Ok((m, _)) => cached(
                Response::json(
                    200,
                    &json!({"status": "healthy", "version": m["version"], "latest_version": m["version"],
                            "latest_build": m["build"], "manifest": "manifest.json", "timestamp": now}),
                ),
                CACHE,
            ),
            Err(e) => cached(
                Response::json(503, &json!({"status": "unhealthy", "error": e})),
                CACHE,
            ),
        },
        "/updates/manifest.json" => match read_manifest(app) {
            Ok((_, bytes)) => cached(Response::new(200, "application/json", bytes), CACHE),
            Err(e) => cached(Response::json(404, &json!({"error": e})), CACHE),
        },
        "/updates/appcast.xml" => match read_manifest(app) {
            Ok((m, _)) => appcast(&m),
            Err(e) => cached(Response::json(500, &json!({"error": e})), CACHE_APPCAST),
        },
        // The beta channel, served from manifest_beta.json.
        "/updates/manifest_beta.json" => match read_manifest_file(app, "manifest_beta.json") {
            Ok((_, bytes)) => cached(Response::new(200, "application/json", bytes), CACHE),
            Err(e) => cached(Response::json(404, &json!({"error": e})), CACHE),
        },
        "/updates/appcast-beta.xml" => match read_manifest_file(app, "manifest_beta.json") {
            Ok((m, _)) => appcast(&m),
            Err(e) => cached(Response::json(500, &json!({"error": e})), CACHE_APPCAST),
        },
        _ => return Ok(None),
    };
    Ok(Some(r))
}

fn appcast(m: &Value) -> Response {
    let a = &m["artifact"];
    let url = jstr(&a["url"]);
    // Like the real server: refuse an appcast that would send clients to a
    // non-https URL or back to the feed itself. The one deviation: plain
    // http on a loopback host is accepted, because the stand-in serves its
    // public download URLs there; no production URL is ever loopback.
    let lower = url.to_ascii_lowercase();
    let loopback = lower.starts_with("http://127.0.0.1:") || lower.starts_with("http://localhost:");
    if !(lower.starts_with("https://") || loopback)
        || lower.contains("nexy-prod-sergiy.canadacentral.cloudapp.azure.com/updates")
        || lower.contains("/updates/appcast")
    {
        return cached(
            Response::json(
                500,
                &json!({"error": format!("refusing to build appcast: artifact url {url:?} must be https and not point at the feed")}),
            ),
            CACHE_APPCAST,
        );
    }
    let version = jstr(&m["version"]);
    let build = jstr(&m["build"]);
    let sig = jstr(&a["ed25519"]);
    let sig_attr = if sig.is_empty() {
        String::new()
    } else {
        format!(" sparkle:edSignature=\"{}\"", xml_escape(&sig))
    };
    let xml = format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:sparkle="http://www.andymatuschak.org/xml-namespaces/sparkle" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel>
    <title>Nexy Updates</title>
    <description>Nexy update feed</description>
    <language>en</language>
    <item>
      <title>Version {v}</title>
      <pubDate>{date}</pubDate>
      <sparkle:minimumSystemVersion>{minos}</sparkle:minimumSystemVersion>
      <enclosure url="{url}" sparkle:version="{b}" sparkle:shortVersionString="{v}" length="{size}" type="application/octet-stream"{sig_attr}/>
    </item>
  </channel>
</rss>
"#,
        v = xml_escape(&version),
        b = xml_escape(&build),
        date = xml_escape(&jstr(&m["release_date"])),
        minos = xml_escape(&jstr(&a["min_os"])),
        url = xml_escape(&url),
        size = xml_escape(&jstr(&a["size"])),
    );
    cached(
        Response::new(200, "application/xml; charset=utf-8", xml.into_bytes()),
        CACHE_APPCAST,
    )
}
