//! This replica's figures over the last hour in 10-second buckets, for the
//! admin API's `GET /admin/stats` (the console's overview): requests, errors,
//! tokens, spend, and the time to first token and the latency as histograms
//! (fixed bounds, so percentiles are read off them).

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds per bucket.
pub const BUCKET_S: u64 = 10;
/// Buckets kept: one hour.
pub const BUCKETS: usize = 360;
/// Upper bounds (ms) of the histogram buckets; a last one takes the rest.
pub const BOUNDS_MS: [u64; 22] = [
    5, 10, 25, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500,
    10_000, 15_000, 20_000, 30_000, 60_000,
];
pub const SLOTS: usize = BOUNDS_MS.len() + 1;

/// One finished request, as the series counts it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub status: u16,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// nano-units of the currency
    pub cost: u64,
    pub first_token_ms: Option<u64>,
    pub duration_ms: u64,
}

/// One bucket's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// the bucket's start, Unix seconds (0: never written)
    pub start: u64,
    pub requests: u64,
    /// answers with a 5xx status
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: u64,
    pub ttft: [u32; SLOTS],
    pub latency: [u32; SLOTS],
}

impl Bucket {
    fn add(&mut self, s: &Sample) {
        self.requests += 1;
        self.errors += u64::from(s.status >= 500);
        self.input_tokens = self.input_tokens.saturating_add(s.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(s.output_tokens);
        self.cost = self.cost.saturating_add(s.cost);
        if let Some(t) = s.first_token_ms {
            self.ttft[slot(t)] = self.ttft[slot(t)].saturating_add(1);
        }
        let l = slot(s.duration_ms);
        self.latency[l] = self.latency[l].saturating_add(1);
    }

    /// Adds `other`'s figures (its start aside).
    pub fn merge(&mut self, other: &Bucket) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost = self.cost.saturating_add(other.cost);
        for i in 0..SLOTS {
            self.ttft[i] = self.ttft[i].saturating_add(other.ttft[i]);
            self.latency[i] = self.latency[i].saturating_add(other.latency[i]);
        }
    }
}

fn slot(ms: u64) -> usize {
    BOUNDS_MS
        .iter()
        .position(|&b| ms <= b)
        .unwrap_or(BOUNDS_MS.len())
}

/// The `q` quantile (0-1) of a histogram, as the upper bound of the bucket it
/// falls in (None: empty; the last bucket reads as its lower bound).
pub fn quantile(h: &[u32; SLOTS], q: f64) -> Option<u64> {
    let total: u64 = h.iter().map(|&c| u64::from(c)).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (i, &c) in h.iter().enumerate() {
        seen += u64::from(c);
        if seen >= rank {
            return Some(
                BOUNDS_MS
                    .get(i)
                    .copied()
                    .unwrap_or(BOUNDS_MS[BOUNDS_MS.len() - 1]),
            );
        }
    }
    None
}

/// The last hour of this replica.
pub struct Series {
    ring: Mutex<Vec<Bucket>>,
}

impl Default for Series {
    fn default() -> Self {
        Series {
            ring: Mutex::new(vec![Bucket::default(); BUCKETS]),
        }
    }
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Series {
    /// Counts `s` in the bucket of now.
    pub fn record(&self, s: &Sample) {
        self.record_at(now_s(), s);
    }

    fn record_at(&self, now: u64, s: &Sample) {
        let start = now - now % BUCKET_S;
        let i = ((start / BUCKET_S) % BUCKETS as u64) as usize;
        let mut ring = match self.ring.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        if let Some(b) = ring.get_mut(i) {
            if b.start != start {
                *b = Bucket {
                    start,
                    ..Bucket::default()
                };
            }
            b.add(s);
        }
    }

    /// The buckets of the last `window_s` seconds, oldest first, one per
    /// bucket time (empty ones included).
    pub fn window(&self, window_s: u64) -> Vec<Bucket> {
        self.window_at(now_s(), window_s)
    }

    fn window_at(&self, now: u64, window_s: u64) -> Vec<Bucket> {
        let n = (window_s / BUCKET_S).clamp(1, BUCKETS as u64);
        let last = now - now % BUCKET_S;
        let ring = match self.ring.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        (0..n)
            .rev()
            .map(|k| {
                let start = last.saturating_sub(k * BUCKET_S);
                let i = ((start / BUCKET_S) % BUCKETS as u64) as usize;
                match ring.get(i) {
                    Some(b) if b.start == start => *b,
                    _ => Bucket {
                        start,
                        ..Bucket::default()
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(status: u16, ttft: u64, total: u64) -> Sample {
        Sample {
            status,
            input_tokens: 10,
            output_tokens: 5,
            cost: 1_000,
            first_token_ms: Some(ttft),
            duration_ms: total,
        }
    }

    #[test]
    fn requests_land_in_their_bucket_and_old_buckets_are_reused() {
        let s = Series::default();
        let t0 = 1_000_000;
        s.record_at(t0, &sample(200, 40, 400));
        s.record_at(t0 + 3, &sample(502, 40, 900));
        s.record_at(t0 + 10, &sample(200, 120, 1_200));
        let w = s.window_at(t0 + 10, 30);
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].requests, 0, "the bucket before t0 is empty");
        assert_eq!((w[1].requests, w[1].errors, w[1].input_tokens), (2, 1, 20));
        assert_eq!((w[2].requests, w[2].cost), (1, 1_000));
        // an hour later the same slot starts again
        s.record_at(t0 + 3_600, &sample(200, 5, 5));
        let w = s.window_at(t0 + 3_600, 10);
        assert_eq!(w[0].requests, 1);
        assert_eq!(
            s.window_at(t0 + 3_600, 3_600)
                .iter()
                .map(|b| b.requests)
                .sum::<u64>(),
            2
        );
    }

    #[test]
    fn percentiles_are_read_off_the_histogram() {
        let mut b = Bucket::default();
        for ms in [8, 9, 10, 40, 45, 48, 90, 400, 2_500, 70_000] {
            b.add(&sample(200, ms, ms));
        }
        assert_eq!(quantile(&b.ttft, 0.5), Some(50));
        assert_eq!(quantile(&b.ttft, 0.9), Some(3_000));
        assert_eq!(quantile(&b.latency, 0.99), Some(60_000));
        assert_eq!(quantile(&Bucket::default().ttft, 0.5), None);
    }
}
