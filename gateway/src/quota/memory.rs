//! The in-process quota store: the same sliding windows, reservation records,
//! leases and tombstones as `lua/quota_*.v1.lua`, behind one lock. Serves the
//! `memory` backend and the per-replica limits of `on_redis_error: local`.

use super::store::{Item, ReserveAnswer, SettleAnswer, SettleMode, WindowUse, BUCKETS};
use std::collections::HashMap;
use std::sync::Mutex;

struct Window {
    window_ms: u64,
    /// bucket index -> amount
    buckets: HashMap<u64, u64>,
    /// a new one each time the window starts afresh (made, length changed):
    /// reservations from an older generation never move its buckets
    gen: u64,
}

static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_gen() -> u64 {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Default for Window {
    fn default() -> Self {
        Window {
            window_ms: 0,
            buckets: HashMap::new(),
            gen: next_gen(),
        }
    }
}

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
    windows: HashMap<String, Window>,
    /// reservation id (scoped by tag) -> record
    records: HashMap<String, Record>,
    /// tag -> window keys
    index: HashMap<String, Vec<String>>,
    last_sweep: u64,
}

#[derive(Default)]
pub struct MemoryQuotas {
    inner: Mutex<Inner>,
}

fn bucket_ms(window_ms: u64) -> u64 {
    window_ms.div_ceil(BUCKETS).max(1)
}

impl Window {
    /// Drops buckets that left the window; answers (sum, current index, bucket ms).
    fn load(&mut self, window_ms: u64, now: u64) -> (u64, u64, u64) {
        if self.window_ms != window_ms {
            self.window_ms = window_ms;
            self.buckets.clear();
            self.gen = next_gen();
        }
        let b = bucket_ms(window_ms);
        let cur = now / b;
        let oldest = cur.saturating_sub(BUCKETS);
        self.buckets
            .retain(|&i, v| i >= oldest && i <= cur && *v > 0);
        (self.buckets.values().sum(), cur, b)
    }

    fn reset_ms(&self, b: u64, now: u64) -> u64 {
        self.buckets
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(i, _)| *i)
            .max()
            .map_or(0, |i| ((i + BUCKETS + 1) * b).saturating_sub(now))
    }

    /// ms until enough old buckets leave for `need` more to fit.
    fn retry_ms(&self, need: u64, cur: u64, b: u64, now: u64) -> Option<u64> {
        let mut freed = 0u64;
        for i in cur.saturating_sub(BUCKETS)..=cur {
            freed = freed.saturating_add(self.buckets.get(&i).copied().unwrap_or(0));
            if freed >= need && freed > 0 {
                return Some(((i + BUCKETS + 1) * b).saturating_sub(now));
            }
        }
        None
    }

    fn take(&mut self, bucket: u64, amount: u64) {
        if let Some(v) = self.buckets.get_mut(&bucket) {
            *v = v.saturating_sub(amount);
        }
    }
}

impl Inner {
    /// Ends leases and tombstones (at most every 50 ms: it walks every record).
    fn sweep(&mut self, now: u64, tomb_ms: u64) {
        if now < self.last_sweep + 50 {
            return;
        }
        self.last_sweep = now;
        let ended: Vec<String> = self
            .records
            .iter()
            .filter(|(_, r)| r.until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in ended {
            let Some(rec) = self.records.get_mut(&id) else {
                continue;
            };
            if rec.state == State::Reserved {
                for (key, bucket, amount, gen) in &rec.items {
                    if let Some(w) = self.windows.get_mut(key) {
                        if w.gen == *gen {
                            w.take(*bucket, *amount);
                        }
                    }
                }
                rec.state = State::Expired;
                rec.until = now + tomb_ms;
            } else {
                self.records.remove(&id);
            }
        }
    }

    fn charge(
        &mut self,
        tag: &str,
        items: &[(String, u64, u64)],
        now: u64,
    ) -> Vec<(String, u64, u64, u64)> {
        let mut out = Vec::with_capacity(items.len());
        for (key, window_ms, amount) in items {
            let w = self.windows.entry(key.clone()).or_default();
            let (_, cur, _) = w.load(*window_ms, now);
            if *amount > 0 {
                *w.buckets.entry(cur).or_default() += amount;
            }
            index(&mut self.index, tag, key);
            out.push((key.clone(), cur, *amount, w.gen));
        }
        out
    }
}

fn index(index: &mut HashMap<String, Vec<String>>, tag: &str, key: &str) {
    let keys = index.entry(tag.to_string()).or_default();
    if !keys.iter().any(|k| k == key) {
        keys.push(key.to_string());
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
        g.sweep(now, tomb_ms);
        let rid = format!("{tag}\n{id}");
        let again = g.records.contains_key(&rid);
        let mut loaded = Vec::with_capacity(items.len());
        for it in items {
            let w = g.windows.entry(it.key.clone()).or_default();
            loaded.push(w.load(it.window_ms, now));
        }
        if !again {
            for (i, (it, &(sum, cur, b))) in items.iter().zip(&loaded).enumerate() {
                let over = sum.saturating_add(it.amount) > it.limit;
                if it.amount <= it.limit && !over && !(it.amount == 0 && sum >= it.limit) {
                    continue;
                }
                let retry_ms = (it.amount <= it.limit).then(|| {
                    let need = sum.saturating_add(it.amount).saturating_sub(it.limit);
                    g.windows
                        .get(&it.key)
                        .and_then(|w| w.retry_ms(need, cur, b, now))
                });
                let standing = items
                    .iter()
                    .zip(&loaded)
                    .map(|(it, &(sum, _, b))| WindowUse {
                        used: sum,
                        reset_ms: g.windows.get(&it.key).map_or(0, |w| w.reset_ms(b, now)),
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
        for (it, (sum, cur, b)) in items.iter().zip(loaded) {
            let w = g.windows.entry(it.key.clone()).or_default();
            let mut sum = sum;
            if !again && it.amount > 0 {
                *w.buckets.entry(cur).or_default() += it.amount;
                sum += it.amount;
            }
            used.push(WindowUse {
                used: sum,
                reset_ms: w.reset_ms(b, now),
            });
            let gen = w.gen;
            index(&mut g.index, tag, &it.key);
            rec_items.push((it.key.clone(), cur, it.amount, gen));
        }
        if !again {
            g.records.insert(
                rid,
                Record {
                    state: State::Reserved,
                    items: rec_items,
                    until: now + lease_ms,
                },
            );
        }
        ReserveAnswer::Admitted {
            now_ms: now,
            used,
            member: String::new(),
        }
    }

    /// `actual`: (window key, window ms, amount) in the order of the reservation.
    pub fn settle(
        &self,
        tag: &str,
        id: &str,
        tomb_ms: u64,
        mode: SettleMode,
        actual: &[(String, u64, u64)],
        now: u64,
    ) -> SettleAnswer {
        let mut g = self.lock();
        let rid = format!("{tag}\n{id}");
        let state = g.records.get(&rid).map(|r| r.state);
        let answer = match (state, mode) {
            (None, SettleMode::Reserved) => return SettleAnswer::Nothing,
            (Some(State::Settled), _) => return SettleAnswer::Already,
            (None, SettleMode::Unreserved) => SettleAnswer::Charged,
            (Some(State::Expired), _) => SettleAnswer::LateCharged,
            (Some(State::Reserved), _) => {
                let items = g
                    .records
                    .get(&rid)
                    .map(|r| r.items.clone())
                    .unwrap_or_default();
                let mut settled = Vec::with_capacity(items.len());
                for (i, (key, bucket, reserved, gen)) in items.into_iter().enumerate() {
                    let real = actual.get(i).map_or(reserved, |a| a.2);
                    // a bucket that left the window (or a window that was reset
                    // or expired) is not brought back; usage beyond the
                    // reservation then counts in the current bucket
                    let window_ms = actual.get(i).map_or(0, |a| a.1);
                    let counts = g.windows.get_mut(&key).is_some_and(|w| {
                        let (_, cur, _) = w.load(w.window_ms, now);
                        w.gen == gen && bucket + BUCKETS >= cur && w.buckets.contains_key(&bucket)
                    });
                    if counts {
                        if let Some(w) = g.windows.get_mut(&key) {
                            if real > reserved {
                                *w.buckets.entry(bucket).or_default() += real - reserved;
                            } else {
                                w.take(bucket, reserved - real);
                            }
                        }
                    } else if real > reserved && window_ms > 0 {
                        g.charge(tag, &[(key.clone(), window_ms, real - reserved)], now);
                    }
                    settled.push((key, bucket, real, gen));
                }
                if mode == SettleMode::Reserved {
                    g.records.remove(&rid);
                    return SettleAnswer::Settled;
                }
                g.records.insert(
                    rid,
                    Record {
                        state: State::Settled,
                        items: settled,
                        until: now + tomb_ms,
                    },
                );
                return SettleAnswer::Settled;
            }
        };
        let items = g.charge(tag, actual, now);
        g.records.insert(
            rid,
            Record {
                state: State::Settled,
                items,
                until: now + tomb_ms,
            },
        );
        answer
    }

    /// What every window of `tag` holds now: (key, used, reset ms).
    pub fn usage(&self, tag: &str, tomb_ms: u64, now: u64) -> Vec<(String, u64, u64)> {
        let mut g = self.lock();
        g.last_sweep = 0;
        g.sweep(now, tomb_ms);
        let Inner { windows, index, .. } = &mut *g;
        let Some(keys) = index.get_mut(tag) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        keys.retain(|k| {
            let Some(w) = windows.get_mut(k) else {
                return false;
            };
            let ms = w.window_ms;
            let (sum, _, b) = w.load(ms, now);
            out.push((k.clone(), sum, w.reset_ms(b, now)));
            true
        });
        out
    }

    /// Forgets the windows `keys` (admin reset).
    pub fn reset(&self, keys: &[String]) {
        let mut g = self.lock();
        for k in keys {
            g.windows.remove(k);
        }
    }
}
