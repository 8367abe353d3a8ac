//! Pollers on the fixed download URLs: one thread per URL sends a minimal
//! HTTP/1.1 GET every 10 ms, reads only the status line and closes, and
//! records whether the URL was available at that moment.
//!
//! Available means 200 or a redirect (the stand-in, like github.com,
//! answers 302 to a storage host); a 404, any other status or a failed
//! connection is a moment a client's download would have failed. A slow
//! answer is not a failure (a client waits for it): it is timed and
//! reported apart, and each answer counts at the moment it arrived.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// The pause between two polls of one URL.
pub const INTERVAL: Duration = Duration::from_millis(10);
/// A poll with no answer after this long counts as unavailable.
const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// One answer: when it arrived (since the pollers started), how long it
/// took, and the status (0 when there was none).
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    latency: Duration,
    status: u16,
}

impl Sample {
    fn available(self) -> bool {
        (200..400).contains(&self.status)
    }
}

/// What one URL looked like over a polling window.
#[derive(Debug, Clone)]
pub struct Report {
    pub name: String,
    pub polls: usize,
    /// The mean time between two polls actually achieved (a slow answer
    /// delays the next poll).
    pub mean_interval: Duration,
    pub unavailable: usize,
    /// From the first failed poll of a run of failures to the next
    /// successful one: the longest such run.
    pub longest_gap: Duration,
    /// The slowest answer (a busy server, not a failure).
    pub slowest: Duration,
    /// True when the window ended while the URL was still unavailable.
    pub ended_unavailable: bool,
    /// The statuses seen, e.g. `302 x610, 404 x9`.
    pub statuses: String,
}

/// Running pollers; stopped (and joined) by [`Pollers::stop`] or on drop.
pub struct Pollers {
    stop: Arc<AtomicBool>,
    threads: Vec<(String, JoinHandle<Vec<Sample>>)>,
}

impl Pollers {
    /// Starts one poller per `(name, url)`; `url` is `http://HOST:PORT/PATH`
    /// with a numeric address (the stand-in's own).
    pub fn start(urls: &[(String, String)]) -> Result<Pollers> {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let mut pollers = Pollers {
            stop: stop.clone(),
            threads: Vec::new(),
        };
        for (name, url) in urls {
            let (addr, path) = split_url(url)?;
            let stop = stop.clone();
            let handle = thread::Builder::new()
                .name(format!("bench-poll-{name}"))
                .spawn(move || poll_loop(addr, &path, started, &stop))
                .context("cannot start a poller thread")?;
            pollers.threads.push((name.clone(), handle));
        }
        Ok(pollers)
    }

    /// Stops every poller and summarises what each saw.
    pub fn stop(mut self) -> Vec<Report> {
        self.stop.store(true, Ordering::Relaxed);
        std::mem::take(&mut self.threads)
            .into_iter()
            .map(|(name, handle)| summarise(name, &handle.join().unwrap_or_default()))
            .collect()
    }
}

impl Drop for Pollers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for (_, handle) in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

/// `http://127.0.0.1:PORT/a/b` into the socket address and `/a/b`.
fn split_url(url: &str) -> Result<(SocketAddr, String)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("the poller speaks plain HTTP only, not {url}");
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = authority
        .parse()
        .with_context(|| format!("{url} does not name a numeric address and port"))?;
    Ok((addr, if path.is_empty() { "/" } else { path }.to_string()))
}

fn poll_loop(addr: SocketAddr, path: &str, started: Instant, stop: &AtomicBool) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let status = poll_once(addr, path).unwrap_or(0);
        samples.push(Sample {
            at: started.elapsed(),
            latency: sent.elapsed(),
            status,
        });
        // A fixed rate; a slow answer delays the next poll, never bunches them.
        next += INTERVAL;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    samples
}

/// One GET; the status code of the answer.
fn poll_once(addr: SocketAddr, path: &str) -> Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, POLL_TIMEOUT)?;
    stream.set_read_timeout(Some(POLL_TIMEOUT))?;
    stream.set_write_timeout(Some(POLL_TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: nexy-bench-poller\r\nConnection: close\r\n\r\n"
    )?;
    // One line of at most 1 KiB: a status line is far shorter.
    let mut line = String::new();
    BufReader::new((&stream).take(1024))
        .read_line(&mut line)
        .context("no status line")?;
    // `HTTP/1.1 302 Found`
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .context("a malformed status line")
}

fn summarise(name: String, samples: &[Sample]) -> Report {
    let unavailable = samples.iter().filter(|s| !s.available()).count();
    let mut longest = Duration::ZERO;
    let mut failing_since: Option<Duration> = None;
    for s in samples {
        match (s.available(), failing_since) {
            (false, None) => failing_since = Some(s.at),
            (true, Some(since)) => {
                longest = longest.max(s.at - since);
                failing_since = None;
            }
            _ => {}
        }
    }
    let ended_unavailable = failing_since.is_some();
    if let (Some(since), Some(last)) = (failing_since, samples.last()) {
        longest = longest.max(last.at - since);
    }
    let mut counts: Vec<(u16, usize)> = Vec::new();
    for s in samples {
        match counts.iter_mut().find(|(code, _)| *code == s.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((s.status, 1)),
        }
    }
    counts.sort();
    let statuses = counts
        .iter()
        .map(|(code, n)| {
            if *code == 0 {
                format!("no answer x{n}")
            } else {
                format!("{code} x{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mean_interval = match (samples.first(), samples.last()) {
        (Some(first), Some(last)) if samples.len() > 1 => {
            (last.at - first.at) / u32::try_from(samples.len() - 1).unwrap_or(u32::MAX)
        }
        _ => Duration::ZERO,
    };
    Report {
        name,
        polls: samples.len(),
        mean_interval,
        slowest: samples.iter().map(|s| s.latency).max().unwrap_or_default(),
        unavailable,
        longest_gap: longest,
        ended_unavailable,
        statuses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_gap_runs_from_the_first_failure_to_the_next_success() {
        let ms = Duration::from_millis;
        let samples: Vec<Sample> = [
            (0, 302),
            (10, 404),
            (20, 404),
            (30, 302),
            (40, 0),
            (95, 302),
        ]
        .iter()
        .map(|&(at, status)| Sample {
            at: ms(at),
            latency: ms(at % 7),
            status,
        })
        .collect();
        let r = summarise("x".into(), &samples);
        assert_eq!((r.polls, r.unavailable), (6, 3));
        assert_eq!(r.mean_interval, ms(19));
        assert_eq!(r.slowest, ms(6));
        assert_eq!(r.longest_gap, ms(55));
        assert!(!r.ended_unavailable);
        assert_eq!(r.statuses, "no answer x1, 302 x3, 404 x2");
        let r = summarise("x".into(), &samples[..5]);
        assert!(r.ended_unavailable);
        assert_eq!(r.longest_gap, ms(20));
    }

    #[test]
    fn splits_numeric_urls_only() {
        let (addr, path) = split_url("http://127.0.0.1:8080/a/b.dmg").unwrap();
        assert_eq!((addr.port(), path.as_str()), (8080, "/a/b.dmg"));
        assert!(split_url("https://github.com/x").is_err());
        assert!(split_url("http://localhost:1/x").is_err());
    }

    #[test]
    fn polls_a_local_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            for _ in 0..3 {
                let (mut s, _) = listener.accept().unwrap();
                // The whole head, so that closing sends no reset.
                let mut reader = BufReader::new(&s);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                s.write_all(b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n")
                    .unwrap();
            }
        });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..3 {
            assert_eq!(poll_once(addr, "/x").unwrap(), 302);
        }
        server.join().unwrap();
    }
}
