//! `nexy-sandbox up [--state DIR] [--port N] [--tls-port N] [--azure-port N]
//! [--token T] [--faults FILE] [--parent-pid PID] [--az PATH]
//! [--profile fast|production-like] [--latency KEY=VALUE]...`: run the
//! stand-in in the foreground until SIGINT, SIGTERM or SIGHUP, or until the
//! process that started it dies. The real az (`--az`, else `$NEXY_AZ`, else
//! the project's `target/azure-cli`) is set up against it; without one, it
//! says how to install it and stops.
//!
//! A stand-in that outlives whoever started it goes on serving a fake
//! GitHub on a port nobody watches, so it watches its parent: on Linux the
//! kernel sends it SIGTERM when the parent dies (`PR_SET_PDEATHSIG`), and
//! on every system it also checks, at start and every 100 ms, that its
//! parent is still the process it was started by (`--parent-pid`, else the
//! parent it had at start). The check closes the race in which the parent
//! dies before the death signal is armed, and it is the whole watch where
//! there is no `prctl` (macOS).

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn usage() -> &'static str {
    "usage: nexy-sandbox up [--state DIR] [--port N] [--tls-port N] [--azure-port N] [--token T] [--faults FILE.json] [--parent-pid PID] [--az PATH] [--profile fast|production-like] [--latency KEY=VALUE]..."
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("up") {
        bail!("{}", usage());
    }
    let mut opts = nexy_sandbox::Options {
        state_dir: Some(PathBuf::from("nexy-sandbox-state")),
        ..Default::default()
    };
    let mut parent = None;
    let mut i = 1;
    while i < args.len() {
        let val = args.get(i + 1).cloned();
        let need = || {
            val.clone()
                .with_context(|| format!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "--state" => opts.state_dir = Some(PathBuf::from(need()?)),
            "--port" => opts.port = need()?.parse().context("--port")?,
            "--tls-port" => opts.tls_port = need()?.parse().context("--tls-port")?,
            "--token" => opts.token = need()?,
            "--azure-port" => opts.azure_port = need()?.parse().context("--azure-port")?,
            "--az" => opts.az = Some(PathBuf::from(need()?)),
            "--profile" => opts.latency = nexy_sandbox::arm::Latency::named(&need()?)?,
            "--latency" => opts.latency.set(&need()?)?,
            "--faults" => {
                let p = need()?;
                opts.faults = Some(nexy_sandbox::Faults::load(std::path::Path::new(&p))?);
            }
            "--parent-pid" => parent = Some(need()?.parse::<u32>().context("--parent-pid")?),
            other => bail!("unknown argument {other}\n{}", usage()),
        }
        i += 2;
    }
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())
        .context("SIGINT handler")?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())
        .context("SIGTERM handler")?;
    signal_hook::flag::register(signal_hook::consts::SIGHUP, stop.clone())
        .context("SIGHUP handler")?;
    let parent = parent.unwrap_or_else(parent_pid);
    watch_parent();
    if parent_pid() != parent {
        bail!("the process that started nexy-sandbox (pid {parent}) is gone; not starting");
    }
    if opts.az.is_none() {
        opts.az = Some(nexy_sandbox::azcli::find()?);
    }
    let sb = nexy_sandbox::Sandbox::start(opts)?;
    println!(
        "# nexy-sandbox serving on {} (tls {})",
        sb.base_url(),
        sb.tls_port()
    );
    println!("# state: {}", sb.state_dir().display());
    print!("{}", sb.env_file_text());
    println!("# ca: {}", sb.ca_pem_path().display());
    println!("# azure: {}", sb.azure_url());
    while !stop.load(Ordering::SeqCst) {
        if parent_pid() != parent {
            eprintln!("nexy-sandbox: the process that started it (pid {parent}) is gone");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("nexy-sandbox: stopping");
    drop(sb);
    Ok(())
}

/// This process's parent now (1, or a subreaper, once the parent died).
fn parent_pid() -> u32 {
    std::os::unix::process::parent_id()
}

/// Asks the kernel for SIGTERM when the parent dies; the signal handler
/// above turns it into a clean stop.
#[cfg(target_os = "linux")]
fn watch_parent() {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and changes only this
    // process's own setting; a failure leaves the 100 ms check in place.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
}

/// macOS has no parent-death signal: the 100 ms check of the parent is the
/// watch.
#[cfg(not(target_os = "linux"))]
fn watch_parent() {}
