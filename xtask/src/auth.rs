//! Whether the token gh uses can do what a release needs, judged by what it
//! must allow rather than by `gh auth status`'s exit code.
//!
//! `gh auth status` changed with every few gh versions: its output moved
//! from stderr to stdout in 2.31, 2.40 to 2.53 exit 0 even with an invalid
//! token (cli/cli#8845), 2.54 and later exit 1 when any account on the host
//! is bad, even an inactive one, and missing scopes only warn from 2.40.
//! Fine-grained and Actions tokens send no `X-OAuth-Scopes` at all. So its
//! output is shown to the operator and its exit code is ignored; what
//! decides is the token's identity (`GET /user`, or the GraphQL viewer)
//! and whether that account can write to the assets repository
//! (`permissions.push` of `GET /repos/O/R`, as the token).

use serde_json::{json, Value};

use crate::{gh::Gh, ghenv, proc, report::CheckResult, util::last_lines};

/// The gh rows of preflight's table: the gh version, what `gh auth status`
/// says (shown, not judged) and the token's identity and write access.
/// The second value is whether gh can read GitHub at all (the later
/// checks that read releases need it).
pub fn checks(gh: &Gh) -> (Vec<CheckResult>, bool) {
    let mut out = Vec::new();
    let version = ghenv::version();
    out.push(match &version {
        Ok(v) => CheckResult::pass("gh-version", format!("gh {v}")).with(json!({ "gh": v })),
        Err(err) => CheckResult::fail(
            "gh-version",
            format!("{err:#}"),
            "install gh (`brew install gh` on macOS, `apt-get install gh` on Debian)",
        ),
    });
    if version.is_err() {
        return (out, false);
    }
    let repo = gh.repo().to_string();
    let calls = vec![
        gh.prepare_auth_status(),
        gh.prepare_get("user"),
        gh.prepare_get(&format!("repos/{repo}")),
    ];
    let mut results =
        proc::run_parallel(calls.into_iter().map(|p| p.into_parts().0).collect()).into_iter();
    let mut next = || {
        results
            .next()
            .unwrap_or_else(|| Err(anyhow::anyhow!("the gh call did not run")))
    };
    let (status, user, repo_read) = (next(), next(), next());
    out.push(shown_status(status));
    let mut user = user.map_err(|e| format!("{e:#}"));
    // GitHub Apps' installation tokens may not read /user; the viewer
    // names them all the same.
    if user.as_ref().is_ok_and(|o| o.stderr.contains("HTTP 403")) {
        user = proc::run_parallel(vec![gh.prepare_viewer().into_parts().0])
            .pop()
            .unwrap_or_else(|| Err(anyhow::anyhow!("the gh call did not run")))
            .map_err(|e| format!("{e:#}"));
    }
    let login = user.and_then(|o| login_of(&o));
    let repo_read = repo_read.map_err(|e| format!("{e:#}"));
    let ready = login.is_ok();
    out.push(judge(gh.host(), &repo, login, repo_read));
    (out, ready)
}

/// `gh auth status` as it printed it, on either stream (stderr before 2.31,
/// stdout after), with its exit code; a pass either way.
fn shown_status(status: anyhow::Result<proc::Output>) -> CheckResult {
    match status {
        Ok(o) => CheckResult::pass(
            "gh-auth-status",
            format!(
                "exit {} (shown, not judged: its exit code differs across gh versions): {}",
                o.code.map_or("-".to_string(), |c| c.to_string()),
                last_lines(&format!("{}\n{}", o.stdout, o.stderr), 6)
            ),
        ),
        Err(err) => CheckResult::pass("gh-auth-status", format!("not shown: {err:#}")),
    }
}

/// The login in `gh api user`'s JSON or the GraphQL viewer's, or gh's words
/// when there is none.
fn login_of(out: &proc::Output) -> Result<String, String> {
    if !out.success() {
        return Err(last_lines(&out.stderr, 2));
    }
    let v: Value = serde_json::from_str(&out.stdout)
        .map_err(|_| format!("gh's answer is not JSON: {}", last_lines(&out.stdout, 1)))?;
    v.get("login")
        .or_else(|| v.pointer("/data/viewer/login"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "gh's answer names no account".to_string())
}

/// The verdict on the token: who it is and whether it can write to `repo`.
/// Pure, so that every case has a table test.
pub fn judge(
    host: &str,
    repo: &str,
    login: Result<String, String>,
    repo_read: Result<proc::Output, String>,
) -> CheckResult {
    let login_fix = format!(
        "run `gh auth login --hostname {host}`, or export GH_TOKEN with a token that has Contents: Read and write on {repo} (fine-grained) or the repo scope (classic)"
    );
    let login = match login {
        Ok(login) => login,
        Err(said) => {
            return CheckResult::fail(
                "gh-token",
                format!("gh has no valid token for {host}: {said}"),
                login_fix,
            )
        }
    };
    let write_fix = format!(
        "give {login}'s token write access to {repo}: a fine-grained token with Contents: Read and write on {repo}, or a classic token with the repo scope (and {login} needs write access to the repository); then `gh auth login --hostname {host}` or export GH_TOKEN"
    );
    let out = match repo_read {
        Ok(out) => out,
        Err(err) => return CheckResult::fail("gh-token", err, write_fix),
    };
    if !out.success() {
        let said = last_lines(&out.stderr, 2);
        let seen = if said.contains("HTTP 404") {
            format!("the token of {login} cannot see {repo} ({said})")
        } else {
            format!("reading {repo} as {login} failed: {said}")
        };
        return CheckResult::fail("gh-token", seen, write_fix);
    }
    let push = serde_json::from_str::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.pointer("/permissions/push").and_then(Value::as_bool));
    let figures = json!({ "login": login, "push": push });
    match push {
        Some(true) => CheckResult::pass(
            "gh-token",
            format!("the token of {login} can write to {repo} (permissions.push)"),
        )
        .with(figures),
        Some(false) => CheckResult::fail(
            "gh-token",
            format!(
                "the token of {login} can read {repo} but not write to it (permissions.push is false): publishing uploads and renames release assets"
            ),
            write_fix,
        )
        .with(figures),
        None => CheckResult::fail(
            "gh-token",
            format!("GitHub did not say whether {login} can write to {repo} (no permissions in its answer)"),
            write_fix,
        )
        .with(figures),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    fn out(code: i32, stdout: &str, stderr: &str) -> Result<proc::Output, String> {
        Ok(proc::Output {
            code: Some(code),
            stdout: stdout.to_string(),
            stderr: stderr.to_string(),
        })
    }

    #[test]
    fn the_token_is_judged_by_identity_and_write_access() {
        let repo = "Seregawpn/Nexy_production";
        let ok = |login: &str| Ok(login.to_string());
        for (login, read, status, says) in [
            (
                ok("ann"),
                out(0, r#"{"permissions":{"push":true,"pull":true}}"#, ""),
                Status::Pass,
                "the token of ann can write to Seregawpn/Nexy_production",
            ),
            (
                ok("nexy-reader"),
                out(0, r#"{"permissions":{"push":false,"pull":true}}"#, ""),
                Status::Fail,
                "the token of nexy-reader can read Seregawpn/Nexy_production but not write to it",
            ),
            (
                ok("ann"),
                out(0, r#"{"full_name":"x"}"#, ""),
                Status::Fail,
                "GitHub did not say whether ann can write",
            ),
            (
                ok("ann"),
                out(1, "", "gh: Not Found (HTTP 404)\n"),
                Status::Fail,
                "the token of ann cannot see Seregawpn/Nexy_production",
            ),
            (
                Err("gh: Bad credentials (HTTP 401)".to_string()),
                out(1, "", "gh: Bad credentials (HTTP 401)\n"),
                Status::Fail,
                "gh has no valid token for h: gh: Bad credentials (HTTP 401)",
            ),
        ] {
            let r = judge("h", repo, login, read);
            assert_eq!(r.status, status, "{}", r.message);
            assert!(r.message.contains(says), "{}", r.message);
            if status == Status::Fail {
                assert!(!r.fix.is_empty());
            }
        }
    }

    #[test]
    fn the_login_comes_from_rest_or_graphql() {
        let o = |s: &str| proc::Output {
            code: Some(0),
            stdout: s.to_string(),
            stderr: String::new(),
        };
        assert_eq!(login_of(&o(r#"{"login":"ann","id":1}"#)), Ok("ann".into()));
        assert_eq!(
            login_of(&o(r#"{"data":{"viewer":{"login":"bot"}}}"#)),
            Ok("bot".into())
        );
        assert!(login_of(&o("{}")).is_err());
        assert!(login_of(&o("\u{1b}[1;38m{")).is_err());
    }
}
