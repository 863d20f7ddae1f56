//! The in-process quota store: the same sliding and calendar windows,
//! reservation records, leases, tombstones and usage ledger as
//! `lua/quota_*.v5.lua`, behind one lock. Serves the `memory` backend and the
//! per-replica limits of `on_redis_error: local` (which keeps no ledger).
//! A sliding window ends as its Redis hash does, two windows and a bucket
//! after its newest charge; a calendar window a minute after its period
//! (`window.rs`). Windows and records are also kept in the order of their
//! ends, so every call removes the few that ended first and `sweep` (run off
//! the request path) the rest, without walking everything under the lock.

mod window;

use super::ledger::MemoryLedger;
use super::ops::{
    After, Answer, Crossed, Item, Op, ReserveAnswer, SettleAnswer, SettleMode, Settled, Span,
    UsagePage, WindowUse,
};
use super::store::SettleCall;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use window::{Cut, Window};

/// Ended windows and records a reserve removes (`sweep` removes the rest).
const SWEEP_PER_CALL: usize = 64;
/// Ended windows and records removed per hold of the lock by `sweep` and `usage`.
const SWEEP_CHUNK: usize = 1024;

/// A window key (`{tag}:q:<owner>:<quota>:<subject>`), shared by the maps.
type Key = Arc<str>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Reserved,
    Settled,
    Expired,
}

struct Record {
    state: State,
    /// (window key, bucket, amount, window generation)
    items: Vec<(String, u64, u64, u64)>,
    /// lease end (Reserved) or tombstone end (Settled, Expired)
    until: u64,
}

#[derive(Default)]
struct Inner {
    windows: HashMap<Key, Window>,
    /// every window by its end, for the sweep
    ends: BTreeSet<(u64, Key)>,
    /// tag -> its windows by their end, ties by key (the order of the pages)
    tags: HashMap<String, BTreeSet<(u64, Key)>>,
    /// reservation id (scoped by tag) -> record
    records: HashMap<Key, Record>,
    /// every record by its lease or tombstone end
    record_ends: BTreeSet<(u64, Key)>,
}

#[derive(Default)]
pub struct MemoryQuotas {
    inner: Mutex<Inner>,
    /// the usage ledger (the memory backend's; empty for `local` shares)
    pub ledger: Box<MemoryLedger>,
}

/// The hash tag of a window key: `t:acme` of `{t:acme}:q:...`.
fn tag_of(key: &str) -> &str {
    key.strip_prefix('{')
        .and_then(|k| k.split_once('}'))
        .map_or("", |(t, _)| t)
}

impl Inner {
    /// Gets window `key` ready to be charged now: made when missing, brought up
    /// to now and, once per bucket, set to end two windows and a bucket later
    /// (as `quota_lib.v2.lua` sets the hash's TTL). Answers the current bucket.
    fn touch(&mut self, key: &str, span: &Span, now: u64) -> u64 {
        let k: Key = match self.windows.get_key_value(key) {
            Some((k, w)) if w.ends > now => k.clone(),
            found => {
                // one that ended (not swept yet) starts afresh, as an expired
                // hash does in Redis
                if found.is_some() {
                    self.forget(key);
                }
                let k: Key = Arc::from(key);
                self.windows.insert(k.clone(), Window::new());
                k
            }
        };
        let Some(w) = self.windows.get_mut(&k) else {
            return 0;
        };
        let (_, cut) = w.load(span, now);
        let cur = cut.cur;
        if w.renewed == Some(cur) {
            return cur;
        }
        w.renewed = Some(cur);
        let ends = cut.ends(span, now);
        let old = std::mem::replace(&mut w.ends, ends);
        self.ends.remove(&(old, k.clone()));
        self.ends.insert((ends, k.clone()));
        let tag = tag_of(&k);
        let listed = match self.tags.get_mut(tag) {
            Some(l) => l,
            None => self.tags.entry(tag.to_string()).or_default(),
        };
        listed.remove(&(old, k.clone()));
        listed.insert((ends, k));
        cur
    }

    /// Removes window `key` and its places in the orders.
    fn forget(&mut self, key: &str) {
        let Some((k, w)) = self.windows.remove_entry(key) else {
            return;
        };
        let at = (w.ends, k);
        self.ends.remove(&at);
        let tag = tag_of(&at.1);
        if let Some(listed) = self.tags.get_mut(tag) {
            listed.remove(&at);
            if listed.is_empty() {
                self.tags.remove(tag);
            }
        }
    }

    fn put_record(&mut self, rid: Key, rec: Record) {
        if let Some(old) = self.records.get(&rid) {
            self.record_ends.remove(&(old.until, rid.clone()));
        }
        self.record_ends.insert((rec.until, rid.clone()));
        self.records.insert(rid, rec);
    }

    fn drop_record(&mut self, rid: &str) {
        if let Some((k, rec)) = self.records.remove_entry(rid) {
            self.record_ends.remove(&(rec.until, k));
        }
    }

    /// Removes up to `max` ended windows and up to `max` ended leases and
    /// tombstones (an ended lease gives its reservation back and leaves a
    /// tombstone). Answers whether it stopped at `max`.
    fn sweep(&mut self, now: u64, tomb_ms: u64, max: usize) -> bool {
        let mut windows = 0;
        while windows < max {
            match self.ends.first() {
                Some((end, _)) if *end <= now => {}
                _ => break,
            }
            if let Some((_, k)) = self.ends.pop_first() {
                self.forget(&k);
            }
            windows += 1;
        }
        let mut records = 0;
        while records < max {
            match self.record_ends.first() {
                Some((until, _)) if *until <= now => {}
                _ => break,
            }
            let Some((_, rid)) = self.record_ends.pop_first() else {
                break;
            };
            records += 1;
            let Some(mut rec) = self.records.remove(&rid) else {
                continue;
            };
            if rec.state != State::Reserved {
                continue;
            }
            for (key, bucket, amount, gen) in &rec.items {
                if let Some(w) = self.windows.get_mut(key.as_str()) {
                    if w.gen == *gen {
                        w.take(*bucket, *amount);
                    }
                }
            }
            rec.state = State::Expired;
            rec.until = now.saturating_add(tomb_ms);
            self.put_record(rid, rec);
        }
        windows == max || records == max
    }

    fn charge(&mut self, items: &[(&str, &Span, u64)], now: u64) -> Vec<(String, u64, u64, u64)> {
        let mut out = Vec::with_capacity(items.len());
        for &(key, span, ref amount) in items {
            let cur = self.touch(key, span, now);
            let Some(w) = self.windows.get_mut(key) else {
                continue;
            };
            if *amount > 0 {
                *w.buckets.entry(cur).or_default() += amount;
            }
            out.push((key.to_string(), cur, *amount, w.gen));
        }
        out
    }

    fn settle(&mut self, c: &SettleCall<'_>, now: u64) -> SettleAnswer {
        let rid = format!("{}\n{}", c.tag, c.id);
        let state = self.records.get(rid.as_str()).map(|r| r.state);
        let answer = match (state, c.mode) {
            (None, SettleMode::Reserved) => return SettleAnswer::Nothing,
            (Some(State::Settled), _) => return SettleAnswer::Already,
            (None, SettleMode::Unreserved) => SettleAnswer::Charged,
            (Some(State::Expired), _) => SettleAnswer::LateCharged,
            (Some(State::Reserved), _) => {
                let items = self
                    .records
                    .get(rid.as_str())
                    .map(|r| r.items.clone())
                    .unwrap_or_default();
                let mut settled = Vec::with_capacity(items.len());
                for (i, (key, bucket, reserved, gen)) in items.into_iter().enumerate() {
                    let real = c.actual.get(i).map_or(reserved, |a| a.amount);
                    // a bucket that left the window (or a window that was reset
                    // or ended) is not brought back; usage beyond the
                    // reservation then counts in the current bucket. A bucket
                    // still in the window counts, whatever it holds (nothing,
                    // when the reservation was 0 or refunded), as in Redis.
                    let counts = self.windows.get_mut(key.as_str()).is_some_and(|w| {
                        let Some(span) = w.span.clone() else {
                            return false;
                        };
                        let (_, cut) = w.load(&span, now);
                        w.gen == gen && w.ends > now && bucket >= cut.oldest && bucket <= cut.cur
                    });
                    if counts {
                        if let Some(w) = self.windows.get_mut(key.as_str()) {
                            if real > reserved {
                                *w.buckets.entry(bucket).or_default() += real - reserved;
                            } else {
                                w.take(bucket, reserved - real);
                            }
                        }
                    } else if real > reserved {
                        if let Some(a) = c.actual.get(i) {
                            self.charge(&[(key.as_str(), &a.span, real - reserved)], now);
                        }
                    }
                    settled.push((key, bucket, real, gen));
                }
                if c.mode == SettleMode::Reserved {
                    self.drop_record(&rid);
                    return SettleAnswer::Settled;
                }
                self.put_record(
                    Arc::from(rid),
                    Record {
                        state: State::Settled,
                        items: settled,
                        until: now.saturating_add(c.tomb_ms),
                    },
                );
                return SettleAnswer::Settled;
            }
        };
        let actual: Vec<(&str, &Span, u64)> = c
            .actual
            .iter()
            .map(|a| (a.key.as_str(), &a.span, a.amount))
            .collect();
        let items = self.charge(&actual, now);
        if c.mode == SettleMode::Reserved {
            // (a late settle leaves nothing behind, as the script's removes
            // the tombstone: a repeat finds nothing to settle)
            self.drop_record(&rid);
            return answer;
        }
        self.put_record(
            Arc::from(rid),
            Record {
                state: State::Settled,
                items,
                until: now.saturating_add(c.tomb_ms),
            },
        );
        answer
    }

    /// The alert percentages the calendar windows of a settlement crossed for
    /// the first time in their period.
    fn alerts(&mut self, actual: &[super::ops::Actual], now: u64) -> Vec<Crossed> {
        let mut out = Vec::new();
        for (index, a) in actual.iter().enumerate() {
            if a.alerts.is_empty() || !matches!(a.span, Span::Calendar { .. }) {
                continue;
            }
            let Some(w) = self.windows.get_mut(a.key.as_str()) else {
                continue;
            };
            let (used, _) = w.load(&a.span, now);
            let top = a
                .alerts
                .iter()
                .copied()
                .filter(|p| u128::from(used) * 100 >= u128::from(*p) * u128::from(a.limit))
                .max()
                .unwrap_or(0);
            if top > w.alerted {
                w.alerted = top;
                out.push(Crossed {
                    index,
                    percent: top,
                    used,
                });
            }
        }
        out
    }

    /// (key, used, reset ms) of a window that has not ended.
    fn report(&mut self, key: &str, now: u64) -> Option<(String, u64, u64)> {
        let w = self.windows.get_mut(key).filter(|w| w.ends > now)?;
        let span = w.span.clone()?;
        let (sum, cut) = w.load(&span, now);
        Some((key.to_string(), sum, w.reset_ms(&cut, now)))
    }
}

impl MemoryQuotas {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn reserve(
        &self,
        tag: &str,
        id: &str,
        lease_ms: u64,
        tomb_ms: u64,
        items: &[Item],
        now: u64,
    ) -> ReserveAnswer {
        let mut g = self.lock();
        g.sweep(now, tomb_ms, SWEEP_PER_CALL);
        let rid = format!("{tag}\n{id}");
        let again = g.records.contains_key(rid.as_str());
        let mut loaded = Vec::with_capacity(items.len());
        for it in items {
            loaded.push(match g.windows.get_mut(it.key.as_str()) {
                Some(w) => w.load(&it.span, now),
                None => (0, Cut::of(&it.span, now)),
            });
        }
        if !again {
            for (i, (it, &(sum, cut))) in items.iter().zip(&loaded).enumerate() {
                let over = sum.saturating_add(it.amount) > it.limit;
                if it.amount <= it.limit && !over && !(it.amount == 0 && sum >= it.limit) {
                    continue;
                }
                let retry_ms = (it.amount <= it.limit).then(|| {
                    let need = sum.saturating_add(it.amount).saturating_sub(it.limit);
                    g.windows
                        .get(it.key.as_str())
                        .and_then(|w| w.retry_ms(need, &cut, now))
                        .or(cut.end.map(|e| e.saturating_sub(now)))
                });
                let standing = items
                    .iter()
                    .zip(&loaded)
                    .map(|(it, &(sum, cut))| WindowUse {
                        used: sum,
                        reset_ms: g
                            .windows
                            .get(it.key.as_str())
                            .map_or(0, |w| w.reset_ms(&cut, now)),
                    })
                    .collect();
                return ReserveAnswer::Refused {
                    now_ms: now,
                    index: i,
                    retry_ms: retry_ms.flatten(),
                    used: sum,
                    standing,
                };
            }
        }
        let mut used = Vec::with_capacity(items.len());
        let mut rec_items = Vec::with_capacity(items.len());
        for (it, (sum, cut)) in items.iter().zip(loaded) {
            let cur = cut.cur;
            if !again {
                g.touch(&it.key, &it.span, now);
            }
            let Some(w) = g.windows.get_mut(it.key.as_str()) else {
                used.push(WindowUse {
                    used: sum,
                    reset_ms: 0,
                });
                continue;
            };
            let mut sum = sum;
            if !again && it.amount > 0 {
                *w.buckets.entry(cur).or_default() += it.amount;
                sum += it.amount;
            }
            used.push(WindowUse {
                used: sum,
                reset_ms: w.reset_ms(&cut, now),
            });
            rec_items.push((it.key.clone(), cur, it.amount, w.gen));
        }
        if !again {
            g.put_record(
                Arc::from(rid),
                Record {
                    state: State::Reserved,
                    items: rec_items,
                    until: now.saturating_add(lease_ms),
                },
            );
        }
        ReserveAnswer::Admitted {
            now_ms: now,
            used,
            member: String::new(),
        }
    }

    /// Settles reservation `c.id` with the real usage (windows in the order of
    /// the reservation); when the usage is charged, the ledger entry is added
    /// and the alerts crossed are answered, as `quota_settle.v5.lua` does.
    pub fn settle(&self, c: &SettleCall<'_>, now: u64) -> Settled {
        let mut g = self.lock();
        let answer = g.settle(c, now);
        let mut crossed = Vec::new();
        if answer.charged() {
            if let Some(l) = c.ledger {
                self.ledger.add(l);
            }
            crossed = g.alerts(c.actual, now);
        }
        Settled { answer, crossed }
    }

    /// Runs `ops` of `tag` one after the other at `now`, as `quota_batch`
    /// does.
    pub fn batch(&self, tag: &str, ops: &[Op], now: u64) -> Vec<Answer> {
        ops.iter()
            .map(|op| match op {
                Op::Reserve(r) => {
                    Answer::Reserve(self.reserve(tag, &r.id, r.lease_ms, r.tomb_ms, &r.items, now))
                }
                Op::Settle(s) => Answer::Settle(self.settle(&s.call(tag), now)),
            })
            .collect()
    }

    /// One page of what the windows of `tag` hold now, as
    /// `QuotaStore::usage` says; ended leases and windows are swept first.
    pub fn usage(
        &self,
        tag: &str,
        tomb_ms: u64,
        named: &[String],
        count: usize,
        after: Option<&After>,
        now: u64,
    ) -> UsagePage {
        let mut g = self.lock();
        g.sweep(now, tomb_ms, SWEEP_CHUNK);
        let mut out = UsagePage::default();
        for k in named {
            let r = g.report(k, now);
            out.windows.push(r.unwrap_or_else(|| (k.clone(), 0, 0)));
        }
        let Some(listed) = g.tags.get(tag).filter(|_| count > 0) else {
            return out;
        };
        // right after the previous page's last window when it is still where it
        // was, else from the first window that ends after both its end and now
        let still = after.filter(|a| {
            a.ends > now
                && g.windows
                    .get(a.key.as_str())
                    .is_some_and(|w| w.ends == a.ends)
        });
        let from = match (still, after) {
            (Some(a), _) => Bound::Excluded((a.ends, Key::from(a.key.as_str()))),
            (None, a) => {
                let lo = a.map_or(0, |a| a.ends).max(now.saturating_add(1));
                Bound::Included((lo, Key::from("")))
            }
        };
        let page: Vec<(u64, Key)> = listed
            .range((from, Bound::Unbounded))
            .take(count)
            .cloned()
            .collect();
        if page.len() == count {
            out.next = page.last().map(|(ends, key)| After {
                ends: *ends,
                key: key.to_string(),
            });
        }
        for (_, k) in page {
            if let Some(r) = g.report(&k, now) {
                out.windows.push(r);
            }
        }
        out
    }

    /// Forgets the windows `keys` (admin reset).
    pub fn reset(&self, keys: &[String]) {
        let mut g = self.lock();
        for k in keys {
            g.forget(k);
        }
    }

    /// Removes every window and record that ended by `now`, a chunk at a time
    /// (the lock is let go between chunks). Run off the request path.
    pub fn sweep(&self, now: u64, tomb_ms: u64) {
        while self.lock().sweep(now, tomb_ms, SWEEP_CHUNK) {}
    }

    /// How many windows this store holds.
    pub fn windows(&self) -> usize {
        self.lock().windows.len()
    }
}
