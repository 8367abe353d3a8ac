//! How the stand-in answers `gh auth status` and the token checks of
//! preflight, for gh 2.23 (`GET /` first, then the GraphQL `UserCurrent`)
//! and for newer gh (GraphQL first, stopping on its 401), and for a valid
//! token that cannot write (the `read_only_token` knob).

mod common;
use common::*;
use nexy_sandbox::Faults;

const API: &str = "http://api.github.localhost";
const VIEWER: &[u8] = br#"{"query":"query UserCurrent{viewer{login}}"}"#;

fn root(sb: &nexy_sandbox::Sandbox, token: &str) -> Resp {
    let auth = format!("token {token}");
    http(
        sb.port(),
        "GET",
        &format!("{API}/"),
        &[("Authorization", &auth)],
        b"",
    )
}

fn viewer(sb: &nexy_sandbox::Sandbox, token: &str) -> Resp {
    let auth = format!("token {token}");
    http(
        sb.port(),
        "POST",
        &format!("{API}/graphql"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        VIEWER,
    )
}

#[test]
fn both_request_orders_of_gh_auth_status_are_answered() {
    let sb = start();
    let token = sb.token().to_string();
    // gh 2.23: GET / (scopes in a header), then the viewer.
    let r = root(&sb, &token);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Oauth-Scopes"), Some("repo, read:org"));
    let v = viewer(&sb, &token);
    assert_eq!(v.status, 200);
    assert_eq!(v.json()["data"]["viewer"]["login"], "Seregawpn");
    // Newer gh: the viewer first, then GET /; the same answers.
    let v = viewer(&sb, &token);
    assert_eq!(v.json()["data"]["viewer"]["login"], "Seregawpn");
    assert_eq!(root(&sb, &token).status, 200);
    // A bad token: newer gh stops on the viewer's 401, 2.23 on GET /'s.
    let v = viewer(&sb, "wrong");
    assert_eq!(v.status, 401);
    assert_eq!(v.json()["message"], "Bad credentials");
    assert_eq!(root(&sb, "wrong").status, 401);
}

#[test]
fn a_read_only_token_is_valid_but_cannot_write() {
    let sb = start();
    sb.set_faults(Faults {
        read_only_token: Some("reader".into()),
        ..Faults::default()
    })
    .unwrap();
    // Valid: gh auth status is content, and sees no scopes to complain of.
    let r = root(&sb, "reader");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Oauth-Scopes"), None);
    assert_eq!(
        viewer(&sb, "reader").json()["data"]["viewer"]["login"],
        "nexy-reader"
    );
    let mut cmd = std::process::Command::new(GH);
    cmd.args(["auth", "status", "--hostname", "github.localhost"])
        .envs(sb.env())
        .env("GH_TOKEN", "reader")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let o = run_cmd(cmd, std::time::Duration::from_secs(60));
    assert_eq!(o.code, 0, "{}{}\n{:#?}", o.stdout, o.stderr, sb.requests());

    let auth = [("Authorization", "token reader")];
    let user = http(sb.port(), "GET", &format!("{API}/user"), &auth, b"");
    assert_eq!(user.json()["login"], "nexy-reader");
    let repo = http(sb.port(), "GET", &format!("{API}/repos/{REPO}"), &auth, b"");
    assert_eq!(repo.status, 200);
    assert_eq!(repo.json()["permissions"]["push"], false);
    assert_eq!(repo.json()["permissions"]["pull"], true);
    // Reads work, writes are refused as GitHub refuses them.
    let tag = http(
        sb.port(),
        "GET",
        &format!("{API}/repos/{REPO}/releases/tags/Update"),
        &auth,
        b"",
    );
    assert_eq!(tag.status, 200);
    let id = tag.json()["id"].as_u64().unwrap();
    let up = http(
        sb.port(),
        "POST",
        &format!("http://uploads.github.localhost/repos/{REPO}/releases/{id}/assets?name=x.dmg"),
        &auth,
        b"bytes",
    );
    assert_eq!(up.status, 403);
    assert_eq!(
        up.json()["message"],
        "Resource not accessible by personal access token"
    );
    // The sandbox's own token still can.
    let full = format!("token {}", sb.token());
    let repo = http(
        sb.port(),
        "GET",
        &format!("{API}/repos/{REPO}"),
        &[("Authorization", &full)],
        b"",
    );
    assert_eq!(repo.json()["permissions"]["push"], true);
}
