//! Where quota windows live: in this process (`memory`) or in Redis, through
//! `lua/quota_reserve.v2.lua`, `quota_settle.v2.lua` and `quota_usage.v2.lua`.
//! Both answer the same way; `conformance.rs` checks they agree.

use super::memory::MemoryQuotas;
use super::now_ms;
use crate::redis_conn::{Budget, RedisConn, SCRIPTS};
use crate::redis_conn::{Result, StateError};
use std::sync::Arc;

pub use super::ops::{
    After, Item, ReserveAnswer, SettleAnswer, SettleMode, UsagePage, WindowUse, BUCKETS, MAX_PAGE,
};

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
            inv.arg(it.limit).arg(it.window_ms).arg(it.amount);
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

    /// Settles reservation `id` with the real usage of each item (same order).
    /// `actual`: (window key, window ms, amount).
    pub async fn settle(
        &self,
        tag: &str,
        id: &str,
        member: &str,
        tomb_ms: u64,
        mode: SettleMode,
        actual: &[(String, u64, u64)],
    ) -> Result<SettleAnswer> {
        let conn = match self {
            QuotaStore::Memory(m) => {
                let _ = member; // the id is enough in memory
                return Ok(m.settle(tag, id, tomb_ms, mode, actual, now_ms()));
            }
            QuotaStore::Redis(c) => c,
        };
        let mut inv = SCRIPTS.quota_settle.prepare_invoke();
        for k in Self::keys(conn, tag) {
            inv.key(k);
        }
        let m = match mode {
            SettleMode::Reserved => "r",
            SettleMode::Unreserved => "u",
        };
        inv.arg(id).arg(tomb_ms).arg(m).arg(member);
        for (key, window_ms, amount) in actual {
            inv.key(format!("{}{}", conn.prefix, key));
            inv.arg(*window_ms).arg(*amount);
        }
        let r: i64 = conn.script(Budget::Fast, &inv).await?;
        Ok(match r {
            1 => SettleAnswer::Settled,
            2 => SettleAnswer::Already,
            3 => SettleAnswer::LateCharged,
            4 => SettleAnswer::Charged,
            0 => SettleAnswer::Nothing,
            other => return Err(bad_reply("quota_settle", other)),
        })
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
