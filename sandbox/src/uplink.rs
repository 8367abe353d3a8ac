//! The operator's uplink, shared by the uploads in flight: with a
//! bandwidth set (the `production-like` profile), an upload's bytes cross
//! one link of that many bytes per second, split evenly among the uploads
//! crossing it at the same time (processor sharing, as TCP flows on one
//! bottleneck roughly are), so that two uploads side by side take as long
//! as their sum would alone. Not capped: a 370 MB release at 100 Mbit/s
//! takes its half minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::util::lock;

/// The longest sleep between two looks at the link, so that an upload
/// finishing lends its share to the others promptly.
const TICK: Duration = Duration::from_millis(20);

pub struct Uplink {
    bytes_per_sec: u64,
    state: Mutex<State>,
}

struct State {
    last: Instant,
    next_id: u64,
    /// Bytes each upload in flight has still to send.
    active: HashMap<u64, f64>,
}

impl Uplink {
    /// A link of `bytes_per_sec` (0: unlimited).
    pub fn new(bytes_per_sec: u64) -> Uplink {
        Uplink {
            bytes_per_sec,
            state: Mutex::new(State {
                last: Instant::now(),
                next_id: 0,
                active: HashMap::new(),
            }),
        }
    }

    /// Returns once `bytes` have crossed the link beside the others.
    pub fn send(&self, bytes: u64) {
        if self.bytes_per_sec == 0 || bytes == 0 {
            return;
        }
        let id = {
            let mut st = lock(&self.state);
            self.advance(&mut st);
            let id = st.next_id;
            st.next_id += 1;
            st.active.insert(id, bytes as f64);
            id
        };
        loop {
            let wait = {
                let mut st = lock(&self.state);
                self.advance(&mut st);
                match st.active.get(&id) {
                    None => return,
                    Some(left) => Duration::from_secs_f64(
                        left * st.active.len() as f64 / self.bytes_per_sec as f64,
                    ),
                }
            };
            std::thread::sleep(wait.clamp(Duration::from_millis(1), TICK));
        }
    }

    /// Shares the bytes the link carried since the last look among the
    /// uploads in flight; one that finishes lends the rest of its share.
    fn advance(&self, st: &mut State) {
        let now = Instant::now();
        let mut budget = now.duration_since(st.last).as_secs_f64() * self.bytes_per_sec as f64;
        st.last = now;
        while budget > 0.0 && !st.active.is_empty() {
            let n = st.active.len() as f64;
            let least = st.active.values().copied().fold(f64::INFINITY, f64::min);
            let share = (budget / n).min(least);
            for left in st.active.values_mut() {
                *left -= share;
            }
            budget -= share * n;
            st.active.retain(|_, left| *left > 0.5);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn uploads_side_by_side_share_the_link() {
        // 1 MB/s: 300 kB alone takes 0.3 s; 300 kB and 100 kB together
        // take 0.4 s, the small one done at 0.2 s (half the link each).
        let link = Arc::new(Uplink::new(1_000_000));
        let started = Instant::now();
        link.send(300_000);
        let alone = started.elapsed().as_secs_f64();
        assert!((0.29..0.6).contains(&alone), "{alone}");
        let started = Instant::now();
        let (a, b) = (link.clone(), link.clone());
        let big = std::thread::spawn(move || {
            a.send(300_000);
            started.elapsed().as_secs_f64()
        });
        let small = std::thread::spawn(move || {
            b.send(100_000);
            started.elapsed().as_secs_f64()
        });
        let (big, small) = (big.join().unwrap(), small.join().unwrap());
        // Upper bounds leave room for a loaded machine oversleeping.
        assert!((0.19..0.35).contains(&small), "{small}");
        assert!((0.39..0.7).contains(&big), "{big}");
        assert!(big - small > 0.1, "{small} {big}");
        // Unlimited: no wait.
        let started = Instant::now();
        Uplink::new(0).send(1 << 30);
        assert!(started.elapsed() < Duration::from_millis(5));
    }
}
