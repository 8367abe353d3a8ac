//! A second, valid token that can read the assets repository but not
//! write to it: a fine-grained token with `Contents: read`, as an operator
//! may hand a release by mistake. Switched on with the `read_only_token`
//! fault knob; requests that carry it are answered here.
//!
//! What GitHub does for such a token: it authenticates (`GET /user` and
//! the GraphQL `viewer` name its account), it sends no `X-OAuth-Scopes`
//! header (fine-grained and Actions tokens have no scopes), the
//! repository's `permissions` say `push: false`, and every write answers
//! 403 "Resource not accessible by personal access token". gh's
//! `auth status` therefore sees nothing wrong: only the repository's
//! permissions, or the first upload, tell.

use crate::app::{App, Req};
use crate::github::{self, API, WEB};
use crate::http::{Body, Response};
use anyhow::Result;
use serde_json::json;

/// The account the read-only token belongs to.
pub const READER: &str = "nexy-reader";

/// The answer for a request that carries the read-only token, or `None`
/// when it carries another one (or none).
pub fn handle(app: &App, req: &Req, uploads: bool) -> Option<Result<Response>> {
    let token = app.faults_snapshot().read_only_token?;
    let sent = req.header("authorization")?;
    let sent = sent
        .strip_prefix("token ")
        .or_else(|| sent.strip_prefix("Bearer "))
        .or_else(|| sent.strip_prefix("bearer "))?
        .trim();
    if sent != token {
        return None;
    }
    Some(
        answer(app, req, uploads)
            .map(|r| r.with_header("X-GitHub-Media-Type", "github.v3; format=json")),
    )
}

fn answer(app: &App, req: &Req, uploads: bool) -> Result<Response> {
    let path = req.path.trim_end_matches('/');
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let graphql = !uploads && req.method == "POST" && path == "/graphql";
    if graphql {
        let body = String::from_utf8_lossy(&req.body);
        if body.contains("viewer") {
            return Ok(Response::json(
                200,
                &json!({"data": {"viewer": {"login": READER}}}),
            ));
        }
        // Other queries only read.
        return github::route(app, req, uploads);
    }
    let writes = uploads || !matches!(req.method.as_str(), "GET" | "HEAD");
    if writes {
        return Ok(Response::json(
            403,
            &json!({"message": "Resource not accessible by personal access token",
                    "documentation_url": "https://docs.github.com/rest/releases/assets",
                    "status": "403"}),
        ));
    }
    match segs.as_slice() {
        ["user"] => Ok(Response::json(
            200,
            &json!({"login": READER, "id": 4343, "type": "User",
                    "url": format!("{API}/users/{READER}"), "html_url": format!("{WEB}/{READER}")}),
        )),
        ["repos", _, _] => {
            let mut resp = github::route(app, req, uploads)?;
            if let (200, Body::Bytes(bytes)) = (resp.status, &resp.body) {
                if let Ok(mut repo) = serde_json::from_slice::<serde_json::Value>(bytes) {
                    repo["permissions"] = json!({"admin": false, "maintain": false,
                        "push": false, "triage": false, "pull": true});
                    resp = Response::json(200, &repo);
                }
            }
            Ok(resp)
        }
        _ => github::route(app, req, uploads),
    }
}
