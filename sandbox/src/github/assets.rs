//! Assets: reading, renaming and deleting one, the raw-byte upload with
//! its faults, the public `releases/download` URL and the storage host.

use super::*;

/// Fill in a storage URL that serves a blob. The host depends on how the
/// client reached us: through the proxy (names) or directly (127.0.0.1).
pub(super) fn storage_url(req: &Req, app: &App, blob: &str, name: &str) -> String {
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

pub(super) fn asset_route(app: &App, req: &Req, full: &str, id: &str) -> Result<Response> {
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
pub(super) fn upload(app: &App, req: &Req, full: &str, id: &str) -> Result<Response> {
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
pub(super) fn upload_target<'a>(
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
