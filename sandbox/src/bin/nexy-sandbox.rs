//! `nexy-sandbox up [--state DIR] [--port N] [--tls-port N] [--token T]
//! [--faults FILE]`: run the stand-in in the foreground until SIGINT/SIGTERM.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn usage() -> &'static str {
    "usage: nexy-sandbox up [--state DIR] [--port N] [--tls-port N] [--token T] [--faults FILE.json]"
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
            "--faults" => {
                let p = need()?;
                opts.faults = Some(nexy_sandbox::Faults::load(std::path::Path::new(&p))?);
            }
            other => bail!("unknown argument {other}\n{}", usage()),
        }
        i += 2;
    }
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())
        .context("SIGINT handler")?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())
        .context("SIGTERM handler")?;
    let sb = nexy_sandbox::Sandbox::start(opts)?;
    println!(
        "# nexy-sandbox serving on {} (tls {})",
        sb.base_url(),
        sb.tls_port()
    );
    println!("# state: {}", sb.state_dir().display());
    print!("{}", sb.env_file_text());
    println!("# ca: {}", sb.ca_pem_path().display());
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("nexy-sandbox: stopping");
    drop(sb);
    Ok(())
}
