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

/// Writes the synthetic repository with `git fast-import`; returns the
/// number of tracked files.
fn generate(sh: &Shell, repo: &Path) -> Result<usize> {
    let _ = fs::remove_dir_all(repo);
    fs::create_dir_all(repo).with_context(|| format!("cannot create {}", repo.display()))?;
    git(sh, repo, &["init", "-q", "-b", "main"])?;
    let files = corpus()?;
    let stream = fast_import_stream(&files);
    cmd!(sh, "git -C {repo} fast-import --quiet")
        .stdin(stream)
        .quiet()
        .ignore_stdout()
        .run()
        .context("`git fast-import` of the synthetic history failed")?;
    git(sh, repo, &["reset", "-q", "--hard", "main"])?;
    Ok(files.len())
}

/// A tiny deterministic generator (xorshift64*): the same repository on
/// every run, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn hex(&mut self, n: usize) -> String {
        self.bytes(n).iter().map(|b| format!("{b:02x}")).collect()
    }

    fn b64(&mut self, n: usize) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.bytes(n))
    }
}

const WORDS: &[&str] = &[
    "audio", "session", "stream", "update", "manifest", "client", "server", "voice", "buffer",
    "config", "release", "health", "status", "token", "grpc", "handler", "queue", "retry",
];

fn word(rng: &mut Rng) -> &'static str {
    WORDS[rng.below(WORDS.len())]
}

/// Every file of the final tree: the workspace's release files (so that
/// the tree checks pass), then generated ones up to 757.
fn corpus() -> Result<Vec<(String, Vec<u8>)>> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let root = project_root();
    for rel in ["release.toml", "VERSION"] {
        files.push((
            rel.to_string(),
            fs::read(root.join(rel)).with_context(|| format!("cannot read {rel}"))?,
        ));
    }
    for dir in ["server", "client"] {
        let mut found = Vec::new();
        walk(&root.join(dir), &mut found);
        found.sort();
        for path in found {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            files.push((
                rel,
                fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?,
            ));
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let pem = format!(
        "-----BEGIN {kind}-----\n{}\n-----END {kind}-----\n",
        rng.b64(48),
        kind = ["PRIVATE", "KEY"].join(" ")
    );
    files.push((PEM_KEY.into(), pem.into_bytes()));
    files.push((SEED_KEY.into(), format!("{}\n", rng.b64(32)).into_bytes()));
    for (doc, n) in PLACEHOLDER_DOCS {
        let mut text =
            String::from("# Gemini setup\n\nPut the key into `config.env` on the VM:\n\n```sh\n");
        let value = if n == 2 {
            "your_gemini_api_key_here"
        } else {
            "your_api_key_here"
        };
        for _ in 0..n {
            let _ = writeln!(text, "GEMINI_API_KEY={value}");
        }
        text.push_str("```\n\nNever commit the real key.\n");
        files.push((doc.into(), text.into_bytes()));
    }
    let public = rng.b64(32);
    let mut i = 0;
    while files.len() < FILES {
        i += 1;
        let (path, body) = match i % 20 {
            0..=7 => (
                format!("server/{}/{}_{i}.py", word(&mut rng), word(&mut rng)),
                python(&mut rng),
            ),
            8..=11 => (
                format!(
                    "client/Sources/{}/{}{i}.swift",
                    word(&mut rng),
                    word(&mut rng)
                ),
                swift(&mut rng),
            ),
            12..=13 => (
                format!("server/Docs/{}_{i}.md", word(&mut rng).to_uppercase()),
                markdown(&mut rng),
            ),
            14 => (
                format!("server/config/{}_{i}.yaml", word(&mut rng)),
                yaml(&mut rng),
            ),
            15 => (
                format!("server/updates/archive/manifest_2.0.0.{i}.json"),
                manifest(&mut rng, i),
            ),
            16..=17 => (
                format!("server/tests/fixtures/{}_{i}.json", word(&mut rng)),
                fixture(&mut rng),
            ),
            18 => (
                format!("client/Resources/{}_{i}.png", word(&mut rng)),
                png(&mut rng),
            ),
            _ => (
                format!("client/Resources/Info_{i}.plist"),
                plist(&public).into_bytes(),
            ),
        };
        files.push((path, body));
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn python(rng: &mut Rng) -> Vec<u8> {
    let mut t = String::from("\"\"\"Module of the voice assistant server.\"\"\"\n\nimport os\nimport logging\n\nlogger = logging.getLogger(__name__)\n\n");
    for f in 0..(5 + rng.below(20)) {
        let w = word(rng);
        let _ = write!(
            t,
            "\ndef {w}_{f}(request, timeout=30):\n    \"\"\"Handles the {w} part of a request.\"\"\"\n    key = os.getenv('GEMINI_API_KEY')\n    if not key:\n        raise RuntimeError('GEMINI_API_KEY is missing')\n    logger.info('{w} %s', request.id)\n    return {{'status': 'ok', '{w}': request.{w}}}\n"
        );
    }
    t.into_bytes()
}

fn swift(rng: &mut Rng) -> Vec<u8> {
    let mut t = String::from("import Foundation\n\n");
    for f in 0..(4 + rng.below(12)) {
        let w = word(rng);
        let _ = write!(t, "final class {}{f} {{\n    let name = \"{w}\"\n    func start() async throws {{\n        try await Task.sleep(nanoseconds: 1_000_000)\n    }}\n}}\n\n", w.to_uppercase());
    }
    t.into_bytes()
}

fn markdown(rng: &mut Rng) -> Vec<u8> {
    let mut t = format!("# {}\n\n", word(rng));
    for _ in 0..(5 + rng.below(30)) {
        let _ = write!(t, "The {} step checks the {} before the {} is sent.\n\n```sh\ncurl -s https://example.invalid/{}\n```\n\n", word(rng), word(rng), word(rng), word(rng));
    }
    t.into_bytes()
}

fn yaml(rng: &mut Rng) -> Vec<u8> {
    let mut t = String::from("server:\n");
    for _ in 0..(10 + rng.below(30)) {
        let _ = writeln!(
            t,
            "  {}_{}: {}  # tuned",
            word(rng),
            rng.below(100),
            rng.below(10_000)
        );
    }
    t.into_bytes()
}

fn manifest(rng: &mut Rng, i: usize) -> Vec<u8> {
    format!(
        "{{\n  \"version\": \"2.0.0.{i}\",\n  \"build\": \"2.0.0.{i}\",\n  \"artifact\": {{\n    \"type\": \"dmg\",\n    \"url\": \"https://github.com/Seregawpn/Nexy_production/releases/download/Update/Nexy.dmg\",\n    \"size\": {},\n    \"sha256\": \"{}\",\n    \"arch\": \"universal2\",\n    \"min_os\": \"11.0\",\n    \"ed25519\": \"{}\"\n  }},\n  \"critical\": false\n}}\n",
        270_000_000 + rng.below(9_000_000),
        rng.hex(32),
        rng.b64(64)
    )
    .into_bytes()
}

fn fixture(rng: &mut Rng) -> Vec<u8> {
    let mut t = String::from("[\n");
    for n in 0..(1 + rng.below(3)) {
        let _ = writeln!(
            t,
            "  {{\"hardware_id\": \"{}\", \"session\": \"{}\", \"n\": {n}}},",
            rng.hex(16),
            rng.b64(24)
        );
    }
    t.push_str("  {}\n]\n");
    t.into_bytes()
}

fn png(rng: &mut Rng) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    let n = 2000 + rng.below(20_000);
    b.extend(rng.bytes(n));
    b
}

fn plist(public: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n  <key>CFBundleShortVersionString</key>\n  <string>2.0.0.4</string>\n  <key>SUPublicEDKey</key>\n  <string>{public}</string>\n</dict>\n</plist>\n")
}

/// The history: the first commit holds 60% of the files, each later
/// commit adds about one more and appends a line to up to two text files.
fn fast_import_stream(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut rng = Rng(42);
    let first = files.len() * 6 / 10;
    let mut current: Vec<Vec<u8>> = files.iter().map(|(_, b)| b.clone()).collect();
    let mut out = Vec::new();
    let mut added = first;
    let rest = files.len() - first;
    for c in 0..COMMITS {
        let mut ops: Vec<usize> = Vec::new();
        if c == 0 {
            ops.extend(0..first);
        } else {
            let until = first + rest * c / (COMMITS - 1);
            ops.extend(added..until.min(files.len()));
            added = until.min(files.len());
            // Appends to two text files already in the tree.
            for _ in 0..2 {
                let pick = rng.below(added.max(1));
                let (path, _) = &files[pick];
                if path.ends_with(".py") || path.ends_with(".md") || path.ends_with(".swift") {
                    let line = format!("# change {c}: {} {}\n", word(&mut rng), rng.hex(4));
                    current[pick].extend_from_slice(line.as_bytes());
                    ops.push(pick);
                }
            }
        }
        let message = format!("change {c}: {}", word(&mut rng));
        let _ = write!(
            out_string(&mut out),
            "commit refs/heads/main\nmark :{}\ncommitter Bench <bench@example.invalid> {} +0000\ndata {}\n{message}\n",
            c + 1,
            1_700_000_000 + c * 3600,
            message.len()
        );
        if c > 0 {
            out.extend_from_slice(format!("from :{c}\n").as_bytes());
        }
        ops.sort_unstable();
        ops.dedup();
        for i in ops {
            let bytes = &current[i];
            out.extend_from_slice(
                format!("M 100644 inline {}\ndata {}\n", files[i].0, bytes.len()).as_bytes(),
            );
            out.extend_from_slice(bytes);
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// A `fmt::Write` over the byte buffer of the stream.
fn out_string(out: &mut Vec<u8>) -> impl std::fmt::Write + '_ {
    struct W<'a>(&'a mut Vec<u8>);
    impl std::fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.extend_from_slice(s.as_bytes());
            Ok(())
        }
    }
    W(out)
}
