//! The usage ledger: per tenant x consumer x model x provider x UTC day, what
//! the requests an upstream answered used and cost. Written by the settlement
//! of each request (`quota_settle.v3.lua` in Redis, [`MemoryLedger`] here),
//! read back for `GET /admin/usage/report`.

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

/// One ledger hash field: `<JSON [tenant, consumer, model, provider]>\n<figure>`.
fn parse_field(field: &str) -> Option<(Dims, usize)> {
    let (dims, letter) = field.rsplit_once('\n')?;
    let [tenant, consumer, model, provider]: [String; 4] = serde_json::from_str(dims).ok()?;
    let i = ["r", "i", "o", "c", "w", "x", "k", "u", "e"]
        .iter()
        .position(|l| *l == letter)?;
    Some((
        Dims {
            tenant,
            consumer,
            model,
            provider,
            day: String::new(),
        },
        i,
    ))
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
            QuotaStore::Redis(c) => c,
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
                    let Some((mut dims, i)) = parse_field(&pair[0]) else {
                        continue;
                    };
                    if tenant.is_some_and(|t| t != dims.tenant) {
                        continue;
                    }
                    let Ok(v) = pair[1].parse::<u64>() else {
                        continue;
                    };
                    dims.day = day.clone();
                    let t = groups.entry(dims).or_default();
                    let mut a = t.to_array();
                    a[i] = a[i].saturating_add(v);
                    *t = Totals::from_array(a);
                }
            }
        }
        Ok(groups.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn ledger_fields_name_their_group_and_figure() {
        let (d, i) = parse_field("[\"acme\",\"\",\"gpt-4o\",\"openai\"]\nk").unwrap();
        assert_eq!((d.tenant.as_str(), d.consumer.as_str(), i), ("acme", "", 6));
        assert!(parse_field("[\"acme\"]\nk").is_none());
        assert!(parse_field("[\"a\",\"b\",\"c\",\"d\"]\nz").is_none());
    }
}
