//! What a lease is, as data: the holder its label names, the lease as one
//! read of the release shows it, and the pure decisions about it (take,
//! wait, take over) with the version gate a run applies under it. No
//! effects here, so the table tests in `state_tests.rs` run in
//! milliseconds.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::config::LeaseConfig;

use super::NAME;

/// Who holds a lease, as its label carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub login: String,
    pub run: String,
    pub command: String,
    pub version: String,
    pub ttl_secs: u64,
    pub renewal: u64,
}

impl Holder {
    /// `nexy-release lease login=L run=R command=C version=V ttl=600 renewal=0`
    pub fn label(&self) -> String {
        format!(
            "nexy-release lease login={} run={} command={} version={} ttl={} renewal={}",
            self.login, self.run, self.command, self.version, self.ttl_secs, self.renewal
        )
    }

    pub fn parse_label(label: &str) -> Option<Holder> {
        let rest = label.strip_prefix("nexy-release lease ")?;
        let get = |k: &str| {
            rest.split(' ')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(Holder {
            login: get("login")?,
            run: get("run")?,
            command: get("command")?,
            version: get("version")?,
            ttl_secs: get("ttl")?.parse().ok()?,
            renewal: get("renewal")?.parse().ok()?,
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "{} (gh login {}, run {}, version {})",
            self.command, self.login, self.run, self.version
        )
    }
}

/// The lease as one read of the release shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: u64,
    /// `None` when the label is not one of ours (then it counts as held).
    pub holder: Option<Holder>,
    /// Seconds since its last renewal, by GitHub's clock.
    pub age_secs: i64,
}

/// What to do about the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No lease: upload ours.
    Free,
    /// Ours, or a run of this clone that is gone: remove it by id and take it.
    Ours { id: u64 },
    /// Held by a live run: wait.
    Held { left_secs: i64 },
    /// Not renewed within its lifetime: remove by id, record the takeover.
    Expired { id: u64 },
}

/// The pure decision: `mine` is this run's id and `gone` the run id this
/// clone recorded for a run that no longer holds the clone's lock.
pub fn decide(seen: Option<&Seen>, mine: &str, gone: Option<&str>, default_ttl: u64) -> Decision {
    let Some(seen) = seen else {
        return Decision::Free;
    };
    let run = seen.holder.as_ref().map(|h| h.run.as_str());
    if run.is_some() && (run == Some(mine) || run == gone) {
        return Decision::Ours { id: seen.id };
    }
    let ttl = seen.holder.as_ref().map_or(default_ttl, |h| h.ttl_secs);
    let ttl = i64::try_from(ttl).unwrap_or(i64::MAX);
    if seen.age_secs >= ttl {
        Decision::Expired { id: seen.id }
    } else {
        Decision::Held {
            left_secs: ttl - seen.age_secs,
        }
    }
}

/// Whether a run that holds the lease may publish `local` over `live`
/// (both versions of the channel's manifest): lower is refused; equal is
/// allowed only for the same DMG bytes (a rerun that finishes its own
/// release), since two different builds must not share a version.
pub fn version_gate(
    local: crate::version::Version,
    live: Option<crate::version::Version>,
    same_bytes: bool,
) -> std::result::Result<(), String> {
    match live {
        Some(live) if local < live => Err(format!(
            "{local} is lower than {live}, which is live now (another release published it); bump above it with `cargo xtask bump <X.Y.Z.W>` and rebuild"
        )),
        Some(live) if local == live && !same_bytes => Err(format!(
            "{live} is live now with other bytes than this inbox's Nexy.dmg (another release published it); bump above it with `cargo xtask bump <X.Y.Z.W>` and rebuild"
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
struct ReleaseJson {
    id: u64,
    #[serde(default)]
    immutable: bool,
    #[serde(default)]
    assets: Vec<AssetJson>,
}

#[derive(Deserialize)]
struct AssetJson {
    id: u64,
    name: String,
    #[serde(default)]
    label: Option<String>,
    updated_at: String,
}

/// Parses `gh api -i` output: the status line, headers, a blank line and
/// the body. Returns the `Date` header and the body.
fn split_include(out: &str) -> Option<(OffsetDateTime, &str)> {
    let (head, body) = out
        .split_once("\r\n\r\n")
        .or_else(|| out.split_once("\n\n"))?;
    let date = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("date").then(|| v.trim())
    })?;
    Some((parse_http_date(date)?, body))
}

/// `Tue, 01 Dec 2026 17:24:39 GMT` (RFC 9110's IMF-fixdate).
pub fn parse_http_date(text: &str) -> Option<OffsetDateTime> {
    let fmt = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT",
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::parse(text.trim(), &fmt)
            .ok()?
            .assume_utc(),
    )
}

/// The lease in one `gh api -i` answer for the release, aged by that
/// answer's `Date`. Also returns the release id.
pub fn parse_read(out: &str) -> Result<(u64, Option<Seen>)> {
    let (now, body) = split_include(out)
        .context("gh api -i printed no Date header; check the gh version (`gh --version`)")?;
    let rel: ReleaseJson =
        serde_json::from_str(body.trim()).context("cannot read the release JSON from gh api")?;
    if rel.immutable {
        bail!("the release of the lease is immutable, so its assets cannot be replaced; a maintainer must turn off immutable releases");
    }
    let Some(a) = rel.assets.iter().find(|a| a.name == NAME) else {
        return Ok((rel.id, None));
    };
    let updated = crate::clock::parse_rfc3339(&a.updated_at)
        .with_context(|| format!("the lease's updated_at `{}` is not a date", a.updated_at))?;
    Ok((
        rel.id,
        Some(Seen {
            id: a.id,
            holder: a.label.as_deref().and_then(Holder::parse_label),
            age_secs: (now - updated).whole_seconds(),
        }),
    ))
}

/// One line for preflight and `cargo xtask lease`.
pub fn describe(seen: Option<&Seen>, cfg: &LeaseConfig) -> String {
    match seen {
        None => "free".into(),
        Some(s) => {
            let who = s
                .holder
                .as_ref()
                .map_or("an asset without a lease label".into(), Holder::describe);
            let ttl = s.holder.as_ref().map_or(cfg.ttl_secs, |h| h.ttl_secs);
            let left = i64::try_from(ttl).unwrap_or(i64::MAX) - s.age_secs;
            if left > 0 {
                format!("held by {who}, renewed {} s ago, expires in {left} s unless renewed (asset id {})", s.age_secs, s.id)
            } else {
                format!(
                    "held by {who}, expired {} s ago: the next run takes it over (asset id {})",
                    -left, s.id
                )
            }
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
