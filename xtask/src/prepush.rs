//! `cargo xtask check --pre-push` and `check --staged`: check what a push
//! (or a commit) carries, not the working tree.
//!
//! A push sends commits. A key added in one commit and deleted in the next
//! is on the remote all the same, and a secret in a file that was never
//! committed is not. So the pre-push check reads the refs git is about to
//! push from the hook's stdin, lists exactly the commits the remote does
//! not have yet (`git log LOCAL --not OLD --remotes=REMOTE`), and runs the
//! secret scan's line rules on the lines those commits add, in one
//! `git log -p` process. The drift, manifest and guide checks run on the
//! files of each pushed tip, read from git's objects. Deleting a branch or
//! pushing commits the remote has already passes at once.
//!
//! `--staged` is the same for a pre-commit hook: the lines `git diff
//! --cached` adds, and the tree checks on the index.

mod patch;

use std::{
    collections::BTreeSet,
    fmt::Write as _,
    io::{IsTerminal, Read},
};

use anyhow::{bail, Context, Result};
use serde_json::json;
use xshell::{cmd, Shell};

use crate::{
    check::{self, Report},
    cli::CheckArgs,
    config::{Config, Workspace},
    gitobj,
    report::{CheckResult, Status},
    scratch::TempDir,
    secrets::{self, Finding},
};

/// Files read whole (binary, or shaped like a key) above this size are
/// not text anyone wrote by hand, as in the working-tree scan.
const WHOLE_FILE_LIMIT: u64 = 8 << 20;

/// One line of a pre-push hook's stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub local_ref: String,
    pub local_sha: String,
    pub remote_ref: String,
    pub remote_sha: String,
}

/// What `check` was asked to read.
pub fn run(sh: &Shell, ws: &Workspace, args: &CheckArgs) -> Result<bool> {
    if let Some(remote) = &args.pre_push {
        let mut stdin = std::io::stdin();
        if stdin.is_terminal() {
            bail!("--pre-push reads the refs being pushed from stdin, as git gives them to a pre-push hook; run `cargo xtask install-hook`, or pipe lines `LOCAL_REF LOCAL_SHA REMOTE_REF REMOTE_SHA`");
        }
        let mut input = String::new();
        stdin
            .read_to_string(&mut input)
            .context("cannot read the pre-push hook's stdin")?;
        let updates = parse_updates(&input)?;
        return pre_push(sh, ws, remote, &updates, args.after_push);
    }
    if args.staged {
        return staged(sh, ws);
    }
    check::run(sh, ws)
}

/// The hook's stdin: one `LOCAL_REF LOCAL_SHA REMOTE_REF REMOTE_SHA` line
/// per ref being pushed.
pub fn parse_updates(input: &str) -> Result<Vec<RefUpdate>> {
    let mut out = Vec::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [local_ref, local_sha, remote_ref, remote_sha] = fields[..] else {
            bail!("unexpected pre-push line `{line}`: git gives `LOCAL_REF LOCAL_SHA REMOTE_REF REMOTE_SHA`; is the hook calling `check --pre-push` correctly?");
        };
        for sha in [local_sha, remote_sha] {
            if !(sha.len() == 40 || sha.len() == 64) || !sha.bytes().all(|b| b.is_ascii_hexdigit())
            {
                bail!("unexpected pre-push line `{line}`: `{sha}` is not a full object id");
            }
        }
        out.push(RefUpdate {
            local_ref: local_ref.to_string(),
            local_sha: local_sha.to_string(),
            remote_ref: remote_ref.to_string(),
            remote_sha: remote_sha.to_string(),
        });
    }
    Ok(out)
}

fn is_zero(sha: &str) -> bool {
    sha.bytes().all(|b| b == b'0')
}

/// The revision arguments of the commits a push adds: every pushed tip,
/// minus what the remote holds: the old value of each pushed ref (when we
/// have that commit) and every remote-tracking ref of `remote`. After the
/// push (`after_push`, in CI) the pushed refs' own tracking refs already
/// point at the new commits, so they are left out of that set.
pub fn plan_revs(
    updates: &[RefUpdate],
    remote: &str,
    after_push: bool,
    known: &BTreeSet<String>,
) -> Vec<String> {
    let pushed: Vec<&RefUpdate> = updates.iter().filter(|u| !is_zero(&u.local_sha)).collect();
    let mut revs: Vec<String> = Vec::new();
    for u in &pushed {
        if !revs.contains(&u.local_sha) {
            revs.push(u.local_sha.clone());
        }
    }
    if revs.is_empty() {
        return revs;
    }
    revs.push("--not".to_string());
    for u in &pushed {
        if !is_zero(&u.remote_sha) && known.contains(&u.remote_sha) {
            revs.push(u.remote_sha.clone());
        }
    }
    if after_push {
        for u in &pushed {
            let branch = u
                .remote_ref
                .strip_prefix("refs/heads/")
                .unwrap_or(&u.remote_ref);
            revs.push(format!("--exclude={remote}/{branch}"));
        }
    }
    revs.push(format!("--remotes={remote}"));
    revs
}

fn pre_push(
    sh: &Shell,
    ws: &Workspace,
    remote: &str,
    updates: &[RefUpdate],
    after_push: bool,
) -> Result<bool> {
    let root = &ws.root;
    if updates.is_empty() {
        return finish(
            "check --pre-push: ok (git named no ref: nothing is pushed)",
            Vec::new(),
            Report::default(),
        );
    }
    let olds: Vec<String> = updates
        .iter()
        .filter(|u| !is_zero(&u.local_sha) && !is_zero(&u.remote_sha))
        .map(|u| u.remote_sha.clone())
        .collect();
    let known: BTreeSet<String> = olds
        .iter()
        .zip(gitobj::sizes(sh, root, &olds)?)
        .filter(|(_, size)| size.is_some())
        .map(|(sha, _)| sha.clone())
        .collect();
    let revs = plan_revs(updates, remote, after_push, &known);
    if revs.is_empty() {
        return finish(
            "check --pre-push: ok (only deletions: nothing is pushed)",
            Vec::new(),
            Report::default(),
        );
    }
    let format = patch::COMMIT_FORMAT;
    let out = cmd!(
        sh,
        "git -C {root} -c core.quotePath=false -c log.showRoot=true log --reverse -p -U0 -M --no-color --no-ext-diff --no-textconv --no-relative --no-show-signature --diff-merges=remerge --src-prefix=a/ --dst-prefix=b/ {format} {revs...} --"
    )
    .quiet();
    let out = patch_of(
        out,
        "`git log` of the pushed commits failed (git 2.36 or newer is needed for --diff-merges=remerge)",
    )?;
    let scanned = patch::scan(&out);
    if scanned.commits.is_empty() {
        let nothing = format!(
            "check --pre-push: ok (nothing new for {remote}: every pushed commit is there already)"
        );
        return finish(&nothing, Vec::new(), Report::default());
    }
    let mut secrets_report =
        secrets_of(sh, ws, scanned.findings, &scanned.whole, &scanned.commits)?;
    for c in &scanned.commits {
        if !secrets::scan_line(&c.subject).is_empty() {
            secrets_report.secrets.push(Finding {
                path: secrets::MESSAGE.into(),
                line: 1,
                rule: "secret-in-commit-message",
                masked: "(subject withheld)".into(),
                // The subject stays for the record; rendering withholds it.
                commit: Some(c.clone()),
            });
        }
    }
    // In commit order (a stable sort keeps each commit's lines in order),
    // so that the first finding names the oldest commit to rebase from.
    let order = |f: &Finding| {
        let sha = f.commit.as_ref().map(|c| c.sha.as_str());
        scanned
            .commits
            .iter()
            .position(|c| Some(c.sha.as_str()) == sha)
    };
    secrets_report.secrets.sort_by_key(order);
    secrets_report.scanned = scanned.commits.len();
    let mut tips = Vec::new();
    for u in updates.iter().filter(|u| !is_zero(&u.local_sha)) {
        if !tips
            .iter()
            .any(|(sha, _, _): &(String, String, Report)| sha == &u.local_sha)
        {
            tips.push((
                u.local_sha.clone(),
                u.local_ref.clone(),
                tree_at(sh, ws, &u.local_sha)?,
            ));
        }
    }
    let shown: Vec<String> = tips
        .iter()
        .map(|(sha, r, _)| format!("{} {r}", secrets::short(sha)))
        .collect();
    let ok_line = format!(
        "check --pre-push: ok ({} new commit(s) for {remote}, {} added line(s) free of secrets; the tree checks pass at {})",
        scanned.commits.len(),
        scanned.added_lines,
        shown.join(", ")
    );
    let tips = tips
        .into_iter()
        .map(|(sha, r, report)| {
            (
                format!("the pushed tip {} ({r})", secrets::short(&sha)),
                report,
            )
        })
        .collect();
    finish(&ok_line, tips, secrets_report)
}

fn staged(sh: &Shell, ws: &Workspace) -> Result<bool> {
    let root = &ws.root;
    let out = cmd!(
        sh,
        "git -C {root} -c core.quotePath=false diff --cached -p -U0 -M --no-color --no-ext-diff --no-textconv --no-relative --src-prefix=a/ --dst-prefix=b/"
    )
    .quiet();
    let out = patch_of(
        out,
        "`git diff --cached` failed; --staged needs a git checkout",
    )?;
    let scanned = patch::scan(&out);
    let mut report = secrets_of(sh, ws, scanned.findings, &scanned.whole, &[])?;
    report.scanned = scanned.added_lines;
    let ok_line = format!(
        "check --staged: ok ({} staged line(s) free of secrets; the tree checks pass on the index)",
        scanned.added_lines
    );
    let index = tree_at(sh, ws, "")?;
    finish(&ok_line, vec![("the index".to_string(), index)], report)
}

/// The patch git prints, or an error with `what` and git's own words.
fn patch_of(c: xshell::Cmd<'_>, what: &str) -> Result<Vec<u8>> {
    let out = c
        .ignore_status()
        .output()
        .with_context(|| format!("{what}: cannot run git; is it installed?"))?;
    if !out.status.success() {
        bail!(
            "{what}: {}",
            crate::util::last_lines(&String::from_utf8_lossy(&out.stderr), 3)
        );
    }
    Ok(out.stdout)
}

/// The findings of the line rules plus the whole-file reads, minus the
/// allowlist. `commits` resolves a whole file's commit index.
fn secrets_of(
    sh: &Shell,
    ws: &Workspace,
    mut findings: Vec<Finding>,
    whole: &[patch::WholeFile],
    commits: &[secrets::Commit],
) -> Result<Report> {
    let specs: Vec<String> = whole
        .iter()
        .map(|w| {
            let rev = w.commit.map_or("", |i| commits[i].sha.as_str());
            format!("{rev}:{}", w.path)
        })
        .collect();
    let sizes = gitobj::sizes(sh, &ws.root, &specs)?;
    let wanted: Vec<usize> = (0..whole.len())
        .filter(|&i| sizes[i].is_some_and(|s| s <= WHOLE_FILE_LIMIT))
        .filter(|&i| whole[i].binary || sizes[i].is_some_and(|s| s <= 100))
        .collect();
    let asked: Vec<String> = wanted.iter().map(|&i| specs[i].clone()).collect();
    for (&i, bytes) in wanted.iter().zip(gitobj::read_many(sh, &ws.root, &asked)?) {
        let Some(bytes) = bytes else { continue };
        let w = &whole[i];
        let found = if w.binary {
            secrets::scan(&w.path, &bytes)
        } else {
            secrets::raw_ed25519_key(&w.path, &bytes)
                .into_iter()
                .collect()
        };
        let commit = w.commit.map(|i| commits[i].clone());
        findings.extend(found.into_iter().map(|f| Finding {
            commit: commit.clone(),
            ..f
        }));
    }
    let secrets = findings
        .into_iter()
        .filter(|f| !check::allowed(&ws.config.check.secret_allowlist, f))
        .collect();
    Ok(Report {
        secrets,
        ..Report::default()
    })
}

/// The tree checks on the files of `rev` (`""`: the index), written out of
/// git's objects into a scratch directory. The config is the one at `rev`
/// when `rev` holds it, so a pushed change of `release.toml` is judged
/// with the files it describes.
fn tree_at(sh: &Shell, ws: &Workspace, rev: &str) -> Result<Report> {
    let scratch = TempDir::named(&std::env::temp_dir(), "nexy-check")?;
    let dir = scratch.path();
    let config_rel = ws
        .config_path
        .strip_prefix(&ws.root)
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    let mut wanted = check::tree_files(&ws.config);
    wanted.extend(config_rel.clone());
    gitobj::write_files(sh, &ws.root, rev, &wanted, dir)?;
    let mut problems = Vec::new();
    let mut config: Config = ws.config.clone();
    if let Some(rel) = config_rel.filter(|rel| dir.join(rel).is_file()) {
        match Config::load(&dir.join(&rel)) {
            Ok(at_rev) => config = at_rev,
            Err(err) => problems.push((
                "config",
                format!("{rel} as committed is not a valid config ({err:#}); fix and commit it"),
            )),
        }
        let more: Vec<String> = check::tree_files(&config)
            .into_iter()
            .filter(|f| !wanted.contains(f))
            .collect();
        gitobj::write_files(sh, &ws.root, rev, &more, dir)?;
    }
    let mut report = check::tree_report(dir, &config);
    report.problems.extend(problems);
    Ok(report)
}

/// Prints the tips' problems under their names, then the secrets, then
/// one closing line; emits the JSON document.
fn finish(ok_line: &str, tips: Vec<(String, Report)>, secrets: Report) -> Result<bool> {
    let mut text = String::new();
    let mut checks: Vec<CheckResult> = Vec::new();
    let mut total = secrets.count();
    for (name, report) in &tips {
        if report.count() > 0 {
            let _ = writeln!(text, "at {name}:");
            text.push_str(&check::render_problems(report));
            total += report.count();
            checks.extend(
                check::as_checks(report)
                    .into_iter()
                    .filter(|c| c.status == Status::Fail),
            );
        }
    }
    text.push_str(&check::render_problems(&secrets));
    checks.extend(
        check::as_checks(&secrets)
            .into_iter()
            .filter(|c| c.status == Status::Fail),
    );
    if total == 0 {
        text.push_str(ok_line);
        text.push('\n');
        checks.push(CheckResult::pass("check", ok_line).with(json!({"scanned": secrets.scanned})));
    } else {
        let _ = writeln!(text, "check: {total} problem(s)");
    }
    crate::output::say_raw(&text);
    crate::output::emit(&crate::output::checks_doc("check", &checks));
    Ok(total == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn update(local: &str, remote: &str) -> RefUpdate {
        RefUpdate {
            local_ref: "refs/heads/main".into(),
            local_sha: local.into(),
            remote_ref: "refs/heads/main".into(),
            remote_sha: remote.into(),
        }
    }

    #[test]
    fn parses_the_hook_lines() {
        let got = parse_updates(&format!("refs/heads/main {A} refs/heads/main {Z}\n\n")).unwrap();
        assert_eq!(got, [update(A, Z)]);
        assert!(parse_updates("refs/heads/main abc refs/heads/main def\n").is_err());
        assert!(parse_updates("one two\n").is_err());
        assert!(parse_updates("").unwrap().is_empty());
    }

    #[test]
    fn plans_the_pushed_range() {
        let known: BTreeSet<String> = [B.to_string()].into();
        let none = BTreeSet::new();
        // A new branch: everything the remote's refs do not reach.
        assert_eq!(
            plan_revs(&[update(A, Z)], "origin", false, &none),
            [A, "--not", "--remotes=origin"]
        );
        // An update: minus the old tip, when we have it.
        assert_eq!(
            plan_revs(&[update(A, B)], "origin", false, &known),
            [A, "--not", B, "--remotes=origin"]
        );
        // A force push over a commit we never fetched.
        assert_eq!(
            plan_revs(&[update(A, B)], "origin", false, &none),
            [A, "--not", "--remotes=origin"]
        );
        // After the push (CI): the branch's own tracking ref does not count.
        assert_eq!(
            plan_revs(&[update(A, Z)], "origin", true, &none),
            [A, "--not", "--exclude=origin/main", "--remotes=origin"]
        );
        // A deletion pushes nothing.
        assert!(plan_revs(&[update(Z, B)], "origin", false, &known).is_empty());
    }
}
