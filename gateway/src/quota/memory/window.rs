//! One window of the in-process quota store: sliding (60 sub-buckets) or a
//! calendar period (one bucket), loaded up to a moment as the v5 scripts'
//! `advance` does.

use super::super::ops::{Span, BUCKETS};
use std::collections::HashMap;
use std::sync::Arc;

/// Which window a window is: a changed one starts afresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// none yet
    New,
    Sliding(u64),
    Calendar(Arc<str>),
}

/// Where a window stands at one moment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cut {
    /// the bucket charged now: a sliding window's `now / b`, a calendar's
    /// period start
    pub(super) cur: u64,
    /// the oldest bucket that counts
    pub(super) oldest: u64,
    /// a sliding window's bucket length (ms)
    pub(super) b: u64,
    /// a calendar period's end (ms)
    pub(super) end: Option<u64>,
}

impl Cut {
    pub(super) fn of(span: &Span, now: u64) -> Cut {
        match span {
            Span::Sliding(ms) => {
                let b = bucket_ms(*ms);
                let cur = now / b;
                Cut {
                    cur,
                    oldest: cur.saturating_sub(BUCKETS),
                    b,
                    end: None,
                }
            }
            Span::Calendar { bounds, .. } => {
                // the bounds come from this process's clock: one holds now
                // (else the nearest period)
                let (start, end) = span.period(now).unwrap_or(if now < bounds[0] {
                    (bounds[0], bounds[1])
                } else {
                    (bounds[2], bounds[3])
                });
                Cut {
                    cur: start,
                    oldest: start,
                    b: 1,
                    end: Some(end),
                }
            }
        }
    }

    /// When the window's hash would end after a charge now.
    pub(super) fn ends(&self, span: &Span, now: u64) -> u64 {
        match (span, self.end) {
            (_, Some(end)) => end.saturating_add(60_000),
            (Span::Sliding(ms), None) => {
                now.saturating_add(ms.saturating_mul(2).saturating_add(self.b))
            }
            (Span::Calendar { .. }, None) => now,
        }
    }
}

fn kind(span: &Span) -> Kind {
    match span {
        Span::Sliding(ms) => Kind::Sliding(*ms),
        Span::Calendar { name, .. } => Kind::Calendar(name.clone()),
    }
}

pub(super) struct Window {
    pub(super) kind: Kind,
    /// what it was last loaded with (reports load it again)
    pub(super) span: Option<Span>,
    /// the calendar period's end, for a calendar window
    pub(super) period_end: Option<u64>,
    /// the highest alert percentage sent in this period
    pub(super) alerted: u8,
    /// bucket index -> amount
    pub(super) buckets: HashMap<u64, u64>,
    /// a new one each time the window starts afresh (made, length changed):
    /// reservations from an older generation never move its buckets
    pub(super) gen: u64,
    /// the bucket `ends` was last set for (None: not since the window began)
    pub(super) renewed: Option<u64>,
    /// when the window ends unless it is charged again (ms)
    pub(super) ends: u64,
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_gen() -> u64 {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Window {
    pub(super) fn new() -> Window {
        Window {
            kind: Kind::New,
            span: None,
            period_end: None,
            alerted: 0,
            buckets: HashMap::new(),
            gen: next_gen(),
            renewed: None,
            ends: 0,
        }
    }
}

pub(super) fn bucket_ms(window_ms: u64) -> u64 {
    window_ms.div_ceil(BUCKETS).max(1)
}

impl Window {
    /// Drops buckets that left the window (a calendar's period that ended);
    /// answers the sum and where the window stands.
    pub(super) fn load(&mut self, span: &Span, now: u64) -> (u64, Cut) {
        let k = kind(span);
        let cut = Cut::of(span, now);
        let ended = matches!(k, Kind::Calendar(_)) && self.period_end.is_some_and(|e| e <= now);
        if self.kind != k || ended {
            self.kind = k;
            self.alerted = 0;
            self.buckets.clear();
            self.gen = next_gen();
            self.renewed = None;
        }
        self.period_end = cut.end;
        if self.span.as_ref() != Some(span) {
            self.span = Some(span.clone());
        }
        self.buckets
            .retain(|&i, v| i >= cut.oldest && i <= cut.cur && *v > 0);
        (self.buckets.values().sum(), cut)
    }

    pub(super) fn reset_ms(&self, cut: &Cut, now: u64) -> u64 {
        if let Some(end) = cut.end {
            return match self.buckets.values().any(|v| *v > 0) {
                true => end.saturating_sub(now),
                false => 0,
            };
        }
        let b = cut.b;
        self.buckets
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(i, _)| *i)
            .max()
            .map_or(0, |i| ((i + BUCKETS + 1) * b).saturating_sub(now))
    }

    /// ms until enough old buckets leave for `need` more to fit.
    pub(super) fn retry_ms(&self, need: u64, cut: &Cut, now: u64) -> Option<u64> {
        if let Some(end) = cut.end {
            return Some(end.saturating_sub(now));
        }
        let (cur, b) = (cut.cur, cut.b);
        let mut freed = 0u64;
        for i in cur.saturating_sub(BUCKETS)..=cur {
            freed = freed.saturating_add(self.buckets.get(&i).copied().unwrap_or(0));
            if freed >= need && freed > 0 {
                return Some(((i + BUCKETS + 1) * b).saturating_sub(now));
            }
        }
        None
    }

    pub(super) fn take(&mut self, bucket: u64, amount: u64) {
        if let Some(v) = self.buckets.get_mut(&bucket) {
            *v = v.saturating_sub(amount);
        }
    }
}
