//! A production stand-in for end-to-end tests: the `nexy-sandbox` running
//! in-process, a temporary workspace whose VM and feed start in sync with
//! it, and a way to run `xtask` and the real `gh` against both.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use nexy_sandbox::{Options, Sandbox};

use super::{Fixture, Run};

pub const MANIFEST: &str = "server/updates/manifests/manifest.json";

pub struct Stage {
    pub fx: Fixture,
    pub sb: Sandbox,
    pub config: PathBuf,
    /// The stand-in's state dir when the stage owns it (a fork); dropped
    /// after `sb`, so the stand-in stops before its files go.
    _state: Option<tempfile::TempDir>,
}

/// The VM's systemctl shim, built next to the xtask binary by
/// `cargo test --workspace`.
fn systemctl_binary() -> PathBuf {
    let xtask = PathBuf::from(env!("CARGO_BIN_EXE_xtask"));
    let shim = xtask.with_file_name("nexy-vm-systemctl");
    assert!(
        shim.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` so the stand-in's binaries are built",
        shim.display()
    );
    shim
}

/// The real az (azure-cli 2.91.0 in the project's venv). Tests never
/// install it: without it they fail here, saying how to.
pub fn real_az() -> PathBuf {
    nexy_sandbox::azcli::find().unwrap_or_else(|e| panic!("{e:#}"))
}

/// `cp -a FROM/. TO`: every file, mode and symlink.
fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from.join("."))
        .arg(to)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "cp -a {} {}",
        from.display(),
        to.display()
    );
}

impl Stage {
    /// A stand-in whose VM runs the workspace's current release.
    pub fn new() -> Stage {
        let stage = Stage::serve(Fixture::new(), None);
        // The VM serves what the workspace says is live.
        let app = stage.sb.vm_app_dir();
        let version = stage.fx.read("VERSION").trim().to_string();
        fs::write(
            app.join("config.env"),
            format!("GEMINI_API_KEY=sandbox-key-not-real\nSERVER_VERSION={version}\nSERVER_BUILD={version}\n"),
        )
        .unwrap();
        fs::write(app.join(MANIFEST), stage.fx.read(MANIFEST)).unwrap();
        // The test's own set-up, straight on the VM (not through az).
        nexy_sandbox::vmrun::execute(stage.sb.state_dir(), "systemctl restart voice-assistant")
            .expect("the VM restarts");
        stage.write_release_target();
        stage
    }

    /// `xtask sandbox config`: the release target of the stand-in.
    fn write_release_target(&self) {
        let run = self.xtask(&[
            "sandbox",
            "config",
            "--state",
            self.sb.state_dir().to_str().unwrap(),
        ]);
        assert_eq!(run.code, 0, "{run:?}");
    }

    /// A copy of this stage to spend on one run: the workspace and the
    /// stand-in's state (GitHub, the VM and its service, the feed) copied
    /// as they are, served by a new stand-in with ports, CA and request log
    /// of its own, and the real az set up afresh (a fresh config dir and
    /// its own login), as `Stage::new` does. This stage must be idle.
    pub fn fork(&self) -> Stage {
        let fx = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        copy_tree(self.fx.root(), fx.root());
        let state = tempfile::tempdir().unwrap();
        copy_tree(self.sb.state_dir(), state.path());
        // What names this stand-in is written anew by the next one.
        for own in ["requests.jsonl", "sandbox.json", "release.toml", "env"] {
            let _ = fs::remove_file(state.path().join(own));
        }
        let stage = Stage::serve(fx, Some(state));
        stage.write_release_target();
        stage
    }

    /// Starts a stand-in with the real az on `state` (a fresh temporary
    /// dir the stand-in removes when `None`) for the workspace `fx`.
    fn serve(fx: Fixture, state: Option<tempfile::TempDir>) -> Stage {
        let sb = Sandbox::start(Options {
            state_dir: state.as_ref().map(|d| d.path().to_path_buf()),
            systemctl_binary: Some(systemctl_binary()),
            az: Some(real_az()),
            ..Options::default()
        })
        .expect("the stand-in starts");
        Stage {
            config: sb.state_dir().join("release.toml"),
            fx,
            sb,
            _state: state,
        }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        self.sb.env()
    }

    /// `xtask ARGS --root FIXTURE --config STAND-IN` with the stand-in's env.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        let config = self.config.to_str().unwrap().to_string();
        all.extend(["--config", &config]);
        self.xtask(&all)
    }

    /// Like `run`, with extra environment variables.
    pub fn run_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        let config = self.config.to_str().unwrap().to_string();
        all.extend(["--config", &config]);
        self.xtask_env(&all, extra)
    }

    fn xtask(&self, args: &[&str]) -> Run {
        self.xtask_env(args, &[])
    }

    fn xtask_env(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .arg("--root")
            .arg(self.fx.root())
            .envs(self.env())
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .env("SOURCE_DATE_EPOCH", "1772765937")
            .current_dir(self.fx.root())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs a script on the stand-in VM through the real az.
    pub fn az_script(&self, script: &str) -> std::process::Output {
        Command::new(real_az())
            .args([
                "vm",
                "run-command",
                "invoke",
                "-g",
                "NexyNewRG",
                "-n",
                "NexyNew",
            ])
            .args(["--command-id", "RunShellScript", "--scripts", script])
            .envs(self.env())
            .output()
            .unwrap()
    }

    /// Runs the real gh with the stand-in's env.
    pub fn gh(&self, args: &[&str]) -> std::process::Output {
        Command::new("gh")
            .args(args)
            .envs(self.env())
            .output()
            .unwrap()
    }

    /// Writes sample artifacts into the inbox; `seed` picks their bytes.
    pub fn samples(&self, seed: u64, dmg_size: u64) {
        self.samples_in("release_inbox", seed, dmg_size);
    }

    /// Writes sample artifacts into `rel` under the workspace.
    pub fn samples_in(&self, rel: &str, seed: u64, dmg_size: u64) {
        let inbox = self.fx.path(rel);
        let run = self.xtask(&[
            "samples",
            "--out",
            inbox.to_str().unwrap(),
            "--seed",
            &seed.to_string(),
            "--dmg-size",
            &dmg_size.to_string(),
            "--pkg-size",
            &(dmg_size / 2).to_string(),
        ]);
        assert_eq!(run.code, 0, "{run:?}");
    }

    pub fn inbox_bytes(&self, name: &str) -> Vec<u8> {
        fs::read(self.fx.path("release_inbox").join(name)).unwrap()
    }

    /// The live manifest on the stand-in VM.
    pub fn vm_manifest(&self) -> String {
        fs::read_to_string(self.sb.vm_app_dir().join(MANIFEST)).unwrap()
    }

    /// Requests since index `from` of the log whose method mutates state.
    pub fn mutating_since(&self, from: usize) -> Vec<String> {
        self.sb
            .requests()
            .into_iter()
            .skip(from)
            .filter(|r| r.kind == "http" && !r.url.contains("/_sandbox/"))
            .filter(|r| {
                matches!(r.method.as_str(), "POST" | "PATCH" | "DELETE" | "PUT")
                    && !r.url.ends_with("/graphql")
            })
            .map(|r| format!("{} {} {}", r.method, r.url, r.status))
            .collect()
    }

    /// Requests that would create a tag or a release, ever.
    pub fn creations(&self) -> Vec<String> {
        self.sb
            .requests()
            .into_iter()
            .filter(|r| {
                r.method == "POST" && (r.url.ends_with("/releases") || r.url.contains("/git/refs"))
            })
            .map(|r| r.url)
            .collect()
    }

    pub fn log_len(&self) -> usize {
        self.sb.requests().len()
    }

    pub fn state_dir(&self) -> &Path {
        self.sb.state_dir()
    }
}
