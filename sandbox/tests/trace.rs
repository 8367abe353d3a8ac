//! Replays the commands of the recorded gh 2.23 trace (`tests/data/`, a copy
//! of the shared reference) against the stand-in and checks that gh sends the
//! same requests (method, absolute URL, GraphQL body) and gets the same
//! statuses. Asset ids differ between runs and are normalised. One known,
//! deliberate difference: the asset download answers 302 to storage (as
//! github.com does) where the recorder answered 200 directly.

mod common;
use common::*;

type Key = (String, String, i64, String);

fn norm_url(u: &str) -> String {
    match u.find("/releases/assets/") {
        Some(i) => format!("{}/releases/assets/N", &u[..i]),
        None => u.to_string(),
    }
}

fn trace_for(cmd: &str) -> Vec<Key> {
    let text = include_str!("data/gh-2.23-trace.jsonl");
    let mut v: Vec<Key> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|d| d["cmd"] == cmd)
        .map(|d| {
            let method = d["method"].as_str().unwrap().to_string();
            let url = norm_url(d["target"].as_str().unwrap());
            let mut status = d["status"].as_i64().unwrap();
            if method == "GET" && url.ends_with("/releases/assets/N") && cmd == "e-download" {
                status = 302;
            }
            let body = if url.ends_with("/graphql") {
                d["body"].as_str().unwrap().to_string()
            } else {
                String::new()
            };
            (method, url, status, body)
        })
        .collect();
    v.sort();
    v
}

fn ours_since(sb: &nexy_sandbox::Sandbox, from: usize) -> Vec<Key> {
    let mut v: Vec<Key> = sb.requests()[from..]
        .iter()
        .filter(|r| {
            r.url.starts_with("http://api.github.localhost/")
                || r.url.starts_with("http://uploads.github.localhost/")
        })
        .map(|r| {
            let url = norm_url(&r.url);
            let body = if url.ends_with("/graphql") {
                r.body.clone().unwrap_or_default()
            } else {
                String::new()
            };
            (r.method.clone(), url, r.status, body)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn gh_requests_match_the_recorded_trace() {
    let sb = start();
    let dir = scratch(&sb, "trace");
    let f = write_file(&dir, "Nexy.dmg", &bytes(300_000, 21));
    let f = f.to_str().unwrap();
    let dl = scratch(&sb, "trace-dl");
    let dl = dl.to_str().unwrap();
    sb.seed_asset("Update", "Nexy.dmg", b"existing").unwrap();
    let steps: Vec<(&str, Vec<&str>, i32)> = vec![
        (
            "a-auth-status",
            vec!["auth", "status", "--hostname", "github.localhost"],
            0,
        ),
        ("b-view", vec!["release", "view", "Update", "-R", REPO], 0),
        (
            "b-view-json",
            vec!["release", "view", "Update", "-R", REPO, "--json", "assets"],
            0,
        ),
        (
            "c-upload-noclobber",
            vec!["release", "upload", "Update", f, "-R", REPO],
            1,
        ),
        (
            "c-upload-clobber",
            vec!["release", "upload", "Update", f, "-R", REPO, "--clobber"],
            0,
        ),
        (
            "d-delete-asset",
            vec![
                "release",
                "delete-asset",
                "Update",
                "Nexy.dmg",
                "-R",
                REPO,
                "--yes",
            ],
            0,
        ),
        (
            "c-upload-fresh",
            vec!["release", "upload", "Update", f, "-R", REPO],
            0,
        ),
        (
            "e-download",
            vec![
                "release",
                "download",
                "Update",
                "-R",
                REPO,
                "--pattern",
                "Nexy.dmg",
                "--dir",
                dl,
                "--clobber",
            ],
            0,
        ),
        (
            "f-api-get",
            vec![
                "api",
                "repos/Seregawpn/Nexy_production/releases/tags/Update",
            ],
            0,
        ),
        (
            "g-view-notag",
            vec!["release", "view", "NoSuchTag", "-R", REPO],
            1,
        ),
    ];
    for (name, args, code) in steps {
        let from = sb.requests().len();
        let o = gh(&sb, &args);
        assert_eq!(o.code, code, "{name}: {}", o.stderr);
        let (ours, recorded) = (ours_since(&sb, from), trace_for(name));
        // gh sends its GraphQL `RepositoryReleaseByTag` at the same time as
        // the REST lookup of the tag and cancels it once REST has answered,
        // so on a busy machine it may never reach the server (seen in CI):
        // the one request allowed to be missing.
        let racing = |k: &Key| k.1.ends_with("/graphql") && k.3.contains("RepositoryReleaseByTag");
        let without_racing: Vec<Key> = recorded.iter().filter(|k| !racing(k)).cloned().collect();
        assert!(
            ours == recorded || ours == without_racing,
            "{name}:\n ours: {ours:?}\n recorded: {recorded:?}"
        );
    }
    let id = get(
        sb.port(),
        &format!("http://api.github.localhost/repos/{REPO}/releases/tags/Update"),
    )
    .json()["assets"][0]["id"]
        .as_u64()
        .unwrap();
    let from = sb.requests().len();
    let o = gh(
        &sb,
        &[
            "api",
            "-X",
            "PATCH",
            &format!("repos/{REPO}/releases/assets/{id}"),
            "-f",
            "name=Nexy.dmg",
        ],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(ours_since(&sb, from), trace_for("f-api-patch"));
    let patch = sb
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(patch.body.as_deref(), Some("{\"name\":\"Nexy.dmg\"}"));
}
