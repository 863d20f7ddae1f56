//! The health rules of one target (a provider, or one of its api tokens), in
//! process: the same state machine as `lua/health_report.v1.lua`. It is the whole
//! story on the memory backend, and every replica's local outlier detection on the
//! Redis backend (what steers while Redis cannot be reached).

use std::collections::VecDeque;

/// The longest a passive ejection grows to by doubling (unless the configured
/// first ejection is longer).
pub const CAP_MS: u64 = 300_000;

pub use crate::config::health::{Passive, ProbeRule};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    #[default]
    Passive,
    Active,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Passive => "passive",
            Source::Active => "active",
        }
    }

    pub fn parse(s: &str) -> Source {
        if s == "active" {
            Source::Active
        } else {
            Source::Passive
        }
    }
}

/// One target's health; times are ms on the clock of whoever keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetState {
    /// consecutive failures (reset by a success)
    pub fails: u64,
    /// times of the recent failures, oldest first, at most `Passive::failures`
    pub recent: VecDeque<u64>,
    /// ejected until (0: never ejected)
    pub until: u64,
    /// when the current (or last) ejection began
    pub since: u64,
    /// ejections in a row, for doubling
    pub ejections: u32,
    pub source: Source,
    pub last_error: Option<String>,
    pub probe_ok: u64,
    pub probe_ko: u64,
}

impl TargetState {
    pub fn ejected(&self, now: u64) -> bool {
        self.until > now
    }

    /// `count` failures from traffic. Returns true when they ejected the target.
    pub fn fail(&mut self, now: u64, count: u32, p: &Passive, err: Option<&str>) -> bool {
        self.note(err);
        self.fails += u64::from(count);
        // recovery after this takes `healthy` good probes in a row again
        self.probe_ok = 0;
        if self.ejected(now) {
            // requests that were already on their way: not held against the
            // target's next period
            return false;
        }
        self.recent.retain(|&at| at + p.window_ms > now);
        for _ in 0..count {
            self.recent.push_back(now);
        }
        let keep = p.failures.max(1) as usize;
        while self.recent.len() > keep {
            self.recent.pop_front();
        }
        self.recent.len() >= keep && self.eject(now, p.ejection_ms, Source::Passive, true)
    }

    /// A success from traffic.
    pub fn succeed(&mut self) {
        self.fails = 0;
        self.recent.clear();
    }

    /// A probe result. Returns true when it ejected the target or ended its ejection.
    pub fn probe(&mut self, now: u64, ok: bool, r: &ProbeRule, err: Option<&str>) -> bool {
        self.note(err);
        if ok {
            // traffic failures stay counted: /models may answer while chat fails
            self.probe_ok += 1;
            self.probe_ko = 0;
            if self.probe_ok >= u64::from(r.healthy) && self.ejected(now) {
                self.until = now;
                return true;
            }
            false
        } else {
            self.probe_ko += 1;
            self.probe_ok = 0;
            self.fails += 1;
            self.probe_ko >= u64::from(r.unhealthy)
                && self.eject(now, r.hold_ms, Source::Active, false)
        }
    }

    fn note(&mut self, err: Option<&str>) {
        if let Some(e) = err.filter(|e| !e.is_empty()) {
            self.last_error = Some(e.to_string());
        }
    }

    fn eject(&mut self, now: u64, base: u64, source: Source, doubling: bool) -> bool {
        if self.ejected(now) {
            // an active hold is renewed; a passive ejection is not extended
            if !doubling && now + base > self.until {
                self.until = now + base;
                self.source = source;
            }
            return false;
        }
        let mut dur = base;
        if doubling {
            let cap = CAP_MS.max(base);
            let repeat = self.until > 0 && now.saturating_sub(self.until) <= cap;
            self.ejections = if repeat { self.ejections + 1 } else { 1 };
            let factor = 1u64 << (self.ejections - 1).min(20);
            dur = base.saturating_mul(factor).min(cap);
        }
        self.until = now + dur;
        self.since = now;
        self.source = source;
        self.recent.clear();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Passive = Passive {
        failures: 3,
        window_ms: 10_000,
        ejection_ms: 30_000,
    };

    #[test]
    fn ejects_after_consecutive_failures_within_the_window() {
        let mut s = TargetState::default();
        assert!(!s.fail(1_000, 1, &P, Some("http 503")));
        assert!(!s.fail(2_000, 1, &P, None));
        assert!(s.fail(3_000, 1, &P, None));
        assert!(s.ejected(3_000) && s.ejected(32_999) && !s.ejected(33_000));
        assert_eq!(s.fails, 3);
        assert_eq!(s.last_error.as_deref(), Some("http 503"));
    }

    #[test]
    fn old_failures_leave_the_window_and_a_success_resets() {
        let mut s = TargetState::default();
        s.fail(0, 2, &P, None);
        // the two early ones are 10 s old: not counted
        assert!(!s.fail(10_000, 1, &P, None));
        assert!(!s.fail(10_001, 1, &P, None));
        s.succeed();
        assert_eq!(s.fails, 0);
        assert!(!s.fail(10_002, 2, &P, None));
        assert!(s.fail(10_003, 1, &P, None));
    }

    #[test]
    fn repeat_ejections_double_up_to_the_cap() {
        let mut s = TargetState::default();
        let mut now = 0;
        let mut lengths = Vec::new();
        for _ in 0..6 {
            assert!(s.fail(now, 3, &P, None));
            lengths.push(s.until - now);
            now = s.until + 1_000;
        }
        assert_eq!(
            lengths,
            vec![30_000, 60_000, 120_000, 240_000, 300_000, 300_000]
        );
        // long quiet: starts again from the first length
        now = s.until + CAP_MS + 1;
        assert!(s.fail(now, 3, &P, None));
        assert_eq!(s.until - now, 30_000);
    }

    #[test]
    fn failures_while_ejected_do_not_extend_it_nor_count_later() {
        let mut s = TargetState::default();
        s.fail(0, 3, &P, None);
        let until = s.until;
        assert!(!s.fail(5_000, 3, &P, None));
        assert_eq!(s.until, until);
        assert_eq!(s.fails, 6);
        // after the ejection, a full run of new failures is needed again
        assert!(!s.fail(until + 1, 1, &P, None));
        assert!(!s.fail(until + 2, 1, &P, None));
        assert!(s.fail(until + 3, 1, &P, None));
    }

    #[test]
    fn probes_eject_and_bring_back() {
        let r = ProbeRule {
            healthy: 2,
            unhealthy: 2,
            hold_ms: 3_000,
        };
        let mut s = TargetState::default();
        assert!(!s.probe(0, false, &r, Some("probe: http 500")));
        assert!(s.probe(1_000, false, &r, None));
        assert_eq!((s.source, s.until), (Source::Active, 4_000));
        // each failing probe renews the hold
        assert!(!s.probe(2_000, false, &r, None));
        assert_eq!(s.until, 5_000);
        assert!(!s.probe(3_000, true, &r, None));
        assert!(s.probe(4_000, true, &r, None));
        assert!(!s.ejected(4_000));
        // probes end a passive ejection too
        s.fail(10_000, 3, &P, None);
        assert!(s.ejected(10_001));
        s.probe(10_002, true, &r, None);
        assert!(s.probe(10_003, true, &r, None));
        assert!(!s.ejected(10_003));
    }
}
