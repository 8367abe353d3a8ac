//! Releases and refs: the GraphQL query gh makes, creating a release or a
//! ref (which this tool must never cause; the stand-in records them), and
//! reading, editing and deleting a release.

use super::*;

pub(super) fn graphql(app: &App, req: &Req) -> Result<Response> {
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

pub(super) fn create_release(app: &App, req: &Req, full: &str) -> Result<Response> {
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

pub(super) fn create_ref(app: &App, req: &Req, full: &str) -> Result<Response> {
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

pub(super) fn release_route(app: &App, req: &Req, full: &str, id: &str) -> Result<Response> {
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
