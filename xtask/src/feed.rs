//! The server's update feed as clients and the runbook see it:
//! `/health`, `/status`, `/updates/health` and `/updates/appcast.xml`.

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::http;

/// What one feed endpoint says the released version is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    pub version: String,
    pub build: Option<String>,
    pub length: Option<u64>,
}

fn field(body: &Value, key: &str, url: &str) -> Result<String> {
    body.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("{url} has no string \"{key}\" in its JSON"))
}

fn expect_status(body: &Value, want: &str, url: &str) -> Result<()> {
    match body.get("status").and_then(Value::as_str) {
        Some(s) if s == want => Ok(()),
        other => bail!(
            "{url} reports status {:?}, expected \"{want}\"",
            other.unwrap_or("none")
        ),
    }
}

/// `/health`: `{"status":"OK","latest_version":V,"latest_build":B,...}`.
pub fn health(agent: &ureq::Agent, base: &str) -> Result<Reported> {
    let url = format!("{base}/health");
    let body = http::get_json(agent, &url)?;
    expect_status(&body, "OK", &url)?;
    Ok(Reported {
        version: field(&body, "latest_version", &url)?,
        build: field(&body, "latest_build", &url).ok(),
        length: None,
    })
}

/// `/status`: `{"status":"running","service":"voice-assistant",...}`.
pub fn status(agent: &ureq::Agent, base: &str) -> Result<Reported> {
    let url = format!("{base}/status");
    let body = http::get_json(agent, &url)?;
    expect_status(&body, "running", &url)?;
    Ok(Reported {
        version: field(&body, "latest_version", &url)?,
        build: None,
        length: None,
    })
}

/// `/updates/health`: the manifest on the VM's disk.
pub fn updates_health(agent: &ureq::Agent, base: &str) -> Result<Reported> {
    let url = format!("{base}/updates/health");
    let body = http::get_json(agent, &url)?;
    expect_status(&body, "healthy", &url)?;
    Ok(Reported {
        version: field(&body, "latest_version", &url)?,
        build: field(&body, "latest_build", &url).ok(),
        length: None,
    })
}

/// `/updates/appcast.xml` (or another feed path): the enclosure's versions
/// and length.
pub fn appcast(agent: &ureq::Agent, base: &str, path: &str) -> Result<Reported> {
    let url = format!("{base}{path}");
    let xml = http::get_text(agent, &url)?;
    parse_appcast(&xml).with_context(|| format!("{url} is not a Sparkle appcast with an enclosure"))
}

/// The first `<enclosure .../>` of a Sparkle feed.
pub fn parse_appcast(xml: &str) -> Result<Reported> {
    let start = xml.find("<enclosure").context("no <enclosure>")?;
    let tag = &xml[start..];
    let tag = &tag[..tag.find('>').context("unterminated <enclosure>")?];
    let attr = |name: &str| -> Option<String> {
        let key = format!("{name}=\"");
        let at = tag.find(&key)? + key.len();
        let len = tag[at..].find('"')?;
        Some(tag[at..at + len].to_string())
    };
    Ok(Reported {
        version: attr("sparkle:shortVersionString").context("no sparkle:shortVersionString")?,
        build: attr("sparkle:version"),
        length: attr("length").and_then(|l| l.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_enclosure() {
        let xml = r#"<rss><channel><item><enclosure url="https://x/Nexy.dmg" sparkle:version="2.0.0.5" sparkle:shortVersionString="2.0.0.5" length="42" type="application/octet-stream"/></item></channel></rss>"#;
        let r = parse_appcast(xml).unwrap();
        assert_eq!(r.version, "2.0.0.5");
        assert_eq!(r.build.as_deref(), Some("2.0.0.5"));
        assert_eq!(r.length, Some(42));
        assert!(parse_appcast("<rss/>").is_err());
    }
}
