//! The real Azure CLI (PyPI `azure-cli` 2.91.0 in the project's virtual
//! environment `target/azure-cli`, installed by `.ci/azure-cli`) pointed at
//! the stand-in: a fresh `AZURE_CONFIG_DIR` in the state dir, the CA bundle,
//! every online extra off, the version check pre-seeded, the custom cloud
//! registered and set and the service principal logged in.
//!
//! The secret reaches `az login` on its stdin (`-p @-`: az expands `@FILE`
//! in any argument, `-` being stdin), so it is on no command line. az then
//! keeps it in plain text in `$AZURE_CONFIG_DIR/service_principal_entries.json`
//! (as it does on an operator's machine); the state dir is the stand-in's.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const VERSION: &str = "2.91.0";

/// How long one az call of the set-up may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// The project's venv (the workspace is this crate's parent).
pub fn venv_az() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/azure-cli/bin/az")
}

/// The real az: `$NEXY_AZ`, else the project's venv. Never installs.
pub fn find() -> Result<PathBuf> {
    let p = std::env::var_os("NEXY_AZ")
        .map(PathBuf::from)
        .unwrap_or_else(venv_az);
    if !p.is_file() {
        bail!(
            "azure-cli {VERSION} is not installed ({} is missing): run `.ci/azure-cli` (it installs it from PyPI into target/azure-cli), or set NEXY_AZ to an az {VERSION}",
            p.display()
        );
    }
    p.canonicalize()
        .with_context(|| format!("canonicalize {}", p.display()))
}

/// `$AZURE_CONFIG_DIR` of a state dir.
pub fn config_dir(state: &Path) -> PathBuf {
    state.join("azure-config")
}

/// What az needs to reach the stand-in and nothing else.
pub fn env(state: &Path) -> Vec<(String, String)> {
    let s = |k: &str, v: String| (k.to_string(), v);
    vec![
        s("AZURE_CONFIG_DIR", config_dir(state).display().to_string()),
        s(
            "REQUESTS_CA_BUNDLE",
            state.join("ca.pem").display().to_string(),
        ),
        // Essential: else MSAL asks login.microsoftonline.com about the authority.
        s("AZURE_CORE_INSTANCE_DISCOVERY", "false".into()),
        s("AZURE_CORE_COLLECT_TELEMETRY", "false".into()),
        // Else a usage error calls an online recommendation service.
        s("AZURE_CORE_ERROR_RECOMMENDATION", "off".into()),
        s("AZURE_CORE_SURVEY_MESSAGE", "false".into()),
        s("AZURE_CORE_NO_COLOR", "true".into()),
        // Never fetch an extension on demand.
        s("AZURE_EXTENSION_USE_DYNAMIC_INSTALL", "no".into()),
    ]
}

/// `versionCheck.json` that makes az believe it checked just now.
pub const VERSION_CHECK: &str = r#"{"versions":{"azure-cli":{"local":"2.91.0"},"core":{"local":"2.91.0"},"telemetry":{"local":"1.1.0"}},"update_time":"2099-01-01 00:00:00.000000"}"#;

/// `az login` of the stand-in's service principal; `password` is `@-`
/// (the secret on stdin) unless a test wants a wrong one.
pub fn login_args(password: &str) -> Vec<&str> {
    vec![
        "login",
        "--service-principal",
        "-u",
        crate::arm::APP_ID,
        "-p",
        password,
        "--tenant",
        crate::arm::TENANT,
        "-o",
        "none",
    ]
}

/// Makes a fresh config dir and logs the service principal in.
pub fn configure(
    state: &Path,
    az: &Path,
    arm_base: &str,
    secret: &str,
    extra_env: &[(String, String)],
) -> Result<()> {
    let dir = config_dir(state);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    std::fs::write(dir.join("versionCheck.json"), VERSION_CHECK)
        .context("write versionCheck.json")?;
    let endpoint = format!("{arm_base}/");
    let cloud = crate::arm::CLOUD;
    let steps: [(Vec<&str>, Option<&str>); 3] = [
        (
            vec![
                "cloud",
                "register",
                "-n",
                cloud,
                "--endpoint-resource-manager",
                &endpoint,
                "-o",
                "none",
            ],
            None,
        ),
        (vec!["cloud", "set", "-n", cloud, "-o", "none"], None),
        (login_args("@-"), Some(secret)),
    ];
    for (args, stdin) in steps {
        let o = run(az, &args, state, extra_env, stdin)?;
        if o.0 != 0 {
            bail!(
                "`az {}` failed (exit {}): {}",
                args.join(" "),
                o.0,
                o.2.trim()
            );
        }
    }
    Ok(())
}

/// Runs az with the stand-in's settings, bounded; (exit code, stdout, stderr).
pub fn run(
    az: &Path,
    args: &[&str],
    state: &Path,
    extra_env: &[(String, String)],
    stdin: Option<&str>,
) -> Result<(i32, String, String)> {
    let mut cmd = Command::new(az);
    cmd.args(args)
        .envs(extra_env.iter().cloned())
        .envs(env(state))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {}", az.display()))?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(text.as_bytes()).context("write az stdin")?;
    }
    let mut so = child.stdout.take().context("az stdout")?;
    let mut se = child.stderr.take().context("az stderr")?;
    let t1 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let t2 = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let code = loop {
        if let Some(st) = child.try_wait().context("wait for az")? {
            break st.code().unwrap_or(-1);
        }
        if start.elapsed() > CALL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`az {}` did not finish within {}s",
                args.join(" "),
                CALL_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = t1.join().unwrap_or_default();
    let err = t2.join().unwrap_or_default();
    Ok((code, out, err))
}
