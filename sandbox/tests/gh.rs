//! The real gh 2.23 (/usr/bin/gh) against the stand-in: outputs and exit
//! codes as recorded in gh-and-az.md.

mod common;
use common::*;
use nexy_sandbox::Options;

fn asset_names(sb: &nexy_sandbox::Sandbox, tag: &str) -> Vec<String> {
    let r = get(
        sb.port(),
        &format!("http://api.github.localhost/repos/{REPO}/releases/tags/{tag}"),
    );
    assert_eq!(r.status, 200);
    r.json()["assets"]
        .as_array()
        .expect("assets")
        .iter()
        .map(|a| a["name"].as_str().expect("name").to_string())
        .collect()
}

#[test]
fn gh_auth_status_ok() {
    let sb = start();
    let o = gh(&sb, &["auth", "status", "--hostname", "github.localhost"]);
    // gh 2.23 prints to stderr, 2.31 and later to stdout; 2.40 and later
    // word it per account.
    let said = format!("{}{}", o.stdout, o.stderr);
    assert_eq!(o.code, 0, "{said}");
    assert!(
        said.contains("Logged in to github.localhost as Seregawpn")
            || said.contains("Logged in to github.localhost account Seregawpn"),
        "{said}"
    );
    assert!(
        said.contains("Token scopes: repo, read:org")
            || said.contains("Token scopes: 'repo', 'read:org'"),
        "{said}"
    );
    let log = sb.requests();
    assert!(log
        .iter()
        .any(|r| r.method == "GET" && r.url == "http://api.github.localhost/" && r.status == 200));
    assert!(log
        .iter()
        .all(|r| r.method == "CONNECT" || r.url.contains("github.localhost")));
}

#[test]
fn gh_auth_status_wrong_token() {
    let sb = start_with(Options {
        token: "the-right-token".into(),
        ..Default::default()
    });
    let mut cmd = std::process::Command::new(GH);
    cmd.args(["auth", "status", "--hostname", "github.localhost"])
        .env_clear()
        .env("HOME", sb.state_dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in sb.env() {
        cmd.env(
            &k,
            if k == "GH_TOKEN" {
                "wrong-token".to_string()
            } else {
                v
            },
        );
    }
    let o = run_cmd(cmd, std::time::Duration::from_secs(60));
    let said = format!("{}{}", o.stdout, o.stderr);
    assert_eq!(o.code, 1);
    // gh 2.23 says "authentication failed"; 2.40 and later "Failed to log
    // in to github.localhost using token (GH_TOKEN)".
    assert!(
        said.contains("authentication failed") || said.contains("Failed to log in"),
        "{said}"
    );
    assert!(sb
        .requests()
        .iter()
        .any(|r| r.url == "http://api.github.localhost/" && r.status == 401));
}

#[test]
fn gh_connect_is_refused() {
    let sb = start();
    let r = http(sb.port(), "CONNECT", "api.github.com:443", &[], b"");
    assert_eq!(r.status, 403);
    assert!(sb
        .requests()
        .iter()
        .any(|r| r.method == "CONNECT" && r.status == 403));
}

#[test]
fn gh_release_view_plain_json_and_missing() {
    let sb = start();
    sb.seed_asset("Update", "LATEST_CHANGES.md", b"# notes\n")
        .unwrap();
    let o = gh(&sb, &["release", "view", "Update", "-R", REPO]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("tag:\tUpdate"), "{}", o.stdout);
    assert!(o.stdout.contains("LATEST_CHANGES.md"), "{}", o.stdout);

    let o = gh(
        &sb,
        &["release", "view", "Update", "-R", REPO, "--json", "assets"],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let a = &v["assets"][0];
    assert_eq!(a["name"], "LATEST_CHANGES.md");
    assert_eq!(a["size"], 8);
    assert_eq!(a["state"], "uploaded");
    assert!(a["apiUrl"]
        .as_str()
        .unwrap()
        .starts_with("http://api.github.localhost/"));
    assert_eq!(
        a["url"],
        format!("http://github.localhost/{REPO}/releases/download/Update/LATEST_CHANGES.md")
    );

    let o = gh(&sb, &["release", "view", "NoSuchTag", "-R", REPO]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("release not found"), "{}", o.stderr);
    // gh asks both REST and GraphQL, as in the trace.
    let log = sb.requests();
    assert!(log
        .iter()
        .any(|r| r.url.ends_with("/releases/tags/NoSuchTag") && r.status == 404));
    assert!(log
        .iter()
        .any(|r| r.url == "http://api.github.localhost/graphql"
            && r.body.as_deref().unwrap_or("").contains("NoSuchTag")));
}

#[test]
fn gh_upload_fresh_duplicate_and_clobber() {
    let sb = start();
    let dir = scratch(&sb, "up");
    let v1 = bytes(300_000, 1);
    let f = write_file(&dir, "Nexy.dmg", &v1);
    let f = f.to_str().unwrap();
    let o = gh(&sb, &["release", "upload", "Update", f, "-R", REPO]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(sb.asset_bytes("Update", "Nexy.dmg").unwrap(), v1);
    let up = sb
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.url.starts_with("http://uploads.github.localhost/"))
        .unwrap();
    assert_eq!(up.url, format!("http://uploads.github.localhost/repos/{REPO}/releases/1001/assets?label=&name=Nexy.dmg"));
    assert_eq!(up.body_len, 300_000);
    assert_eq!(up.status, 201);

    // Without --clobber gh refuses on its own side: nothing is sent.
    let before = sb.requests().len();
    let v2 = bytes(200_000, 2);
    std::fs::write(f, &v2).unwrap();
    let o = gh(&sb, &["release", "upload", "Update", f, "-R", REPO]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("asset under the same name already exists"),
        "{}",
        o.stderr
    );
    assert!(sb.requests()[before..]
        .iter()
        .all(|r| r.method != "DELETE" && !r.url.contains("uploads.")));
    assert_eq!(sb.asset_bytes("Update", "Nexy.dmg").unwrap(), v1);

    // With --clobber: DELETE, then POST.
    let before = sb.requests().len();
    let o = gh(
        &sb,
        &["release", "upload", "Update", f, "-R", REPO, "--clobber"],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(sb.asset_bytes("Update", "Nexy.dmg").unwrap(), v2);
    let after = sb.requests();
    let del = after[before..]
        .iter()
        .position(|r| r.method == "DELETE")
        .unwrap();
    let post = after[before..]
        .iter()
        .position(|r| r.url.contains("uploads."))
        .unwrap();
    assert!(del < post);
    let up = &after[before + post];
    assert_eq!(up.status, 201);
    assert_eq!(up.body_len, 200_000);
}

#[test]
fn gh_upload_duplicate_raw_answers_422() {
    let sb = start();
    sb.seed_asset("Update", "Nexy.dmg", b"x").unwrap();
    let auth = format!("token {}", sb.token());
    let r = http(
        sb.port(),
        "POST",
        &format!("http://uploads.github.localhost/repos/{REPO}/releases/1001/assets?name=Nexy.dmg&label="),
        &[("Authorization", &auth), ("Content-Type", "application/x-apple-diskimage")],
        b"abc",
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["errors"][0]["code"], "already_exists");
}

#[test]
fn gh_delete_asset_present_and_missing() {
    let sb = start();
    sb.seed_asset("App", "Nexy.pkg", b"pkg").unwrap();
    let o = gh(
        &sb,
        &[
            "release",
            "delete-asset",
            "App",
            "Nexy.pkg",
            "-R",
            REPO,
            "--yes",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(asset_names(&sb, "App").is_empty());
    assert!(sb
        .requests()
        .iter()
        .any(|r| r.method == "DELETE" && r.status == 204));
    let o = gh(
        &sb,
        &[
            "release",
            "delete-asset",
            "App",
            "Nexy.pkg",
            "-R",
            REPO,
            "--yes",
        ],
    );
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("asset Nexy.pkg not found in release App"),
        "{}",
        o.stderr
    );
}

#[test]
fn gh_download_is_byte_identical() {
    let sb = start();
    let data = bytes(1_234_567, 3);
    sb.seed_asset("Update", "Nexy.dmg", &data).unwrap();
    let dir = scratch(&sb, "dl");
    let o = gh_download(
        &sb,
        "Update",
        "Nexy.dmg",
        dir.to_str().unwrap(),
        &["--clobber"],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(std::fs::read(dir.join("Nexy.dmg")).unwrap(), data);
    let log = sb.requests();
    assert!(log
        .iter()
        .any(|r| r.url.contains("/releases/assets/") && r.status == 302));
    assert!(log.iter().any(|r| r
        .url
        .starts_with("http://objects.github.localhost/_storage/")
        && r.status == 200));
}

#[test]
fn gh_api_digest_rename_and_404() {
    let sb = start();
    let dir = scratch(&sb, "api");
    let data = bytes(50_000, 4);
    let f = write_file(&dir, "Nexy.dmg", &data);
    let o = gh_upload(&sb, "Update", f.to_str().unwrap(), &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);

    let o = gh(&sb, &["api", &format!("repos/{REPO}/releases/tags/Update")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let a = &v["assets"][0];
    assert_eq!(a["digest"], format!("sha256:{}", sha256_hex(&data)));
    assert_eq!(v["immutable"], false);
    for k in [
        "id",
        "name",
        "size",
        "url",
        "browser_download_url",
        "content_type",
        "state",
        "created_at",
        "updated_at",
        "download_count",
        "label",
        "node_id",
    ] {
        assert!(a.get(k).is_some(), "asset lacks {k}");
    }
    assert!(a["url"]
        .as_str()
        .unwrap()
        .starts_with("http://api.github.localhost/"));
    let id = a["id"].as_u64().unwrap();

    let o = gh(
        &sb,
        &[
            "api",
            "-X",
            "PATCH",
            &format!("repos/{REPO}/releases/assets/{id}"),
            "-f",
            "name=Nexy-renamed.dmg",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["name"], "Nexy-renamed.dmg");
    assert_eq!(
        asset_names(&sb, "Update"),
        vec!["Nexy-renamed.dmg".to_string()]
    );
    assert!(sb.requests().iter().any(
        |r| r.method == "PATCH" && r.body.as_deref() == Some("{\"name\":\"Nexy-renamed.dmg\"}")
    ));

    let o = gh(
        &sb,
        &["api", &format!("repos/{REPO}/releases/assets/999999")],
    );
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("gh: Not Found (HTTP 404)"),
        "{}",
        o.stderr
    );
}

#[test]
fn gh_api_creating_release_and_tag_is_visible_in_log() {
    let sb = start();
    let o = gh(
        &sb,
        &[
            "api",
            "-X",
            "POST",
            &format!("repos/{REPO}/releases"),
            "-f",
            "tag_name=v9",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = gh(
        &sb,
        &[
            "api",
            "-X",
            "POST",
            &format!("repos/{REPO}/releases"),
            "-f",
            "tag_name=Update",
        ],
    );
    assert_eq!(o.code, 1, "a second release for a tag is refused");
    let o = gh(
        &sb,
        &[
            "api",
            "-X",
            "POST",
            &format!("repos/{REPO}/git/refs"),
            "-f",
            "ref=refs/tags/t1",
            "-f",
            "sha=0123456789012345678901234567890123456789",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = gh(
        &sb,
        &[
            "api",
            "-X",
            "POST",
            &format!("repos/{REPO}/git/refs"),
            "-f",
            "ref=refs/tags/Update",
            "-f",
            "sha=0123456789012345678901234567890123456789",
        ],
    );
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("Reference already exists"),
        "{}",
        o.stderr
    );
    let log = sb.requests();
    let creates: Vec<_> = log
        .iter()
        .filter(|r| {
            r.method == "POST" && (r.url.ends_with("/releases") || r.url.ends_with("/git/refs"))
        })
        .map(|r| r.status)
        .collect();
    assert_eq!(creates, vec![201, 422, 201, 422]);
}

#[test]
fn gh_immutable_release_refuses_changes() {
    let sb = start();
    sb.seed_asset("Update", "Nexy.dmg", b"old").unwrap();
    sb.set_immutable("Update", true).unwrap();
    let o = gh(&sb, &["api", &format!("repos/{REPO}/releases/tags/Update")]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v["immutable"], true);
    let id = v["assets"][0]["id"].as_u64().unwrap();

    let dir = scratch(&sb, "imm");
    let f = write_file(&dir, "Other.dmg", b"new");
    let o = gh(
        &sb,
        &[
            "release",
            "upload",
            "Update",
            f.to_str().unwrap(),
            "-R",
            REPO,
        ],
    );
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("immutable"), "{}", o.stderr);
    let o = gh(
        &sb,
        &[
            "release",
            "delete-asset",
            "Update",
            "Nexy.dmg",
            "-R",
            REPO,
            "--yes",
        ],
    );
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("immutable") || o.stderr.contains("422"),
        "{}",
        o.stderr
    );
    let o = gh(
        &sb,
        &[
            "api",
            "-X",
            "PATCH",
            &format!("repos/{REPO}/releases/assets/{id}"),
            "-f",
            "name=x.dmg",
        ],
    );
    assert_eq!(o.code, 1);
    assert!(
        o.stdout.contains("immutable") || o.stderr.contains("immutable"),
        "{} {}",
        o.stdout,
        o.stderr
    );
    assert_eq!(sb.asset_bytes("Update", "Nexy.dmg").unwrap(), b"old");
    assert_eq!(sb.requests().iter().filter(|r| r.status == 422).count(), 3);

    sb.set_immutable("Update", false).unwrap();
    let o = gh_upload(&sb, "Update", f.to_str().unwrap(), &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

#[test]
fn public_download_url_direct_and_proxied() {
    let sb = start();
    let data = bytes(10_000, 5);
    sb.seed_asset("Update", "Nexy.dmg", &data).unwrap();
    let path = format!("/{REPO}/releases/download/Update/Nexy.dmg");
    assert_eq!(
        sb.direct_download_url("Update", "Nexy.dmg"),
        format!("{}{path}", sb.base_url())
    );
    assert_eq!(
        sb.public_download_url("Update", "Nexy.dmg"),
        format!("http://github.localhost{path}")
    );
    let r = get(sb.port(), &path);
    assert_eq!(r.status, 302);
    assert!(r
        .header("location")
        .unwrap()
        .starts_with(&format!("http://127.0.0.1:{}/_storage/", sb.port())));
    assert_eq!(get_follow(sb.port(), &path).body, data);

    let proxied = format!("http://github.localhost{path}");
    let r = get(sb.port(), &proxied);
    assert_eq!(r.status, 302);
    assert!(r
        .header("location")
        .unwrap()
        .starts_with("http://objects.github.localhost/_storage/"));
    assert_eq!(get_follow(sb.port(), &proxied).body, data);

    assert_eq!(
        get(
            sb.port(),
            &format!("/{REPO}/releases/download/Update/Missing.dmg")
        )
        .status,
        404
    );
    assert_eq!(
        get(
            sb.port(),
            &format!("http://github.localhost/{REPO}/releases/download/Nope/Nexy.dmg")
        )
        .status,
        404
    );
}

#[test]
fn gh_auth_status_without_hostname_probes_github_com_which_is_refused() {
    let sb = start();
    let o = gh(&sb, &["auth", "status"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("Logged in to github.localhost"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("github.com: authentication failed"),
        "{}",
        o.stderr
    );
    let log = sb.requests();
    assert!(log.iter().any(|r| r.method == "CONNECT"
        && r.url == "https://api.github.com:443"
        && r.status == 403));
}
