//! GitHub REST/GraphQL as gh 2.23 uses it for releases (see
//! `gh-and-az.md` and the request trace): `api.github.localhost` for the API,
//! `uploads.github.localhost` for raw-byte uploads, `github.localhost` for the
//! public `releases/download` URLs, and a storage host that serves bytes.
//!
//! URLs handed out are always `*.github.localhost`: Go never proxies
//! 127.0.0.1, so a 127.0.0.1 URL would make gh connect directly and drop its
//! Authorization header.

use crate::app::{lock, App, Req};
use crate::http::{Body, Response};
use crate::store::{prev_key, Asset, Release, Store, Tag, OWNER};
use crate::util::{iso_utc, percent_decode, percent_encode};
use anyhow::{Context, Result};
use serde_json::{json, Value};

mod assets;
mod releases;

use assets::{asset_route, upload};
pub use assets::{public_download, storage};
use releases::{create_ref, create_release, graphql, release_route};

pub const API: &str = "http://api.github.localhost";
pub const UPLOADS: &str = "http://uploads.github.localhost";
pub const WEB: &str = "http://github.localhost";
pub const STORAGE: &str = "http://objects.github.localhost";
const DOCS: &str = "https://docs.github.com/rest";
/// What real GitHub sends for a classic token with these scopes; gh checks it.
pub const SCOPES: &str = "repo, read:org";

fn not_found() -> Response {
    Response::json(
        404,
        &json!({"message": "Not Found", "documentation_url": DOCS}),
    )
}

fn validation(resource: &str, code: &str, field: &str, message: Option<&str>) -> Response {
    let mut err = json!({"resource": resource, "code": code, "field": field});
    if let Some(m) = message {
        err["message"] = json!(m);
    }
    Response::json(
        422,
        &json!({"message": "Validation Failed", "errors": [err], "documentation_url": DOCS}),
    )
}

/// 422 for a change to an immutable release. The upload wording is the one
/// GitHub answers (seen in public issue threads:
/// `{"message":"Cannot upload assets to an immutable release.",...}`); the
/// delete/update wordings follow the same pattern but were not observed.
fn immutable(message: &str) -> Response {
    Response::json(422, &json!({"message": message, "documentation_url": DOCS}))
}

fn user() -> Value {
    json!({
        "login": OWNER, "id": 4242, "node_id": "MDQ6VXNlcjQyNDI=", "type": "User",
        "site_admin": false, "url": format!("{API}/users/{OWNER}"),
        "html_url": format!("{WEB}/{OWNER}"),
    })
}

pub fn asset_json(repo: &str, tag: &str, a: &Asset) -> Value {
    json!({
        "url": format!("{API}/repos/{repo}/releases/assets/{}", a.id),
        "id": a.id,
        "node_id": format!("RA_kwDO{:08}", a.id),
        "name": a.name,
        "label": a.label,
        "uploader": user(),
        "content_type": a.content_type,
        "state": a.state,
        "size": a.size,
        "digest": if a.state == "uploaded" { json!(format!("sha256:{}", a.sha256)) } else { Value::Null },
        "download_count": a.download_count,
        "created_at": iso_utc(a.created_ms),
        "updated_at": iso_utc(a.updated_ms),
        "browser_download_url": format!("{WEB}/{repo}/releases/download/{}/{}", percent_encode(tag), percent_encode(&a.name)),
    })
}

pub fn release_json(repo: &str, r: &Release) -> Value {
    json!({
        "url": format!("{API}/repos/{repo}/releases/{}", r.id),
        "assets_url": format!("{API}/repos/{repo}/releases/{}/assets", r.id),
        "upload_url": format!("{UPLOADS}/repos/{repo}/releases/{}/assets{{?name,label}}", r.id),
        "html_url": format!("{WEB}/{repo}/releases/tag/{}", percent_encode(&r.tag_name)),
        "id": r.id,
        "author": user(),
        "node_id": format!("RE_kwDO{:08}", r.id),
        "tag_name": r.tag_name,
        "target_commitish": r.target_commitish,
        "name": r.name,
        "draft": r.draft,
        "immutable": r.immutable,
        "prerelease": r.prerelease,
        "created_at": iso_utc(r.created_ms),
        "published_at": r.published_ms.map(iso_utc),
        "assets": r.assets.iter().map(|a| asset_json(repo, &r.tag_name, a)).collect::<Vec<_>>(),
        "tarball_url": format!("{API}/repos/{repo}/tarball/{}", r.tag_name),
        "zipball_url": format!("{API}/repos/{repo}/zipball/{}", r.tag_name),
        "body": r.body,
    })
}

/// Check the token: a wrong one is 401 everywhere; none at all is allowed for
/// reads (public repository) and refused for writes, as on github.com.
fn auth(app: &App, req: &Req) -> Option<Response> {
    let bad = || {
        Response::json(
            401,
            &json!({"message": "Bad credentials", "documentation_url": DOCS}),
        )
    };
    match req.header("authorization") {
        Some(v) => {
            let tok = v
                .strip_prefix("token ")
                .or_else(|| v.strip_prefix("Bearer "))
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or("")
                .trim();
            if tok != app.token {
                return Some(bad());
            }
            None
        }
        None if req.method == "GET" || req.method == "HEAD" => None,
        None => Some(Response::json(
            401,
            &json!({"message": "Requires authentication", "documentation_url": DOCS}),
        )),
    }
}

/// Entry for `api.github.localhost` and `uploads.github.localhost`.
pub fn handle_api(app: &App, req: &Req, uploads: bool) -> Result<Response> {
    if let Some(r) = auth(app, req) {
        return Ok(r);
    }
    let resp = route(app, req, uploads)?;
    Ok(resp
        .with_header("X-Oauth-Scopes", SCOPES)
        .with_header("X-Accepted-Oauth-Scopes", "repo")
        .with_header("X-GitHub-Media-Type", "github.v3; format=json"))
}

/// The request path's segments, percent-decoded.
fn path_segments(req: &Req) -> Vec<String> {
    req.path
        .trim_start_matches('/')
        .split('/')
        .map(percent_decode)
        .collect()
}

fn route(app: &App, req: &Req, uploads: bool) -> Result<Response> {
    let segs = path_segments(req);
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    if uploads {
        return match (m, s.as_slice()) {
            ("POST", ["repos", o, r, "releases", id, "assets"]) => {
                upload(app, req, &format!("{o}/{r}"), id)
            }
            _ => Ok(not_found()),
        };
    }
    match (m, s.as_slice()) {
        ("GET" | "HEAD", [""]) => Ok(Response::json(
            200,
            &json!({"current_user_url": format!("{API}/user"), "repository_url": format!("{API}/repos/{{owner}}/{{repo}}")}),
        )),
        ("POST", ["graphql"]) => graphql(app, req),
        ("GET", ["user"]) => Ok(Response::json(200, &user())),
        ("GET", ["repos", o, r]) => {
            let st = lock(&app.store);
            let full = format!("{o}/{r}");
            match (st.canonical(&full), st.repo(&full)) {
                (Some(name), Some(repo)) => Ok(Response::json(200, &repo_json(&name, repo.id))),
                _ => Ok(not_found()),
            }
        }
        ("GET", ["repos", o, r, "releases"]) => {
            let st = lock(&app.store);
            let full = format!("{o}/{r}");
            match (st.canonical(&full), st.repo(&full)) {
                (Some(name), Some(repo)) => {
                    let mut rels: Vec<&Release> = repo.releases.iter().collect();
                    rels.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
                    let list: Vec<Value> = rels.iter().map(|r| release_json(&name, r)).collect();
                    Ok(Response::json(200, &Value::Array(list)))
                }
                _ => Ok(not_found()),
            }
        }
        ("POST", ["repos", o, r, "releases"]) => create_release(app, req, &format!("{o}/{r}")),
        ("GET", ["repos", o, r, "releases", "latest"]) => {
            let st = lock(&app.store);
            let full = format!("{o}/{r}");
            let (Some(name), Some(repo)) = (st.canonical(&full), st.repo(&full)) else {
                return Ok(not_found());
            };
            let latest = repo
                .releases
                .iter()
                .filter(|r| !r.draft && !r.prerelease)
                .max_by_key(|r| (r.published_ms, r.id));
            Ok(match latest {
                Some(rel) => Response::json(200, &release_json(&name, rel)),
                None => not_found(),
            })
        }
        ("GET", ["repos", o, r, "releases", "tags", tag]) => {
            let st = lock(&app.store);
            let full = format!("{o}/{r}");
            let (Some(name), Some(repo)) = (st.canonical(&full), st.repo(&full)) else {
                return Ok(not_found());
            };
            // Drafts are not visible by tag on GitHub.
            Ok(
                match repo
                    .releases
                    .iter()
                    .find(|r| r.tag_name == *tag && !r.draft)
                {
                    Some(rel) => Response::json(200, &release_json(&name, rel)),
                    None => not_found(),
                },
            )
        }
        (_, ["repos", o, r, "releases", "assets", id]) => {
            asset_route(app, req, &format!("{o}/{r}"), id)
        }
        (_, ["repos", o, r, "releases", id]) => release_route(app, req, &format!("{o}/{r}"), id),
        ("GET", ["repos", o, r, "releases", id, "assets"]) => {
            let st = lock(&app.store);
            let full = format!("{o}/{r}");
            let id: u64 = id.parse().unwrap_or(0);
            let (Some(name), Some(repo)) = (st.canonical(&full), st.repo(&full)) else {
                return Ok(not_found());
            };
            Ok(match repo.releases.iter().find(|r| r.id == id) {
                Some(rel) => Response::json(
                    200,
                    &Value::Array(
                        rel.assets
                            .iter()
                            .map(|a| asset_json(&name, &rel.tag_name, a))
                            .collect(),
                    ),
                ),
                None => not_found(),
            })
        }
        ("POST", ["repos", o, r, "git", "refs"]) => create_ref(app, req, &format!("{o}/{r}")),
        ("GET", ["repos", o, r, "git", "ref" | "refs", "tags", tag]) => {
            let st = lock(&app.store);
            let full = format!("{o}/{r}");
            let (Some(name), Some(repo)) = (st.canonical(&full), st.repo(&full)) else {
                return Ok(not_found());
            };
            Ok(match repo.tags.iter().find(|t| t.name == *tag) {
                Some(t) => Response::json(200, &ref_json(&name, t)),
                None => not_found(),
            })
        }
        ("DELETE", ["repos", o, r, "git", "refs", "tags", tag]) => {
            let mut st = lock(&app.store);
            let Some(repo) = st.repo_mut(&format!("{o}/{r}")) else {
                return Ok(not_found());
            };
            let before = repo.tags.len();
            repo.tags.retain(|t| t.name != *tag);
            if repo.tags.len() == before {
                return Ok(validation(
                    "Reference",
                    "custom",
                    "ref",
                    Some("Reference does not exist"),
                ));
            }
            st.save()?;
            Ok(Response::empty(204))
        }
        _ => Ok(not_found()),
    }
}

fn repo_json(full: &str, id: u64) -> Value {
    let name = full.split('/').nth(1).unwrap_or(full);
    json!({
        "id": id, "node_id": format!("R_kgDO{id}"), "name": name, "full_name": full,
        "private": false, "owner": user(), "html_url": format!("{WEB}/{full}"),
        "url": format!("{API}/repos/{full}"), "default_branch": "main",
        "releases_url": format!("{API}/repos/{full}/releases{{/id}}"),
        "permissions": {"admin": true, "push": true, "pull": true},
    })
}

fn ref_json(full: &str, t: &Tag) -> Value {
    json!({
        "ref": format!("refs/tags/{}", t.name),
        "node_id": format!("REF_{}", t.sha),
        "url": format!("{API}/repos/{full}/git/refs/tags/{}", t.name),
        "object": {"sha": t.sha, "type": "commit", "url": format!("{API}/repos/{full}/git/commits/{}", t.sha)},
    })
}

fn body_json(req: &Req) -> Result<Value, Response> {
    if req.body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(&req.body).map_err(|_| {
        Response::json(
            400,
            &json!({"message": "Problems parsing JSON", "documentation_url": DOCS}),
        )
    })
}
