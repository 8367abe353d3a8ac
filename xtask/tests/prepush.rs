//! The pre-push check end to end: a temporary copy of the workspace as a
//! git repository, a bare repository on disk as its remote, the hook that
//! `install-hook` writes, and real `git push` runs, so that git itself
//! feeds the hook its stdin and refuses the push when the hook fails.
//!
//! The hook runs `cargo xtask check --pre-push "$1"`; a `cargo` script on
//! PATH stands in for cargo's alias and runs the binary under test, so the
//! hook's text is the one users get.

mod common;

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use common::{Fixture, Run};

const ZERO: &str = "0000000000000000000000000000000000000000";

/// Assembled at run time so that this repository's own check stays clean.
fn google_key() -> String {
    format!("AI{}{}", "za", "Kq7_".repeat(9) + "Tu-")
}

struct Repo {
    fx: Fixture,
    /// Holds the bare remote and the `cargo` stand-in.
    outside: tempfile::TempDir,
}

impl Repo {
    /// The workspace committed on `main`, a bare remote `origin`, and the
    /// installed hook; nothing pushed yet.
    fn new() -> Repo {
        let fx = Fixture::new();
        let outside = tempfile::tempdir().unwrap();
        let repo = Repo { fx, outside };
        let bin = repo.outside.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        let cargo = bin.join("cargo");
        fs::write(
            &cargo,
            format!(
                "#!/bin/sh\n[ \"$1\" = xtask ] || {{ echo \"not cargo: $*\" >&2; exit 99; }}\nshift\nexec '{}' \"$@\"\n",
                env!("CARGO_BIN_EXE_xtask")
            ),
        )
        .unwrap();
        fs::set_permissions(&cargo, fs::Permissions::from_mode(0o755)).unwrap();
        let remote = repo.remote();
        repo.git_ok(&["init", "-q", "-b", "main"]);
        assert!(repo
            .git_in(
                repo.outside.path(),
                &["init", "-q", "--bare", remote.to_str().unwrap()]
            )
            .status
            .success());
        repo.git_ok(&["remote", "add", "origin", remote.to_str().unwrap()]);
        repo.commit_all("initial workspace");
        let run = repo.fx.run(&["install-hook"]);
        assert_eq!(run.code, 0, "{run:?}");
        repo
    }

    fn remote(&self) -> PathBuf {
        self.outside.path().join("remote.git")
    }

    fn git_in(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        let path = format!(
            "{}:{}",
            self.outside.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("PATH", path)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn git(&self, args: &[&str]) -> Run {
        let out = self.git_in(self.fx.root(), args);
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn git_ok(&self, args: &[&str]) -> String {
        let run = self.git(args);
        assert_eq!(run.code, 0, "git {args:?}: {run:?}");
        run.stdout.trim().to_string()
    }

    fn commit_all(&self, message: &str) -> String {
        self.git_ok(&["add", "-A"]);
        self.git_ok(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git_ok(&["rev-parse", "HEAD"])
    }

    /// What the remote's branch points at (`None`: no such branch).
    fn remote_tip(&self, branch: &str) -> Option<String> {
        let out = self.git_in(
            &self.remote(),
            &[
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// `check --pre-push origin` with the given hook stdin, run directly.
    fn pre_push(&self, stdin: &str, extra: &[&str]) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["check", "--pre-push", "origin"])
            .args(extra)
            .arg("--root")
            .arg(self.fx.root())
            .current_dir(self.fx.root())
            .env("NO_COLOR", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

fn short(sha: &str) -> &str {
    &sha[..12]
}

#[test]
fn a_key_added_and_removed_within_the_push_is_refused_naming_the_commit() {
    let repo = Repo::new();
    let first = repo.git(&["push", "-q", "origin", "main"]);
    assert_eq!(first.code, 0, "a clean first push passes: {first:?}");
    assert!(
        first.all().contains("new commit(s) for origin"),
        "{first:?}"
    );
    let pushed = repo.remote_tip("main").unwrap();

    let key = google_key();
    repo.fx
        .write("client/maps.js", format!("const KEY = \"{key}\";\n"));
    let added = repo.commit_all("add the maps key");
    fs::remove_file(repo.fx.path("client/maps.js")).unwrap();
    repo.commit_all("remove the maps key again");
    assert_eq!(repo.fx.run(&["check"]).code, 0, "the tree itself is clean");

    let subject = format!("rotate {key}");
    let said = repo.commit_all(&subject);
    let run = repo.git(&["push", "origin", "main"]);
    assert_ne!(run.code, 0, "the push is refused: {run:?}");
    assert!(
        run.all().contains(&format!(
            "commit {} \"(subject withheld)\"  (commit message):1  secret-in-commit-message",
            short(&said)
        )),
        "a key in a commit message: {run:?}"
    );
    let all = run.all();
    assert!(
        all.contains(&format!(
            "commit {} \"add the maps key\"  client/maps.js:1  google-api-key",
            short(&added)
        )),
        "{all}"
    );
    assert!(all.contains("git rebase -i"), "{all}");
    assert!(all.contains("rotate"), "{all}");
    assert!(!all.contains(&key[4..]), "the key is never printed: {all}");
    assert_eq!(
        repo.remote_tip("main").as_deref(),
        Some(pushed.as_str()),
        "the remote is unchanged"
    );
}

#[test]
fn a_secret_outside_the_pushed_commits_does_not_block_a_clean_push() {
    let repo = Repo::new();
    // Untracked, and a tracked file edited but not committed.
    repo.fx
        .write("server/config.env", "GEMINI_API_KEY=notcommitted42real\n");
    let guide = "server/Docs/SERVER_DEPLOYMENT_GUIDE.md";
    let text = repo.fx.read(guide);
    repo.fx
        .write(guide, format!("{text}\nkey {}\n", google_key()));
    let run = repo.fx.run(&["check"]);
    assert_eq!(run.code, 1, "the working tree holds a key: {run:?}");

    repo.git_ok(&["commit", "-q", "--allow-empty", "-m", "an unrelated change"]);
    let run = repo.git(&["push", "origin", "main"]);
    assert_eq!(run.code, 0, "what is pushed is clean: {run:?}");
    assert_eq!(
        repo.remote_tip("main"),
        Some(repo.git_ok(&["rev-parse", "HEAD"]))
    );
}

#[test]
fn a_branch_whose_commits_are_on_the_remote_scans_nothing() {
    let repo = Repo::new();
    // A key already on the remote (pushed past the hook): pushing the same
    // commits under another name adds nothing, so nothing is scanned.
    repo.fx
        .write("client/maps.js", format!("k = '{}'\n", google_key()));
    let tip = repo.commit_all("key pushed with --no-verify");
    assert_eq!(
        repo.git(&["push", "-q", "--no-verify", "origin", "main"])
            .code,
        0
    );
    repo.git_ok(&["branch", "copy"]);
    let run = repo.git(&["push", "origin", "copy"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.all().contains("nothing new for origin"), "{run:?}");
    assert_eq!(repo.remote_tip("copy").as_deref(), Some(tip.as_str()));

    // Deleting a branch passes at once.
    let run = repo.git(&["push", "origin", ":copy"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.all().contains("only deletions"), "{run:?}");
    assert_eq!(repo.remote_tip("copy"), None);

    // A new branch with one more commit is scanned for that commit only.
    repo.git_ok(&["checkout", "-q", "-b", "feature"]);
    repo.fx.write("client/notes.txt", "nothing secret\n");
    repo.commit_all("notes");
    let run = repo.git(&["push", "origin", "feature"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.all()
            .contains("1 new commit(s) for origin, 1 added line(s)"),
        "{run:?}"
    );
}

#[test]
fn drift_in_the_pushed_tip_is_refused_even_when_the_working_tree_is_fixed() {
    let repo = Repo::new();
    assert_eq!(repo.git(&["push", "-q", "origin", "main"]).code, 0);
    let rel = "server/config/unified_config.py";
    repo.fx.edit(
        rel,
        "'SERVER_VERSION', '2.0.0.4'",
        "'SERVER_VERSION', '2.0.0.1'",
    );
    let drifted = repo.commit_all("drift");
    repo.fx.edit(
        rel,
        "'SERVER_VERSION', '2.0.0.1'",
        "'SERVER_VERSION', '2.0.0.4'",
    );
    assert_eq!(repo.fx.run(&["check"]).code, 0, "the working tree is fixed");

    let run = repo.git(&["push", "origin", "main"]);
    assert_ne!(run.code, 0, "{run:?}");
    let all = run.all();
    assert!(
        all.contains(&format!(
            "at the pushed tip {} (refs/heads/main)",
            short(&drifted)
        )),
        "{all}"
    );
    let row = all
        .lines()
        .find(|l| l.trim_start().starts_with(rel))
        .unwrap_or_else(|| panic!("no drift row: {all}"));
    assert!(row.contains("2.0.0.4") && row.contains("2.0.0.1"), "{row}");
}

#[test]
fn after_a_push_ci_scans_the_pushed_range_itself() {
    let repo = Repo::new();
    assert_eq!(repo.git(&["push", "-q", "origin", "main"]).code, 0);
    let before = repo.git_ok(&["rev-parse", "HEAD"]);
    repo.git_ok(&["checkout", "-q", "-b", "topic"]);
    repo.fx.write(
        "keys/deploy",
        format!("-----BEGIN {} PRIVATE KEY-----\nb3Blbn\n", "OPENSSH"),
    );
    let after = repo.commit_all("deploy key");
    // Skipped the hook; CI then sees the branch on the remote.
    assert_eq!(
        repo.git(&["push", "-q", "--no-verify", "origin", "topic"])
            .code,
        0
    );
    repo.git_ok(&["fetch", "-q", "origin"]);

    let new_branch = format!("refs/heads/topic {after} refs/heads/topic {ZERO}\n");
    // As a hook would see it now, the branch is on the remote already...
    let run = repo.pre_push(&new_branch, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    // ...but after the push its own tracking ref does not count.
    let run = repo.pre_push(&new_branch, &["--after-push"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains(&format!(
            "commit {} \"deploy key\"  keys/deploy:1  pem-private-key",
            short(&after)
        )),
        "{run:?}"
    );
    // An update (before..after), and a force push whose old tip we never had.
    let run = repo.pre_push(
        &format!("refs/heads/topic {after} refs/heads/topic {before}\n"),
        &["--after-push"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    let gone = "1234567890123456789012345678901234567890";
    let run = repo.pre_push(
        &format!("refs/heads/topic {after} refs/heads/topic {gone}\n"),
        &["--after-push"],
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("deploy key"), "{run:?}");
}

#[test]
fn staged_checks_the_index_not_the_working_tree() {
    let repo = Repo::new();
    repo.fx
        .write("client/maps.js", format!("k = '{}'\n", google_key()));
    let run = repo.fx.run(&["check", "--staged"]);
    assert_eq!(run.code, 0, "not staged yet: {run:?}");
    repo.git_ok(&["add", "client/maps.js"]);
    let run = repo.fx.run(&["check", "--staged"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.contains("client/maps.js:1  google-api-key"),
        "{run:?}"
    );
    repo.git_ok(&["rm", "-q", "--cached", "client/maps.js"]);

    // Drift staged, then repaired in the working tree only.
    let rel = "server/config/unified_config.py";
    repo.fx.edit(
        rel,
        "'SERVER_VERSION', '2.0.0.4'",
        "'SERVER_VERSION', '2.0.0.1'",
    );
    repo.git_ok(&["add", rel]);
    repo.fx.edit(
        rel,
        "'SERVER_VERSION', '2.0.0.1'",
        "'SERVER_VERSION', '2.0.0.4'",
    );
    let run = repo.fx.run(&["check", "--staged"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("at the index"), "{run:?}");
}

#[test]
fn install_hook_replaces_the_hook_an_older_version_wrote() {
    let repo = Repo::new();
    let hook = repo.fx.path(".git/hooks/pre-push");
    let current = fs::read_to_string(&hook).unwrap();
    assert!(
        current.contains("exec cargo xtask check --pre-push \"$1\""),
        "{current}"
    );
    let old = "#!/bin/sh\n# installed by `cargo xtask install-hook`; reinstall with the same command.\n# Refuses a push whose workspace fails the release check.\nexec cargo xtask check\n";
    fs::write(&hook, old).unwrap();
    let run = repo.fx.run(&["install-hook"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("updated pre-push hook"), "{run:?}");
    assert_eq!(fs::read_to_string(&hook).unwrap(), current);
}

#[test]
fn pushed_placeholders_pass_and_pushed_key_files_fail() {
    let repo = Repo::new();
    assert_eq!(repo.git(&["push", "-q", "origin", "main"]).code, 0);
    // The real repository's three documentation lines.
    repo.fx.write(
        "server/Docs/GEMINI_SETUP.md",
        "```\nGEMINI_API_KEY=your_gemini_api_key_here\n```\nor\n\nGEMINI_API_KEY=your_gemini_api_key_here\nGEMINI_API_KEY=your_api_key_here\n",
    );
    repo.commit_all("docs");
    let run = repo.git(&["push", "origin", "main"]);
    assert_eq!(run.code, 0, "{run:?}");

    // A raw key file (read whole from git), and one git takes for binary.
    repo.fx.write(
        "keys/sparkle_ed25519",
        format!("{}=\n", "s3Kr".repeat(10) + "abc"),
    );
    repo.fx.write("keys/.gitattributes", "*.env -diff\n");
    repo.fx.write(
        "keys/prod.env",
        format!("GEMINI_API_KEY=real-{}\n", "k".repeat(20) + "9"),
    );
    let added = repo.commit_all("keys");
    let run = repo.git(&["push", "origin", "main"]);
    assert_ne!(run.code, 0, "{run:?}");
    let all = run.all();
    for (path, rule) in [
        ("keys/sparkle_ed25519:1", "ed25519-private-key"),
        ("keys/prod.env:1", "gemini-api-key"),
    ] {
        assert!(
            all.contains(&format!(
                "commit {} \"keys\"  {path}  {rule}",
                short(&added)
            )),
            "{path}: {all}"
        );
    }
}

#[test]
fn a_key_added_by_a_merge_resolution_is_refused() {
    let repo = Repo::new();
    assert_eq!(repo.git(&["push", "-q", "origin", "main"]).code, 0);
    repo.git_ok(&["checkout", "-q", "-b", "side"]);
    repo.fx.write("client/m.txt", "side\n");
    repo.commit_all("side");
    assert_eq!(repo.git(&["push", "-q", "origin", "side"]).code, 0);
    repo.git_ok(&["checkout", "-q", "main"]);
    repo.fx.write("client/m.txt", "main\n");
    repo.commit_all("main side of m");
    assert_ne!(repo.git(&["merge", "-q", "side"]).code, 0, "a conflict");
    repo.fx
        .write("client/m.txt", format!("both\nk = '{}'\n", google_key()));
    let merge = repo.commit_all("merge side");
    let run = repo.git(&["push", "origin", "main"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.all().contains(&format!(
            "commit {} \"merge side\"  client/m.txt:2  google-api-key",
            short(&merge)
        )),
        "{run:?}"
    );
}
