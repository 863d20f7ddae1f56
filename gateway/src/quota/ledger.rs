//! The usage ledger: per tenant x consumer x model x provider x UTC day, what
//! the requests an upstream answered used and cost. Written by the settlement
//! of each request (`quota_settle.v5.lua` in Redis, [`MemoryLedger`] here),
//! read back for `GET /admin/usage/report`.

use super::ops::LedgerAdd;
use super::store::{ledger_key, QuotaStore, LEDGER_TAGS};
use crate::redis_conn::{Budget, Result, StateError, SCRIPTS};
use shared::ledger::{Dims, Totals};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Days one report may span.
pub const MAX_DAYS: u64 = 400;

/// The memory backend's ledger: each group with when it expires (unix s, as
/// the Redis day hash's EXPIREAT).
#[derive(Default)]
pub struct MemoryLedger {
    days: Mutex<BTreeMap<Dims, (Totals, u64)>>,
}

impl MemoryLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Dims, (Totals, u64)>> {
        self.days.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, l: &super::ops::LedgerAdd) {
        let mut g = self.lock();
        let (t, ends) = g.entry(l.dims.clone()).or_default();
        t.add(&l.figures);
        *ends = l.expire_at_s;
    }

    /// The groups of days `from..=to` (`YYYY-MM-DD`), of one tenant or all.
    pub fn read(&self, from: &str, to: &str, tenant: Option<&str>) -> Vec<(Dims, Totals)> {
        self.lock()
            .iter()
            .filter(|(d, _)| d.day.as_str() >= from && d.day.as_str() <= to)
            .filter(|(d, _)| tenant.is_none_or(|t| d.tenant == t))
            .map(|(d, (t, _))| (d.clone(), *t))
            .collect()
    }

    /// Forgets the groups that expired by `now_s` (unix s): past the retention.
    pub fn expire(&self, now_s: u64) {
        self.lock().retain(|_, (_, ends)| *ends > now_s);
    }
}

/// Ledger entries of requests that ended on this replica, summed by hash
/// tag and group (dims, day included), until they are sent.
#[derive(Default)]
pub struct LedgerBuffer {
    groups: Mutex<std::collections::HashMap<(String, Dims), LedgerAdd>>,
}

/// Groups a buffer holds at most; past that a request's entry is sent on its
/// own (see [`LedgerBuffer::add`]).
const MAX_BUFFERED: usize = 100_000;

type Groups = std::collections::HashMap<(String, Dims), LedgerAdd>;

impl LedgerBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Groups> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds one request's entry to its group (the latest expiry wins); hands
    /// it back when the buffer is full of other groups (send it on its own).
    pub fn add(&self, tag: String, entry: LedgerAdd) -> Option<(String, LedgerAdd)> {
        self.add_within(tag, entry, MAX_BUFFERED)
    }

    fn add_within(&self, tag: String, entry: LedgerAdd, max: usize) -> Option<(String, LedgerAdd)> {
        let mut g = self.lock();
        let full = g.len() >= max;
        match g.entry((tag, entry.dims.clone())) {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let sum = o.get_mut();
                sum.figures.add(&entry.figures);
                sum.expire_at_s = sum.expire_at_s.max(entry.expire_at_s);
                None
            }
            std::collections::hash_map::Entry::Vacant(v) if !full => {
                v.insert(entry);
                None
            }
            std::collections::hash_map::Entry::Vacant(v) => Some((v.into_key().0, entry)),
        }
    }

    /// Everything buffered, by hash tag.
    pub fn take(&self) -> Vec<(String, LedgerAdd)> {
        let g = std::mem::take(&mut *self.lock());
        g.into_iter().map(|((tag, _), e)| (tag, e)).collect()
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
pub fn day_number(day: &str) -> Option<u64> {
    let d: jiff::civil::Date = day.parse().ok()?;
    let n = d.since(jiff::civil::date(1970, 1, 1)).ok()?.get_days();
    u64::try_from(n).ok()
}

/// The dates `from..=to`, at most [`MAX_DAYS`].
pub fn days(from: &str, to: &str) -> Option<Vec<String>> {
    let mut d: jiff::civil::Date = from.parse().ok()?;
    let end: jiff::civil::Date = to.parse().ok()?;
    let mut out = Vec::new();
    while d <= end {
        if out.len() as u64 >= MAX_DAYS {
            return None;
        }
        out.push(d.to_string());
        d = d.tomorrow().ok()?;
    }
    Some(out)
}

/// One ledger group as the day hash keeps it: the field is the JSON array
/// `[tenant, consumer, model, provider]`, the value the nine figures,
/// comma-separated in the order of [`Totals::to_array`].
fn parse_group(field: &str, value: &str) -> Option<(Dims, Totals)> {
    let [tenant, consumer, model, provider]: [String; 4] = serde_json::from_str(field).ok()?;
    let mut a = [0u64; 9];
    let mut n = 0;
    for (slot, v) in a.iter_mut().zip(value.split(',')) {
        *slot = v.parse().ok()?;
        n += 1;
    }
    if n != 9 {
        return None;
    }
    let dims = Dims {
        tenant,
        consumer,
        model,
        provider,
        day: String::new(),
    };
    Some((dims, Totals::from_array(a)))
}

impl QuotaStore {
    /// The ledger's groups of days `from..=to` (`YYYY-MM-DD`, at most
    /// [`MAX_DAYS`]), of one tenant or all; one call per hash tag that holds
    /// ledger days in that range.
    pub async fn ledger_read(
        &self,
        from: &str,
        to: &str,
        tenant: Option<&str>,
    ) -> Result<Vec<(Dims, Totals)>> {
        let conn = match self {
            QuotaStore::Memory(m) => return Ok(m.ledger.read(from, to, tenant)),
            QuotaStore::Redis(r) => &r.conn,
        };
        let (Some(first), Some(list)) = (day_number(from), days(from, to)) else {
            return Err(StateError::Rejected("bad day range".into()));
        };
        let p = &conn.prefix;
        let tags: Vec<String> = conn
            .query(
                Budget::Slow,
                redis::cmd("ZRANGE")
                    .arg(format!("{p}{LEDGER_TAGS}"))
                    .arg(first)
                    .arg("+inf")
                    .arg("BYSCORE"),
            )
            .await?;
        let mut groups: BTreeMap<Dims, Totals> = BTreeMap::new();
        for tag in tags {
            let mut inv = SCRIPTS.ledger_read.prepare_invoke();
            for day in &list {
                inv.key(format!("{p}{}", ledger_key(&tag, day)));
            }
            let per_day: Vec<Vec<String>> = conn.script(Budget::Slow, &inv).await?;
            for (day, flat) in list.iter().zip(per_day) {
                for pair in flat.chunks_exact(2) {
                    let Some((mut dims, figures)) = parse_group(&pair[0], &pair[1]) else {
                        continue;
                    };
                    if tenant.is_some_and(|t| t != dims.tenant) {
                        continue;
                    }
                    dims.day = day.clone();
                    groups.entry(dims).or_default().add(&figures);
                }
            }
        }
        Ok(groups.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(consumer: &str, cost: u64, expire_at_s: u64) -> LedgerAdd {
        LedgerAdd {
            dims: Dims {
                tenant: "acme".into(),
                consumer: consumer.into(),
                model: "m".into(),
                provider: "p".into(),
                day: "2026-12-07".into(),
            },
            figures: Totals {
                requests: 1,
                cost,
                ..Totals::default()
            },
            expire_at_s,
        }
    }

    #[test]
    fn the_buffer_sums_a_group_and_hands_back_what_does_not_fit() {
        let b = LedgerBuffer::default();
        assert!(b
            .add_within("t:acme".into(), entry("bob", 5, 10), 2)
            .is_none());
        assert!(b
            .add_within("t:acme".into(), entry("bob", 7, 20), 2)
            .is_none());
        assert!(b
            .add_within("t:acme".into(), entry("ann", 1, 10), 2)
            .is_none());
        // full: a new group comes back, a known one still sums
        let back = b.add_within("t:acme".into(), entry("cid", 3, 10), 2);
        assert_eq!(
            back.map(|(t, e)| (t, e.figures.cost)),
            Some(("t:acme".into(), 3))
        );
        assert!(b
            .add_within("t:acme".into(), entry("ann", 1, 10), 2)
            .is_none());
        let mut got: Vec<(String, String, u64, u64, u64)> = b
            .take()
            .into_iter()
            .map(|(t, e)| {
                (
                    t,
                    e.dims.consumer,
                    e.figures.requests,
                    e.figures.cost,
                    e.expire_at_s,
                )
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("t:acme".to_string(), "ann".to_string(), 2, 2, 10),
                ("t:acme".to_string(), "bob".to_string(), 2, 12, 20)
            ]
        );
        assert!(b.take().is_empty());
    }

    #[test]
    fn day_numbers_and_ranges() {
        assert_eq!(day_number("1970-01-02"), Some(1));
        assert_eq!(day_number("2026-12-07"), Some(20_794));
        assert_eq!(day_number("2026-13-01"), None);
        assert_eq!(
            days("2026-02-27", "2026-03-01").unwrap(),
            ["2026-02-27", "2026-02-28", "2026-03-01"]
        );
        assert_eq!(days("2026-03-01", "2026-02-27").unwrap().len(), 0);
        assert!(days("2025-01-01", "2026-12-31").is_none());
    }

    #[test]
    fn a_ledger_field_names_its_group_and_its_value_holds_nine_figures() {
        let (d, t) =
            parse_group("[\"acme\",\"\",\"gpt-4o\",\"openai\"]", "1,2,3,4,5,6,7,8,9").unwrap();
        assert_eq!((d.tenant.as_str(), d.consumer.as_str()), ("acme", ""));
        assert_eq!((t.requests, t.cost, t.estimated_requests), (1, 7, 9));
        assert!(parse_group("[\"acme\"]", "1,2,3,4,5,6,7,8,9").is_none());
        assert!(parse_group("[\"a\",\"b\",\"c\",\"d\"]", "1,2,3").is_none());
        assert!(parse_group("[\"a\",\"b\",\"c\",\"d\"]", "1,2,3,4,5,6,7,8,x").is_none());
    }
}
