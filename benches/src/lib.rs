//! Shared helpers for the load harness binaries (`loadgen`, `bench-util`):
//! the statistics parsers ([`stats`]) and the report ([`load_report`]); and
//! the soak bench ([`soak`], run by the `soak` binary).

pub mod load_report;
pub mod soak;
pub mod stats;

use serde_json::json;

/// Latency percentiles in microseconds (nearest-rank).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: u64,
}

impl Percentiles {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "count": self.count,
            "p50": self.p50,
            "p90": self.p90,
            "p99": self.p99,
            "max": self.max,
            "mean": self.mean,
        })
    }
}

/// Nearest-rank percentile of a sorted slice; 0 for an empty one.
pub fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted.get(idx).copied().unwrap_or(0)
}

/// Sorts `samples` and computes its percentiles.
pub fn percentiles_us(samples: &mut [u64]) -> Percentiles {
    samples.sort_unstable();
    let count = samples.len();
    let sum: u128 = samples.iter().map(|&v| u128::from(v)).sum();
    Percentiles {
        count,
        p50: nearest_rank(samples, 0.50),
        p90: nearest_rank(samples, 0.90),
        p99: nearest_rank(samples, 0.99),
        max: samples.last().copied().unwrap_or(0),
        mean: if count == 0 {
            0
        } else {
            (sum / count as u128) as u64
        },
    }
}

/// utime and stime (all threads) of one process, in clock ticks.
pub fn process_cpu_times(pid: u32) -> Option<(u64, u64)> {
    stats::proc_stat_times(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// utime + stime and stime alone, summed over `pids` (each read once);
/// `None` if any is unreadable.
pub fn cpu_times(pids: &[u32]) -> Option<(u64, u64)> {
    pids.iter().try_fold((0, 0), |(total, sys), &p| {
        let (u, s) = process_cpu_times(p)?;
        Some((total + u + s, sys + s))
    })
}

/// utime + stime summed over `pids`; `None` if any is unreadable.
pub fn cpu_ticks(pids: &[u32]) -> Option<u64> {
    cpu_times(pids).map(|(total, _)| total)
}

/// Busy ticks of the whole machine (all CPUs) from the first line of
/// /proc/stat: user + nice + system + irq + softirq + steal.
pub fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal ...
    Some(get(0) + get(1) + get(2) + get(5) + get(6) + get(7))
}

/// VmRSS of a process in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// A `kB` field of /proc/PID/status (`VmRSS`, `RssAnon`, `RssFile`, ...).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Open file descriptors of a process (entries of /proc/PID/fd).
pub fn fd_count(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(dir.filter(Result::is_ok).count() as u64)
}

/// The TCP sockets among a process's file descriptors, as (local port, remote
/// port, listening), read from /proc/PID/fd and /proc/PID/net/tcp{,6}.
pub fn tcp_sockets(pid: u32) -> Option<Vec<(u16, u16, bool)>> {
    let mut inodes = std::collections::HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if let Some(ino) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(ino.to_string());
            }
        }
    }
    let port = |addr: &str| {
        addr.rsplit(':')
            .next()
            .and_then(|p| u16::from_str_radix(p, 16).ok())
    };
    let mut out = Vec::new();
    for table in ["tcp", "tcp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let w: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(state), Some(ino)) =
                (w.get(1), w.get(2), w.get(3), w.get(9))
            else {
                continue;
            };
            if inodes.contains(*ino) {
                if let (Some(l), Some(r)) = (port(local), port(remote)) {
                    out.push((l, r, *state == "0A"));
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let p = percentiles_us(&mut v);
        assert_eq!(p.count, 100);
        assert_eq!(p.p50, 50);
        assert_eq!(p.p90, 90);
        assert_eq!(p.p99, 99);
        assert_eq!(p.max, 100);
        assert_eq!(p.mean, 50);
        assert_eq!(percentiles_us(&mut []), Percentiles::default());
        assert_eq!(nearest_rank(&[7], 0.99), 7);
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(cpu_ticks(&[pid]).is_some());
        assert!(machine_busy_ticks().is_some());
        assert!(rss_kib(pid).is_some_and(|k| k > 0));
        assert!(status_kib(pid, "RssAnon").is_some_and(|k| k > 0));
        assert!(fd_count(pid).is_some_and(|n| n >= 3));
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let socks = tcp_sockets(pid).expect("tcp sockets");
        assert!(socks.contains(&(port, 0, true)), "{socks:?}");
    }
}
