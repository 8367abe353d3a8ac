//! Shared fixture for the integration tests: a temporary copy of the
//! workspace and a way to run the built `xtask` binary on it.

#![allow(dead_code)]

pub mod stage;

use std::{
    collections::BTreeMap,
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
};

/// The repository this test binary was built from.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// What a run of the binary printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for assertions that do not care where a line went.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
}

/// Every file and its bytes and mode: a tree compared byte for byte.
pub type Snapshot = BTreeMap<PathBuf, (Vec<u8>, u32)>;

impl Fixture {
    /// A copy of the workspace's release files (not the xtask sources):
    /// the files git tracks under them, as they are in the working tree.
    /// Untracked files (what an operator left in `release_inbox/`, a
    /// journal, an archive) stay out, so every test starts the same.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = repo_root();
        for rel in tracked(&root, &RELEASE_FILES) {
            let to = dir.path().join(&rel);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            fs::copy(root.join(&rel), &to).unwrap();
        }
        Fixture { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, text: impl AsRef<[u8]>) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// Replaces exactly one occurrence of `from`, so a fixture edit that
    /// silently does nothing fails the test instead.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert_eq!(
            text.matches(from).count(),
            1,
            "{rel} must hold `{from}` once"
        );
        self.write(rel, text.replacen(from, to, 1));
    }

    /// Runs `xtask ARGS --root DIR` with a fixed clock.
    pub fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .arg("--root")
            .arg(self.root())
            .env("SOURCE_DATE_EPOCH", "1772765937")
            .env("NO_COLOR", "1")
            .current_dir(self.root())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut out = BTreeMap::new();
        snap(self.root(), self.root(), &mut out);
        out
    }

    /// Makes the copy a git repository with every file tracked.
    pub fn git_init(&self) {
        for args in [
            &["init", "-q"][..],
            &["-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"][..],
        ] {
            let ok = Command::new("git")
                .args(args)
                .current_dir(self.root())
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        }
    }
}

/// The parts of the workspace a release reads and writes.
pub const RELEASE_FILES: [&str; 5] = [
    "release.toml",
    "VERSION",
    "server",
    "client",
    "release_inbox",
];

/// The files git tracks under `paths` of the repository at `root`, relative
/// to it; a file deleted from the working tree is left out.
pub fn tracked(root: &Path, paths: &[&str]) -> Vec<PathBuf> {
    let out = Command::new("git")
        .args(["ls-files", "-z", "--"])
        .args(paths)
        .current_dir(root)
        .output()
        .expect("the fixture lists the tracked files with git; install git");
    assert!(
        out.status.success(),
        "`git ls-files` failed in {}: {}",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<PathBuf> = out
        .stdout
        .split(|&b| b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .filter(|p| root.join(p).is_file())
        .collect();
    assert!(
        !files.is_empty(),
        "git tracks none of {paths:?} in {}",
        root.display()
    );
    files
}

fn snap(root: &Path, dir: &Path, out: &mut Snapshot) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        if path.is_dir() {
            snap(root, &path, out);
        } else {
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            out.insert(
                path.strip_prefix(root).unwrap().to_path_buf(),
                (fs::read(&path).unwrap(), mode),
            );
        }
    }
}

/// Compares `actual` with the golden file `xtask/tests/golden/NAME` as a
/// whole; `UPDATE_GOLDEN=1` rewrites the file after an intended change.
pub fn assert_golden(name: &str, actual: &str) {
    let golden = repo_root().join("xtask/tests/golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, actual).unwrap();
    }
    let want = fs::read_to_string(&golden)
        .unwrap_or_else(|_| panic!("golden file {name}; create it with UPDATE_GOLDEN=1"));
    if actual != want {
        let diff = similar_lines(&want, actual);
        panic!("{name} differs from its golden file (rerun with UPDATE_GOLDEN=1 after an intended change):\n{diff}");
    }
}

/// The lines that differ, `-` golden and `+` actual, for a short message.
fn similar_lines(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i), g.get(i));
        if a != b {
            out += &format!(
                "line {}:\n- {}\n+ {}\n",
                i + 1,
                a.unwrap_or(&""),
                b.unwrap_or(&"")
            );
        }
    }
    out
}
