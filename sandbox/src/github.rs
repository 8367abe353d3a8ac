//! GitHub REST/GraphQL as gh 2.23 uses it for releases (see
//! `gh-and-az.md` and the request trace): `api.github.localhost` for the API,
//! `uploads.github.localhost` for raw-byte uploads, `github.localhost` for the
//! public `releases/download` URLs, and a storage host that serves bytes.
//!
//! URLs handed out are always `*.github.localhost`: Go never proxies
//! 127.0.0.1, so a 127.0.0.1 URL would make gh connect directly and drop its
//! Authorization header.

use crate::http::{Body, Response};
use crate::server::{lock, App, Req};
use crate::store::{prev_key, Asset, Release, Store, Tag, OWNER};
use crate::util::{iso_utc, percent_decode, percent_encode};
use anyhow::{Context, Result};
use serde_json::{json, Value};

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
    if let Some(answer) = crate::tokens::handle(app, req, uploads) {
        return answer;
    }
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

pub(crate) fn route(app: &App, req: &Req, uploads: bool) -> Result<Response> {
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

fn graphql(app: &App, req: &Req) -> Result<Response> {
    let body = match body_json(req) {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    let query = body["query"].as_str().unwrap_or("");
    let vars = &body["variables"];
    if query.contains("viewer") {
        return Ok(Response::json(
            200,
            &json!({"data": {"viewer": {"login": OWNER}}}),
        ));
    }
    if query.contains("RepositoryReleaseByTag") || query.contains("release(tagName") {
        let full = format!(
            "{}/{}",
            vars["owner"].as_str().unwrap_or(""),
            vars["name"].as_str().unwrap_or("")
        );
        let tag = vars["tagName"].as_str().unwrap_or("");
        let st = lock(&app.store);
        let Some(repo) = st.repo(&full) else {
            return Ok(Response::json(
                200,
                &json!({"data": {"repository": null}, "errors": [{"type": "NOT_FOUND", "path": ["repository"],
                    "message": format!("Could not resolve to a Repository with the name '{full}'.")}]}),
            ));
        };
        // As observed: published releases come back as null (gh then uses
        // REST); only drafts carry databaseId/isDraft.
        let rel = repo
            .releases
            .iter()
            .find(|r| r.tag_name == tag && r.draft)
            .map(|r| json!({"databaseId": r.id, "isDraft": true}))
            .unwrap_or(Value::Null);
        return Ok(Response::json(
            200,
            &json!({"data": {"repository": {"release": rel}}}),
        ));
    }
    Ok(Response::json(
        200,
        &json!({"errors": [{"message": "this stand-in does not implement that GraphQL query"}]}),
    ))
}

fn create_release(app: &App, req: &Req, full: &str) -> Result<Response> {
    let body = match body_json(req) {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    let Some(tag) = body["tag_name"].as_str().filter(|t| !t.is_empty()) else {
        return Ok(validation("Release", "missing_field", "tag_name", None));
    };
    let mut st = lock(&app.store);
    let Some(name) = st.canonical(full) else {
        return Ok(not_found());
    };
    let id = st.alloc_id();
    let now = crate::util::now_ms();
    let Some(repo) = st.repo_mut(full) else {
        return Ok(not_found());
    };
    if repo.releases.iter().any(|r| r.tag_name == tag) {
        return Ok(validation("Release", "already_exists", "tag_name", None));
    }
    let draft = body["draft"].as_bool().unwrap_or(false);
    let rel = Release {
        id,
        tag_name: tag.to_string(),
        name: body["name"].as_str().unwrap_or(tag).to_string(),
        body: body["body"].as_str().unwrap_or("").to_string(),
        draft,
        prerelease: body["prerelease"].as_bool().unwrap_or(false),
        immutable: false,
        target_commitish: body["target_commitish"]
            .as_str()
            .unwrap_or("main")
            .to_string(),
        created_ms: now,
        published_ms: if draft { None } else { Some(now) },
        assets: Vec::new(),
    };
    // Publishing a release for a new tag creates the tag, as on GitHub.
    if !draft && !repo.tags.iter().any(|t| t.name == tag) {
        repo.tags.push(Tag {
            name: tag.to_string(),
            sha: crate::util::sha256_hex(tag.as_bytes())[..40].to_string(),
        });
    }
    let out = release_json(&name, &rel);
    repo.releases.push(rel);
    st.save()?;
    Ok(Response::json(201, &out)
        .with_header("Location", &format!("{API}/repos/{name}/releases/{id}")))
}

fn create_ref(app: &App, req: &Req, full: &str) -> Result<Response> {
    let body = match body_json(req) {
        Ok(v) => v,
        Err(r) => return Ok(r),
    };
    let (Some(rf), Some(sha)) = (body["ref"].as_str(), body["sha"].as_str()) else {
        return Ok(validation("Reference", "missing_field", "ref", None));
    };
    let Some(tag) = rf.strip_prefix("refs/tags/") else {
        // Branches are out of scope for this stand-in; answer as for a bad ref.
        return Ok(validation(
            "Reference",
            "custom",
            "ref",
            Some("Reference name must be refs/tags/* in this stand-in"),
        ));
    };
    let mut st = lock(&app.store);
    let Some(name) = st.canonical(full) else {
        return Ok(not_found());
    };
    let Some(repo) = st.repo_mut(full) else {
        return Ok(not_found());
    };
    if repo.tags.iter().any(|t| t.name == tag) {
        return Ok(Response::json(
            422,
            &json!({"message": "Reference already exists", "documentation_url": DOCS}),
        ));
    }
    let t = Tag {
        name: tag.to_string(),
        sha: sha.to_string(),
    };
    let out = ref_json(&name, &t);
    repo.tags.push(t);
    st.save()?;
    Ok(Response::json(201, &out))
}

fn release_route(app: &App, req: &Req, full: &str, id: &str) -> Result<Response> {
    let Ok(id) = id.parse::<u64>() else {
        return Ok(not_found());
    };
    let mut st = lock(&app.store);
    let Some(name) = st.canonical(full) else {
        return Ok(not_found());
    };
    let Some(repo) = st.repo_mut(full) else {
        return Ok(not_found());
    };
    let Some(idx) = repo.releases.iter().position(|r| r.id == id) else {
        return Ok(not_found());
    };
    match req.method.as_str() {
        "GET" => Ok(Response::json(
            200,
            &release_json(&name, &repo.releases[idx]),
        )),
        "DELETE" => {
            repo.releases.remove(idx);
            st.save()?;
            st.gc_blobs()?;
            Ok(Response::empty(204))
        }
        "PATCH" => {
            let body = match body_json(req) {
                Ok(v) => v,
                Err(r) => return Ok(r),
            };
            let rel = &mut repo.releases[idx];
            if let Some(v) = body["name"].as_str() {
                rel.name = v.to_string();
            }
            if let Some(v) = body["body"].as_str() {
                rel.body = v.to_string();
            }
            if let Some(v) = body["prerelease"].as_bool() {
                rel.prerelease = v;
            }
            if let Some(v) = body["draft"].as_bool() {
                rel.draft = v;
                if !v && rel.published_ms.is_none() {
                    rel.published_ms = Some(crate::util::now_ms());
                }
            }
            let out = release_json(&name, rel);
            st.save()?;
            Ok(Response::json(200, &out))
        }
        _ => Ok(not_found()),
    }
}

/// Fill in a storage URL that serves a blob. The host depends on how the
/// client reached us: through the proxy (names) or directly (127.0.0.1).
fn storage_url(req: &Req, app: &App, blob: &str, name: &str) -> String {
    let base = if req.direct {
        format!("http://127.0.0.1:{}", app.port)
    } else {
        STORAGE.to_string()
    };
    format!(
        "{base}/_storage/{blob}/{}?X-Sandbox-Signature={}",
        percent_encode(name),
        &crate::util::sha256_hex(format!("{blob}{name}").as_bytes())[..16]
    )
}

fn asset_route(app: &App, req: &Req, full: &str, id: &str) -> Result<Response> {
    let Ok(id) = id.parse::<u64>() else {
        return Ok(not_found());
    };
    let mut st = lock(&app.store);
    let Some(name) = st.canonical(full) else {
        return Ok(not_found());
    };
    let Some((ri, ai)) = st.find_asset(full, id) else {
        return Ok(not_found());
    };
    let Some(repo) = st.repo_mut(full) else {
        return Ok(not_found());
    };
    let rel = &mut repo.releases[ri];
    let tag = rel.tag_name.clone();
    match req.method.as_str() {
        "GET" | "HEAD" => {
            let wants_bytes = req
                .header("accept")
                .map(|a| a.contains("application/octet-stream"))
                .unwrap_or(false);
            if !wants_bytes {
                return Ok(Response::json(
                    200,
                    &asset_json(&name, &tag, &rel.assets[ai]),
                ));
            }
            let a = &mut rel.assets[ai];
            if a.state != "uploaded" {
                return Ok(not_found());
            }
            // Counted in memory; the next change of the store writes it.
            a.download_count += 1;
            let url = storage_url(req, app, &a.blob.clone(), &a.name.clone());
            Ok(Response::empty(302).with_header("Location", &url))
        }
        "DELETE" => {
            if rel.immutable {
                return Ok(immutable("Cannot delete assets from an immutable release."));
            }
            let a = rel.assets.remove(ai);
            let key = prev_key(&name, &tag, &a.name);
            if a.state == "uploaded" {
                st.note_removed(key, a.blob);
            }
            st.save()?;
            st.gc_blobs()?;
            Ok(Response::empty(204))
        }
        "PATCH" => {
            if rel.immutable {
                return Ok(immutable("Cannot update assets of an immutable release."));
            }
            let body = match body_json(req) {
                Ok(v) => v,
                Err(r) => return Ok(r),
            };
            let mut renamed = None;
            if let Some(new) = body["name"].as_str() {
                if new != rel.assets[ai].name {
                    if rel.assets.iter().any(|a| a.name == new) {
                        return Ok(validation("ReleaseAsset", "already_exists", "name", None));
                    }
                    renamed = Some((rel.assets[ai].name.clone(), new.to_string()));
                    rel.assets[ai].name = new.to_string();
                }
            }
            if let Some(l) = body["label"].as_str() {
                rel.assets[ai].label = l.to_string();
            }
            rel.assets[ai].updated_ms = crate::util::now_ms();
            let out = asset_json(&name, &tag, &rel.assets[ai]);
            let blob = rel.assets[ai].blob.clone();
            if let Some((old, new)) = renamed {
                st.note_removed(prev_key(&name, &tag, &old), blob);
                st.note_added(prev_key(&name, &tag, &new));
            }
            st.save()?;
            Ok(Response::json(200, &out))
        }
        _ => Ok(not_found()),
    }
}

/// Raw-byte upload (`POST uploads.../releases/ID/assets?name=&label=`).
/// The body was already read by the connection layer; `req.cut` says the
/// upload-cut fault stopped it early, which leaves a `starter` asset behind
/// and drops the connection without an answer.
fn upload(app: &App, req: &Req, full: &str, id: &str) -> Result<Response> {
    let Ok(id) = id.parse::<u64>() else {
        return Ok(not_found());
    };
    let q = crate::util::parse_query(&req.query);
    let get = |k: &str| {
        q.iter()
            .find(|(a, _)| a == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    // GitHub replaces spaces (and other special characters) in asset names.
    let asset_name = get("name").replace(' ', ".");
    let label = get("label");
    if asset_name.is_empty() {
        return Ok(validation("ReleaseAsset", "missing_field", "name", None));
    }
    if let Some(status) = req.fail_status {
        return Ok(Response::json(
            status,
            &json!({"message": "Server Error (sandbox fault)", "documentation_url": DOCS}),
        )
        .with_header("Connection", "close"));
    }
    // The body is written and hashed outside the store lock: GitHub goes
    // on answering other requests (downloads of the live assets above all)
    // while a large upload lands. The asset appears only once complete, and
    // the checks run again under the lock, since the release may have
    // changed meanwhile. The dot-name keeps `gc_blobs` off the partial blob.
    let (aid, tmp, path) = {
        let mut st = lock(&app.store);
        if let Err(r) = upload_target(&mut st, full, id, &asset_name) {
            return Ok(r);
        }
        let aid = st.alloc_id();
        (
            aid,
            st.blob_path(&format!(".upload-{aid}")),
            st.blob_path(&aid.to_string()),
        )
    };
    if let Err(err) = std::fs::write(&tmp, &req.body) {
        // The dot-name keeps gc_blobs off it, so it is removed here.
        let _ = std::fs::remove_file(&tmp);
        return Err(err).with_context(|| format!("write {}", tmp.display()));
    }
    let sha256 = crate::util::sha256_hex(&req.body);
    let mut st = lock(&app.store);
    let (name, rel) = match upload_target(&mut st, full, id, &asset_name) {
        Ok(found) => found,
        Err(r) => {
            let _ = std::fs::remove_file(&tmp);
            return Ok(r);
        }
    };
    if let Err(err) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err).with_context(|| format!("rename to {}", path.display()));
    }
    let now = crate::util::now_ms();
    let a = Asset {
        id: aid,
        name: asset_name.clone(),
        label,
        content_type: req
            .header("content-type")
            .unwrap_or("application/octet-stream")
            .to_string(),
        size: req.body.len() as u64,
        state: if req.cut { "starter" } else { "uploaded" }.to_string(),
        sha256,
        created_ms: now,
        updated_ms: now,
        download_count: 0,
        blob: aid.to_string(),
    };
    let tag = rel.tag_name.clone();
    let out = asset_json(&name, &tag, &a);
    rel.assets.push(a);
    if !req.cut {
        st.note_added(prev_key(&name, &tag, &asset_name));
    }
    st.save()?;
    if req.cut {
        let mut r = Response::empty(500);
        r.abort = true;
        return Ok(r);
    }
    Ok(Response::json(201, &out))
}

/// The release an upload goes to, with the repository's canonical name,
/// or GitHub's answer when there is none or it refuses the asset.
fn upload_target<'a>(
    st: &'a mut Store,
    full: &str,
    id: u64,
    asset_name: &str,
) -> std::result::Result<(String, &'a mut crate::store::Release), Response> {
    let name = st.canonical(full).ok_or_else(not_found)?;
    let rel = st
        .repo_mut(full)
        .and_then(|repo| repo.releases.iter_mut().find(|r| r.id == id))
        .ok_or_else(not_found)?;
    if rel.immutable {
        return Err(immutable("Cannot upload assets to an immutable release."));
    }
    if rel.assets.iter().any(|a| a.name == asset_name) {
        return Err(validation("ReleaseAsset", "already_exists", "name", None));
    }
    Ok((name, rel))
}

/// `GET /<owner>/<repo>/releases/download/<tag>/<name>` on `github.localhost`
/// or on the stand-in's own address: 302 to storage, 404 when missing.
pub fn public_download(app: &App, req: &Req, stale_secs: u64) -> Result<Response> {
    let segs = path_segments(req);
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let [o, r, "releases", "download", tag, file] = s.as_slice() else {
        return Ok(Response::text(404, "Not Found"));
    };
    let full = format!("{o}/{r}");
    let mut st = lock(&app.store);
    let Some(name) = st.canonical(&full) else {
        return Ok(Response::text(404, "Not Found"));
    };
    let key = prev_key(&name, tag, file);
    if stale_secs > 0 {
        if let Some(p) = st.prev.get(&key) {
            if crate::util::now_ms().saturating_sub(p.changed_ms) < stale_secs * 1000 {
                return Ok(match p.blob.clone() {
                    Some(b) => Response::empty(302)
                        .with_header("Location", &storage_url(req, app, &b, file)),
                    None => Response::text(404, "Not Found"),
                });
            }
        }
    }
    let Some(repo) = st.repo_mut(&full) else {
        return Ok(Response::text(404, "Not Found"));
    };
    let Some(rel) = repo
        .releases
        .iter_mut()
        .find(|x| x.tag_name == *tag && !x.draft)
    else {
        return Ok(Response::text(404, "Not Found"));
    };
    let Some(a) = rel
        .assets
        .iter_mut()
        .find(|a| a.name == *file && a.state == "uploaded")
    else {
        return Ok(Response::text(404, "Not Found"));
    };
    // Counted in memory, not written per download: a poller asks every
    // 10 ms, and rewriting the state file each time would slow every other
    // request. The next change of the store writes the count.
    a.download_count += 1;
    let (blob, n) = (a.blob.clone(), a.name.clone());
    Ok(Response::empty(302).with_header("Location", &storage_url(req, app, &blob, &n)))
}

/// `GET /_storage/<blob>/<name>`: the bytes (the download-drop fault may cut
/// them, applied by the caller).
pub fn storage(app: &App, req: &Req) -> Result<Response> {
    let rest = req.path.trim_start_matches("/_storage/");
    let blob = rest.split('/').next().unwrap_or("");
    if blob.is_empty() || blob.contains("..") || blob.starts_with('.') {
        return Ok(Response::text(404, "Not Found"));
    }
    let st: std::sync::MutexGuard<'_, Store> = lock(&app.store);
    let path = st.blob_path(blob);
    let Ok(meta) = std::fs::metadata(&path) else {
        return Ok(Response::text(404, "Not Found"));
    };
    let mut r = Response::empty(200);
    r.headers
        .push(("Content-Type".into(), "application/octet-stream".into()));
    r.body = Body::File(path, meta.len());
    Ok(r)
}
