//! The synthetic repository of the secret-scan bench: 757 files of the
//! real repository's shapes over a few hundred commits, the same every run,
//! written with one `git fast-import`.

use super::*;

/// Writes the synthetic repository with `git fast-import`; returns the
/// number of tracked files.
pub(super) fn generate(sh: &Shell, repo: &Path) -> Result<usize> {
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
