//! Section 5: the secret scan of a push, on a synthetic repository the
//! size of the real one, next to Yelp's detect-secrets on the same tree.
//!
//! The repository is generated here, the same every run: the workspace's
//! release files plus generated sources, docs, configs, manifests (with
//! sha256 digests and an Ed25519 signature), test fixtures (hex and base64
//! ids) and binary images, 757 tracked files in all, over a history of a
//! few hundred commits. Like the real repository it holds two real-shaped
//! keys (a PEM private key and a file holding only a base64 Ed25519 seed)
//! and three documentation lines with `GEMINI_API_KEY` placeholders. The
//! history is written with `git fast-import`, one process.
//!
//! detect-secrets comes from PyPI (pinned), installed into a virtual
//! environment under `target/` the first time, with a line saying so.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use super::{fmt_ms, fmt_secs, median, own_exe, project_root, Section, Verdict};
use crate::proc;

mod corpus;
use corpus::generate;

const FILES: usize = 757;
const COMMITS: usize = 300;
/// Commits in the "few commits" push.
const PUSHED: usize = 3;
const WARM_RUNS: usize = 10;
const COLD_RUNS: usize = 3;
const FEW_TARGET: Duration = Duration::from_millis(200);
const FULL_TARGET: Duration = Duration::from_secs(5);
const DETECT_SECRETS: &str = "detect-secrets==1.5.0";
const RUN_TIMEOUT: Duration = Duration::from_secs(300);
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
const ZERO: &str = "0000000000000000000000000000000000000000";

/// Where the two real-shaped keys and the placeholder docs live.
const PEM_KEY: &str = "server/keys/sparkle_private_key.pem";
const SEED_KEY: &str = "server/updates/keys/sparkle_eddsa.key";
const PLACEHOLDER_DOCS: [(&str, usize); 2] = [
    ("server/Docs/GEMINI_SETUP.md", 2),
    ("client/Docs/QUICKSTART.md", 1),
];

pub fn run(sh: &Shell, scratch: &Path) -> Result<Section> {
    let mut s = Section::new(
        "5. secret scan of a push (synthetic repository: 757 files, 300 commits)",
        &[
            "measure",
            "ours (xtask)",
            "detect-secrets 1.5.0",
            "target",
            "met?",
        ],
    );
    let repo = scratch.join("secrets-repo");
    let made = Instant::now();
    let tracked = generate(sh, &repo)?;
    eprintln!(
        "bench:   generated {} ({tracked} files, {COMMITS} commits) in {}",
        repo.display(),
        fmt_ms(made.elapsed())
    );
    let exe = own_exe()?;
    let head = git(sh, &repo, &["rev-parse", "HEAD"])?;
    let base = git(sh, &repo, &["rev-parse", &format!("HEAD~{PUSHED}")])?;

    // The remote holds all but the last commits; its tracking ref says so.
    let remote = scratch.join("secrets-remote.git");
    git(
        sh,
        scratch,
        &["init", "-q", "--bare", &remote.to_string_lossy()],
    )?;
    git(
        sh,
        &repo,
        &["remote", "add", "origin", &remote.to_string_lossy()],
    )?;
    git(
        sh,
        &repo,
        &[
            "push",
            "-q",
            "--no-verify",
            "origin",
            &format!("{base}:refs/heads/main"),
        ],
    )?;
    git(sh, &repo, &["fetch", "-q", "origin"])?;

    let few = format!("refs/heads/main {head} refs/heads/main {base}\n");
    let first = format!("refs/heads/main {head} refs/heads/main {ZERO}\n");
    let ours = |remote: &str, stdin: &str| -> Result<(Duration, proc::Output)> {
        let c = cmd!(sh, "{exe} check --json --pre-push {remote} --root {repo}");
        timed(c, stdin)
    };

    // A push of a few commits, warm: one warm-up, then the median.
    ours("origin", &few)?;
    let runs: Vec<(Duration, proc::Output)> = (0..WARM_RUNS)
        .map(|_| ours("origin", &few))
        .collect::<Result<_>>()?;
    let walls: Vec<Duration> = runs.iter().map(|r| r.0).collect();
    let few_med = median(&walls);
    let verdict = Verdict::of(few_med < FEW_TARGET && runs.iter().all(|r| r.1.success()));
    s.row(vec![
        format!("push of {PUSHED} commits, warm (binary; median of {WARM_RUNS})"),
        format!(
            "{} (max {})",
            fmt_ms(few_med),
            fmt_ms(walls.iter().max().copied().unwrap_or_default())
        ),
        "-".into(),
        format!("< {}", fmt_ms(FEW_TARGET)),
        verdict.label().into(),
    ]);
    s.target(
        format!(
            "push of {PUSHED} commits under {} (median {})",
            fmt_ms(FEW_TARGET),
            fmt_ms(few_med)
        ),
        verdict,
    );

    // The same through cargo, as the hook runs it.
    let root = project_root();
    let via_cargo = |stdin: &str| {
        let _dir = sh.push_dir(root);
        timed(
            cmd!(sh, "cargo xtask check --pre-push origin --root {repo}"),
            stdin,
        )
    };
    via_cargo(&few)?;
    let cargo_walls: Vec<Duration> = (0..WARM_RUNS)
        .map(|_| via_cargo(&few).map(|r| r.0))
        .collect::<Result<_>>()?;
    let cargo_verdict = Verdict::of(median(&cargo_walls) < FEW_TARGET);
    s.row(vec![
        format!("the same through `cargo xtask` (what the hook runs; median of {WARM_RUNS})"),
        fmt_ms(median(&cargo_walls)),
        "-".into(),
        format!("< {}", fmt_ms(FEW_TARGET)),
        cargo_verdict.label().into(),
    ]);
    s.target(
        format!(
            "the hook's `cargo xtask check --pre-push` under {} (median {})",
            fmt_ms(FEW_TARGET),
            fmt_ms(median(&cargo_walls))
        ),
        cargo_verdict,
    );

    // A first push: every commit of the history (a remote with no refs).
    let full: Vec<(Duration, proc::Output)> = (0..COLD_RUNS)
        .map(|_| ours("nowhere", &first))
        .collect::<Result<_>>()?;
    let full_walls: Vec<Duration> = full.iter().map(|r| r.0).collect();
    let full_med = median(&full_walls);
    let history = findings(&full[0].1.stdout)?;
    let verdict = Verdict::of(full_med < FULL_TARGET);
    s.row(vec![
        format!("first push: all {COMMITS} commits of the history (median of {COLD_RUNS})"),
        fmt_secs(full_med),
        "(scans the tree only)".into(),
        format!("< {}", fmt_secs(FULL_TARGET)),
        verdict.label().into(),
    ]);
    s.target(
        format!(
            "first push of the whole history under {} (median {})",
            fmt_secs(FULL_TARGET),
            fmt_secs(full_med)
        ),
        verdict,
    );

    // The tree, both tools: time and what each reports.
    let tree_runs: Vec<(Duration, proc::Output)> = (0..COLD_RUNS)
        .map(|_| timed(cmd!(sh, "{exe} check --json --root {repo}"), ""))
        .collect::<Result<_>>()?;
    let tree_walls: Vec<Duration> = tree_runs.iter().map(|r| r.0).collect();
    let tree = findings(&tree_runs[0].1.stdout)?;
    let ds = detect_secrets(sh, &repo);
    let (ds_time, ds_found) = match &ds {
        Ok((wall, found)) => (fmt_secs(*wall), Some(found)),
        Err(e) => {
            s.note(format!("detect-secrets: {e:#}"));
            ("error".to_string(), None)
        }
    };
    s.row(vec![
        format!("scan of the tree ({tracked} tracked files; median of {COLD_RUNS})"),
        fmt_ms(median(&tree_walls)),
        ds_time,
        "reported".into(),
        "-".into(),
    ]);
    let count =
        |f: Option<&Vec<(String, usize)>>| f.map_or("-".to_string(), |f| f.len().to_string());
    let keys = |f: &[(String, usize)]| {
        [PEM_KEY, SEED_KEY]
            .iter()
            .filter(|k| f.iter().any(|(p, _)| p == *k))
            .count()
    };
    let placeholders = |f: &[(String, usize)]| {
        f.iter()
            .filter(|(p, _)| PLACEHOLDER_DOCS.iter().any(|(d, _)| d == p))
            .count()
    };
    s.row(vec![
        "findings on the tree".into(),
        count(Some(&tree)),
        count(ds_found),
        "the 2 keys only".into(),
        Verdict::of(tree.len() == 2 && keys(&tree) == 2)
            .label()
            .into(),
    ]);
    s.row(vec![
        "  real keys found (of 2: PEM, base64 Ed25519 seed file)".into(),
        keys(&tree).to_string(),
        ds_found.map_or("-".into(), |f| keys(f).to_string()),
        "2".into(),
        Verdict::of(keys(&tree) == 2).label().into(),
    ]);
    s.row(vec![
        "  doc placeholders flagged (of 3)".into(),
        placeholders(&tree).to_string(),
        ds_found.map_or("-".into(), |f| placeholders(f).to_string()),
        "0".into(),
        Verdict::of(placeholders(&tree) == 0).label().into(),
    ]);
    s.row(vec![
        "findings in the whole history (first push)".into(),
        history.len().to_string(),
        "-".into(),
        "the 2 keys".into(),
        Verdict::of(history.len() == 2 && keys(&history) == 2)
            .label()
            .into(),
    ]);
    s.target(
        format!(
            "the 2 real keys found, no placeholder flagged (tree: {} findings)",
            tree.len()
        ),
        Verdict::of(tree.len() == 2 && keys(&tree) == 2 && keys(&history) == 2),
    );
    s.note(format!(
        "the {PUSHED}-commit push: the remote holds HEAD~{PUSHED} (its tracking ref fetched); `check --pre-push` scans the added lines of {PUSHED} commits and runs the tree checks on the tip, read from git objects"
    ));
    s.note("times are whole processes, start-up included; the cargo row adds cargo's own start-up and freshness check");
    if let Some(found) = ds_found {
        let mut by_kind: std::collections::BTreeMap<&str, usize> = Default::default();
        for (path, _) in found {
            let kind = if path.contains("/fixtures/") {
                "test fixtures (hex and base64 ids)"
            } else if path.contains("manifest") {
                "manifests (sha256, artifact.ed25519)"
            } else if path.ends_with(".plist") {
                "Info.plist files (SUPublicEDKey)"
            } else if path == PEM_KEY || path == SEED_KEY {
                "the real keys"
            } else {
                "other files"
            };
            *by_kind.entry(kind).or_default() += 1;
        }
        let kinds: Vec<String> = by_kind.iter().map(|(k, n)| format!("{n} in {k}")).collect();
        s.note(format!(
            "detect-secrets reported {}: {}",
            found.len(),
            kinds.join(", ")
        ));
    }
    if let Ok(load) = fs::read_to_string("/proc/loadavg") {
        s.note(format!(
            "load average when the section ended: {} (other work on the machine slows every row)",
            load.split(' ').take(3).collect::<Vec<_>>().join(" ")
        ));
    }
    Ok(s)
}

/// Runs `c` with `stdin`, timing the whole process.
fn timed(c: xshell::Cmd<'_>, stdin: &str) -> Result<(Duration, proc::Output)> {
    let started = Instant::now();
    let out = proc::stage(c.into(), "xtask check", RUN_TIMEOUT)?.send(stdin.as_bytes())?;
    Ok((started.elapsed(), out))
}

/// (path, line) of each secret in a `check --json` document.
fn findings(json: &str) -> Result<Vec<(String, usize)>> {
    let doc: serde_json::Value = serde_json::from_str(json)
        .with_context(|| format!("`check --json` printed no JSON: {json}"))?;
    Ok(doc["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["id"] == "secret")
        .map(|c| {
            let f = &c["figures"];
            (
                f["path"].as_str().unwrap_or("").to_string(),
                f["line"].as_u64().unwrap_or(0) as usize,
            )
        })
        .collect())
}

fn git(sh: &Shell, dir: &Path, args: &[&str]) -> Result<String> {
    let out = cmd!(sh, "git -C {dir} {args...}")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .quiet()
        .ignore_stderr()
        .read()
        .with_context(|| format!("`git {}` failed in {}", args.join(" "), dir.display()))?;
    Ok(out.trim().to_string())
}

/// detect-secrets from its virtual environment under target/, installed
/// there first when missing; its wall time (median of 3) and findings.
fn detect_secrets(sh: &Shell, repo: &Path) -> Result<(Duration, Vec<(String, usize)>)> {
    let target = project_root().join("target");
    let venv = target.canonicalize().unwrap_or(target).join("bench-venv");
    let exe: PathBuf = venv.join("bin/detect-secrets");
    if !exe.is_file() {
        eprintln!(
            "bench:   installing {DETECT_SECRETS} from PyPI into {} (first run only)",
            venv.display()
        );
        let out = proc::run(
            cmd!(sh, "python3 -m venv {venv}"),
            "python3 -m venv",
            INSTALL_TIMEOUT,
        )?;
        if !out.success() {
            bail!(
                "`python3 -m venv` failed (install python3-venv): {}",
                out.stderr.trim()
            );
        }
        let pip = venv.join("bin/pip");
        let out = proc::run(
            cmd!(sh, "{pip} install -q {DETECT_SECRETS}"),
            "pip install",
            INSTALL_TIMEOUT,
        )?;
        if !out.success() {
            bail!(
                "`pip install {DETECT_SECRETS}` failed: {}",
                crate::util::last_lines(&out.stderr, 3)
            );
        }
    }
    let _dir = sh.push_dir(repo);
    let mut walls = Vec::new();
    let mut last = None;
    for _ in 0..COLD_RUNS {
        let started = Instant::now();
        let out = proc::run(cmd!(sh, "{exe} scan"), "detect-secrets scan", RUN_TIMEOUT)?;
        walls.push(started.elapsed());
        if !out.success() {
            bail!("`detect-secrets scan` failed: {}", out.stderr.trim());
        }
        last = Some(out.stdout);
    }
    let doc: serde_json::Value = serde_json::from_str(&last.unwrap_or_default())
        .context("`detect-secrets scan` printed no JSON")?;
    let mut found = Vec::new();
    for (path, items) in doc["results"].as_object().into_iter().flatten() {
        for item in items.as_array().into_iter().flatten() {
            found.push((
                path.clone(),
                item["line_number"].as_u64().unwrap_or(0) as usize,
            ));
        }
    }
    Ok((median(&walls), found))
}
