//! Where quota windows and the usage ledger live: in this process (`memory`)
//! or in Redis, through `lua/quota_reserve.v4.lua`, `quota_settle.v4.lua` and
//! `quota_usage.v4.lua`. Both answer the same way; `conformance.rs` checks they
//! agree.

use super::memory::MemoryQuotas;
use super::now_ms;
use crate::redis_conn::{Budget, RedisConn, SCRIPTS};
use crate::redis_conn::{Result, StateError};
use std::sync::Arc;

pub use super::ops::{
    Actual, After, Crossed, Item, LedgerAdd, ReserveAnswer, SettleAnswer, SettleMode, Settled,
    Span, UsagePage, WindowUse, BUCKETS, MAX_PAGE,
};

/// One settlement, as the store is asked it.
#[derive(Debug, Clone, Copy)]
pub struct SettleCall<'a> {
    pub tag: &'a str,
    pub id: &'a str,
    /// the reservation's lease entry (Redis); empty when none was made
    pub member: &'a str,
    pub tomb_ms: u64,
    pub mode: SettleMode,
    /// every window of the tag the request reserved on, in that order
    pub actual: &'a [Actual],
    /// the request's ledger entry, when this settlement carries it
    pub ledger: Option<&'a LedgerAdd>,
}

/// The ledger's day hash of a tag: `{tag}:ledger:<YYYY-MM-DD>`.
pub fn ledger_key(tag: &str, day: &str) -> String {
    format!("{{{tag}}}:ledger:{day}")
}

/// The set of hash tags that hold ledger days, scored with the last day (days
/// since 1970-01-01) one was written: where a report looks.
pub const LEDGER_TAGS: &str = "ledger:tags";

pub enum QuotaStore {
    Memory(MemoryQuotas),
    Redis(Arc<RedisConn>),
}

fn bad_reply(what: &str, v: impl std::fmt::Debug) -> StateError {
    StateError::Rejected(format!("unexpected {what} answer from Redis: {v:?}"))
}

fn num(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// `[used, reset_ms, ...]` from a script answer.
fn pairs(v: &[i64]) -> Vec<WindowUse> {
    v.chunks_exact(2)
        .map(|c| WindowUse {
            used: num(c[0]),
            reset_ms: num(c[1]),
        })
        .collect()
}

impl QuotaStore {
    /// The lease zset and the window index of a tag.
    fn keys(conn: &RedisConn, tag: &str) -> [String; 2] {
        let p = &conn.prefix;
        [format!("{p}{{{tag}}}:qlease"), format!("{p}{{{tag}}}:qidx")]
    }

    /// Whether the node holding hash slot `slot` is known to be unreachable.
    pub fn is_slot_down(&self, slot: u16) -> bool {
        match self {
            QuotaStore::Memory(_) => false,
            QuotaStore::Redis(c) => c.reach.is_slot_down(slot),
        }
    }

    /// Whether the node holding hash tag `tag` is known to be unreachable.
    pub fn is_tag_down(&self, tag: &str) -> bool {
        match self {
            QuotaStore::Memory(_) => false,
            QuotaStore::Redis(c) => c.is_tag_down(tag),
        }
    }

    /// Whether the node holding `tag` came back from an outage moments ago
    /// (`reach::SETTLE_MS`): the replicas are still landing what they served
    /// during it.
    pub fn is_settling(&self, tag: &str) -> bool {
        match self {
            QuotaStore::Memory(_) => false,
            QuotaStore::Redis(c) => c.reach.is_settling(tag),
        }
    }

    /// Woken when a Redis node becomes reachable again (None: memory).
    pub fn back(&self) -> Option<&tokio::sync::Notify> {
        match self {
            QuotaStore::Memory(_) => None,
            QuotaStore::Redis(c) => Some(&c.reach.back),
        }
    }

    /// Reserves `amount` on every item (all of one hash tag) or on none.
    pub async fn reserve(
        &self,
        tag: &str,
        id: &str,
        lease_ms: u64,
        tomb_ms: u64,
        items: &[Item],
    ) -> Result<ReserveAnswer> {
        let conn = match self {
            QuotaStore::Memory(m) => {
                return Ok(m.reserve(tag, id, lease_ms, tomb_ms, items, now_ms()))
            }
            QuotaStore::Redis(c) => c,
        };
        let mut inv = SCRIPTS.quota_reserve.prepare_invoke();
        for k in Self::keys(conn, tag) {
            inv.key(k);
        }
        inv.arg(id).arg(lease_ms).arg(tomb_ms);
        for it in items {
            inv.key(format!("{}{}", conn.prefix, it.key));
            inv.arg(it.limit).arg(it.span.arg()).arg(it.amount);
        }
        let mut r: Vec<redis::Value> = conn.script(Budget::Fast, &inv).await?;
        let member = match r.last() {
            Some(redis::Value::BulkString(m)) if r.first() == Some(&redis::Value::Int(1)) => {
                let m = String::from_utf8_lossy(m).into_owned();
                r.pop();
                Some(m)
            }
            _ => None,
        };
        let r: Vec<i64> = r
            .iter()
            .map(|v| match v {
                redis::Value::Int(i) => Ok(*i),
                other => Err(bad_reply("quota_reserve", other)),
            })
            .collect::<Result<_>>()?;
        match (r.as_slice(), member) {
            ([1, now, rest @ ..], Some(member)) if rest.len() == 2 * items.len() => {
                Ok(ReserveAnswer::Admitted {
                    now_ms: num(*now),
                    used: pairs(rest),
                    member,
                })
            }
            ([0, now, i, retry, used, rest @ ..], None)
                if *i >= 1 && (*i as usize) <= items.len() && rest.len() == 2 * items.len() =>
            {
                Ok(ReserveAnswer::Refused {
                    now_ms: num(*now),
                    index: (*i - 1) as usize,
                    retry_ms: u64::try_from(*retry).ok(),
                    used: num(*used),
                    standing: pairs(rest),
                })
            }
            (other, _) => Err(bad_reply("quota_reserve", other)),
        }
    }

    /// Settles reservation `c.id` with the real usage of each window (in the
    /// order of the reservation) and, when the usage is charged, adds the
    /// ledger entry (same call).
    pub async fn settle(&self, c: &SettleCall<'_>) -> Result<Settled> {
        let conn = match self {
            QuotaStore::Memory(m) => return Ok(m.settle(c, now_ms())),
            QuotaStore::Redis(c) => c,
        };
        let call = c;
        let c = conn;
        let mut inv = SCRIPTS.quota_settle.prepare_invoke();
        let [lease, index] = Self::keys(c, call.tag);
        inv.key(&lease).key(index);
        let mode = match call.mode {
            SettleMode::Reserved => "r",
            SettleMode::Unreserved => "u",
        };
        inv.arg(call.id)
            .arg(call.tomb_ms)
            .arg(mode)
            .arg(call.member);
        match call.ledger {
            Some(l) => {
                inv.key(format!("{}{}", c.prefix, ledger_key(call.tag, &l.dims.day)));
                let d = &l.dims;
                let dims = serde_json::to_string(&[&d.tenant, &d.consumer, &d.model, &d.provider])
                    .map_err(|e| StateError::Rejected(format!("ledger entry: {e}")))?;
                let mut figures = String::with_capacity(64);
                for (i, n) in l.figures.to_array().iter().enumerate() {
                    if i > 0 {
                        figures.push(',');
                    }
                    // (the script keeps sums exact up to 2^53)
                    figures.push_str(itoa::Buffer::new().format((*n).min(super::MAX_AMOUNT)));
                }
                inv.arg(dims).arg(figures).arg(l.expire_at_s);
            }
            None => {
                inv.key(lease).arg("").arg("").arg(0);
            }
        }
        for a in call.actual {
            inv.key(format!("{}{}", c.prefix, a.key));
            let alerts: Vec<String> = a.alerts.iter().map(|p| p.to_string()).collect();
            inv.arg(a.span.arg())
                .arg(a.amount)
                .arg(a.limit)
                .arg(alerts.join(","));
        }
        let r: Vec<i64> = c.script(Budget::Fast, &inv).await?;
        settle_reply(&r, call.actual.len())
    }

    /// Notes that hash tag `tag` holds ledger days up to `day` (days since
    /// 1970-01-01), so a report finds them; tags whose last day is past the
    /// retention leave the list, which itself lives as long as its newest day
    /// hash (`expire_at_s`). Once a tag and day per replica: one round trip.
    pub async fn register_ledger_tag(
        &self,
        tag: &str,
        day: u64,
        retention_days: u64,
        expire_at_s: u64,
    ) -> Result<()> {
        let QuotaStore::Redis(c) = self else {
            return Ok(());
        };
        let key = format!("{}{LEDGER_TAGS}", c.prefix);
        let mut p = redis::pipe();
        p.cmd("ZADD").arg(&key).arg("GT").arg(day).arg(tag).ignore();
        p.cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(format!("({}", day.saturating_sub(retention_days)))
            .ignore();
        p.cmd("EXPIREAT")
            .arg(&key)
            .arg(expire_at_s)
            .arg("GT")
            .ignore();
        // (GT leaves a key without a TTL as it is: the first call sets one)
        p.cmd("EXPIREAT")
            .arg(&key)
            .arg(expire_at_s)
            .arg("NX")
            .ignore();
        c.pipe::<()>(Budget::Fast, &p).await
    }

    /// One page of the windows of `tag` now, after ended leases were given
    /// back: the windows `named` (listed or not), then up to `count` (at most
    /// `MAX_PAGE`) of the tag's index from `after` on, skipping windows that
    /// ended. A window charged while pages are read may show again on a later
    /// page; one that lives all along shows at least once.
    pub async fn usage(
        &self,
        tag: &str,
        tomb_ms: u64,
        named: &[String],
        count: usize,
        after: Option<&After>,
    ) -> Result<UsagePage> {
        let count = count.min(MAX_PAGE);
        let conn = match self {
            QuotaStore::Memory(m) => {
                return Ok(m.usage(tag, tomb_ms, named, count, after, now_ms()))
            }
            QuotaStore::Redis(c) => c,
        };
        let p = conn.prefix.as_str();
        let [lease, index] = Self::keys(conn, tag);
        let mut inv = SCRIPTS.quota_usage.prepare_invoke();
        inv.key(index).key(lease);
        for k in named {
            inv.key(format!("{p}{k}"));
        }
        inv.arg(tomb_ms).arg(count);
        match after {
            Some(a) => inv.arg(a.ends).arg(format!("{p}{}", a.key)),
            None => inv.arg("").arg(""),
        };
        let r: Vec<redis::Value> = conn.script(Budget::Slow, &inv).await?;
        let text = |v: &redis::Value| match v {
            redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        };
        let unprefixed = |k: String| match k.strip_prefix(p) {
            Some(rest) => rest.to_string(),
            None => k,
        };
        let (Some(score), Some(member)) = (r.get(1).and_then(text), r.get(2).and_then(text)) else {
            return Err(bad_reply("quota_usage", r));
        };
        let next = match score.parse::<u64>() {
            Ok(ends) => Some(After {
                ends,
                key: unprefixed(member),
            }),
            Err(_) => None,
        };
        let mut windows = Vec::new();
        for c in r.get(3..).unwrap_or_default().chunks(3) {
            let (key, used, reset) = match c {
                [k @ redis::Value::BulkString(_), redis::Value::Int(u), redis::Value::Int(r)] => {
                    (text(k).unwrap_or_default(), u, r)
                }
                other => return Err(bad_reply("quota_usage", other)),
            };
            windows.push((unprefixed(key), num(*used), num(*reset)));
        }
        Ok(UsagePage { windows, next })
    }

    /// Empties the windows `keys` (without prefix).
    pub async fn reset(&self, keys: &[String]) -> Result<()> {
        let conn = match self {
            QuotaStore::Memory(m) => {
                m.reset(keys);
                return Ok(());
            }
            QuotaStore::Redis(c) => c,
        };
        for k in keys {
            conn.query::<i64>(
                Budget::Slow,
                redis::cmd("DEL").arg(format!("{}{k}", conn.prefix)),
            )
            .await?;
        }
        Ok(())
    }
}

/// What `quota_settle` answered: its answer, then (index, percent, used) for
/// each alert crossed among the call's `items` windows.
pub fn settle_reply(r: &[i64], items: usize) -> Result<Settled> {
    let answer = match r.first() {
        Some(1) => SettleAnswer::Settled,
        Some(2) => SettleAnswer::Already,
        Some(3) => SettleAnswer::LateCharged,
        Some(4) => SettleAnswer::Charged,
        Some(0) => SettleAnswer::Nothing,
        _ => return Err(bad_reply("quota_settle", r)),
    };
    let mut crossed = Vec::new();
    for x in r.get(1..).unwrap_or_default().chunks(3) {
        match x {
            [i, p, used] if *i >= 1 && (*i as usize) <= items => crossed.push(Crossed {
                index: (*i - 1) as usize,
                percent: u8::try_from(*p).unwrap_or(100),
                used: num(*used),
            }),
            other => return Err(bad_reply("quota_settle", other)),
        }
    }
    Ok(Settled { answer, crossed })
}
