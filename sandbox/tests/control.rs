//! The `/_sandbox/` control endpoints and the request log, over plain HTTP
//! (what a test in another language or a shell script would use).

mod common;
use common::*;

#[test]
fn control_endpoints_and_request_log() {
    let sb = start();
    let r = http(
        sb.port(),
        "POST",
        "/_sandbox/seed-asset?tag=App&name=Nexy.pkg",
        &[],
        b"pkgbytes",
    );
    assert_eq!(r.status, 201);
    assert_eq!(sb.asset_bytes("App", "Nexy.pkg").unwrap(), b"pkgbytes");
    let r = http(
        sb.port(),
        "POST",
        "/_sandbox/immutable",
        &[],
        br#"{"tag":"App","immutable":true}"#,
    );
    assert_eq!(r.status, 200);
    let rel = get(
        sb.port(),
        &format!("http://api.github.localhost/repos/{REPO}/releases/tags/App"),
    )
    .json();
    assert_eq!(rel["immutable"], true);
    assert_eq!(
        http(
            sb.port(),
            "POST",
            "/_sandbox/immutable",
            &[],
            br#"{"tag":"Nope"}"#
        )
        .status,
        404
    );

    let info = get(sb.port(), "/_sandbox/info").json();
    assert_eq!(info["port"], sb.port());
    assert_eq!(info["tls_port"], sb.tls_port());

    // Every request is in the log, with method, absolute URL and status.
    assert_eq!(get(sb.port(), "/nope").status, 404);
    let log = get(sb.port(), "/_sandbox/requests").json();
    let entries = log.as_array().unwrap();
    assert!(entries.iter().any(
        |e| e["url"] == format!("http://127.0.0.1:{}/nope", sb.port())
            && e["status"] == 404
            && e["method"] == "GET"
    ));
    assert!(entries.iter().any(|e| e["kind"] == "control"
        && e["url"]
            .as_str()
            .unwrap()
            .ends_with("/_sandbox/seed-asset?tag=App&name=Nexy.pkg")
        && e["body_len"] == 8));
    // The file and the API agree.
    let file = std::fs::read_to_string(sb.state_dir().join("requests.jsonl")).unwrap();
    assert!(file.lines().count() >= entries.len());
    assert_eq!(sb.requests().len(), file.lines().count());
}

#[test]
fn api_rejects_wrong_token_and_anonymous_writes() {
    let sb = start();
    let url = format!("http://api.github.localhost/repos/{REPO}/releases/tags/Update");
    let r = http(
        sb.port(),
        "GET",
        &url,
        &[("Authorization", "token wrong")],
        b"",
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["message"], "Bad credentials");
    let r = get(sb.port(), &url);
    assert_eq!(r.status, 200, "anonymous reads of a public repository work");
    assert_eq!(r.header("x-oauth-scopes"), Some("repo, read:org"));
    let r = http(
        sb.port(),
        "POST",
        &format!("http://api.github.localhost/repos/{REPO}/releases"),
        &[],
        br#"{"tag_name":"x"}"#,
    );
    assert_eq!(r.status, 401);
}

#[test]
fn az_path_rewrite_fallback_also_maps_the_vm_dir() {
    let sb = start();
    let (out, _) = nexy_sandbox::vmrun::execute_with(
        sb.state_dir(),
        "echo FALLBACK=1 >> /home/azureuser/voice-assistant/config.env && echo ok",
        false,
    )
    .unwrap();
    assert_eq!(out, "ok\n");
    let cfg = std::fs::read_to_string(sb.vm_app_dir().join("config.env")).unwrap();
    assert!(cfg.ends_with("FALLBACK=1\n"), "{cfg}");
}
