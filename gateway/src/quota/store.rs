//! Where quota windows and the usage ledger live: in this process (`memory`)
//! or in Redis, through `lua/quota_reserve.v5.lua`, `quota_settle.v5.lua`,
//! `quota_batch.v5.lua` (`calls.rs`; operations of one hash tag that are
//! ready together share a call: `coalesce.rs`) and `quota_usage.v5.lua`. Both
//! answer the same way; `conformance.rs` checks they agree.

use super::calls::{self, bad_reply, num, tag_keys};
use super::coalesce::{self, Lines};
use super::memory::MemoryQuotas;
use super::now_ms;
use crate::redis_conn::{Budget, RedisConn, SCRIPTS};
use crate::redis_conn::{Result, StateError};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub use super::calls::{settle_reply, Batched};
pub use super::ops::{
    Actual, After, Answer, Crossed, Item, LedgerAdd, Op, ReserveAnswer, ReserveOp, SettleAnswer,
    SettleMode, SettleOp, Settled, Span, UsagePage, WindowUse, BUCKETS, MAX_PAGE,
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
    Redis(RedisQuotas),
}

/// The Redis store: its connection, and its calls in flight by hash tag
/// (`coalesce`: operations of a tag that are ready together share a call).
pub struct RedisQuotas {
    pub conn: Arc<RedisConn>,
    lines: Arc<Lines>,
}

impl SettleOp {
    /// This settlement as the store is asked it, for hash tag `tag`.
    pub fn call<'a>(&'a self, tag: &'a str) -> SettleCall<'a> {
        SettleCall {
            tag,
            id: &self.id,
            member: &self.member,
            tomb_ms: self.tomb_ms,
            mode: self.mode,
            actual: &self.actual,
            ledger: self.ledger.as_ref(),
        }
    }
}

impl SettleCall<'_> {
    /// The settlement as an operation of its own.
    pub fn to_op(&self) -> SettleOp {
        SettleOp {
            id: self.id.to_string(),
            member: self.member.to_string(),
            tomb_ms: self.tomb_ms,
            mode: self.mode,
            actual: self.actual.to_vec(),
            ledger: self.ledger.cloned(),
        }
    }
}

fn one<T>(mut r: Vec<Result<T>>) -> Result<T> {
    match (r.pop(), r.is_empty()) {
        (Some(a), true) => a,
        _ => Err(StateError::Rejected(
            "quota call: another number of answers than operations".into(),
        )),
    }
}

impl QuotaStore {
    /// The Redis store on `conn`.
    pub fn redis(conn: Arc<RedisConn>) -> QuotaStore {
        QuotaStore::Redis(RedisQuotas {
            conn,
            lines: Arc::default(),
        })
    }

    /// The Redis connection (None: memory).
    pub fn conn(&self) -> Option<&Arc<RedisConn>> {
        match self {
            QuotaStore::Memory(_) => None,
            QuotaStore::Redis(r) => Some(&r.conn),
        }
    }

    /// Quota calls sent to Redis and the operations they carried.
    pub fn calls(&self) -> (u64, u64) {
        match self {
            QuotaStore::Memory(_) => (0, 0),
            QuotaStore::Redis(r) => (
                r.lines.calls.load(Ordering::Relaxed),
                r.lines.ops.load(Ordering::Relaxed),
            ),
        }
    }

    /// Whether the node holding hash slot `slot` is known to be unreachable.
    pub fn is_slot_down(&self, slot: u16) -> bool {
        match self {
            QuotaStore::Memory(_) => false,
            QuotaStore::Redis(r) => r.conn.reach.is_slot_down(slot),
        }
    }

    /// Whether the node holding hash tag `tag` is known to be unreachable.
    pub fn is_tag_down(&self, tag: &str) -> bool {
        match self {
            QuotaStore::Memory(_) => false,
            QuotaStore::Redis(r) => r.conn.is_tag_down(tag),
        }
    }

    /// Whether the node holding `tag` came back from an outage moments ago
    /// (`reach::SETTLE_MS`): the replicas are still landing what they served
    /// during it.
    pub fn is_settling(&self, tag: &str) -> bool {
        match self {
            QuotaStore::Memory(_) => false,
            QuotaStore::Redis(r) => r.conn.reach.is_settling(tag),
        }
    }

    /// Woken when a Redis node becomes reachable again (None: memory).
    pub fn back(&self) -> Option<&tokio::sync::Notify> {
        match self {
            QuotaStore::Memory(_) => None,
            QuotaStore::Redis(r) => Some(&r.conn.reach.back),
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
        let op = ReserveOp {
            id: id.to_string(),
            lease_ms,
            tomb_ms,
            items: items.to_vec(),
        };
        self.reserve_op(tag, Arc::new(op)).await
    }

    /// Reserves `op` (in Redis with the next call of its tag: see `coalesce`).
    pub async fn reserve_op(&self, tag: &str, op: Arc<ReserveOp>) -> Result<ReserveAnswer> {
        let r = match self {
            QuotaStore::Memory(m) => {
                return Ok(m.reserve(tag, &op.id, op.lease_ms, op.tomb_ms, &op.items, now_ms()))
            }
            QuotaStore::Redis(r) => r,
        };
        match one(coalesce::call(&r.lines, &r.conn, tag, vec![Op::Reserve(op)]).await?)? {
            Answer::Reserve(a) => Ok(a),
            Answer::Settle(_) => Err(StateError::Rejected(
                "quota call: a settle answer for a reservation".into(),
            )),
        }
    }

    /// Settles reservation `c.id` with the real usage of each window (in the
    /// order of the reservation) and, when the usage is charged, adds the
    /// ledger entry (same call).
    pub async fn settle(&self, c: &SettleCall<'_>) -> Result<Settled> {
        if let QuotaStore::Memory(m) = self {
            return Ok(m.settle(c, now_ms()));
        }
        one(self.settle_ops(c.tag, vec![Arc::new(c.to_op())]).await?)
    }

    /// Settles `ops` of `tag` in order (in Redis with the next call of the
    /// tag): each one's answer, or the failure of the call.
    pub async fn settle_ops(
        &self,
        tag: &str,
        ops: Vec<Arc<SettleOp>>,
    ) -> Result<Vec<Result<Settled>>> {
        let r = match self {
            QuotaStore::Memory(m) => {
                let now = now_ms();
                return Ok(ops
                    .iter()
                    .map(|s| Ok(m.settle(&s.call(tag), now)))
                    .collect());
            }
            QuotaStore::Redis(r) => r,
        };
        let answers = coalesce::call(
            &r.lines,
            &r.conn,
            tag,
            ops.into_iter().map(Op::Settle).collect(),
        )
        .await?;
        Ok(answers
            .into_iter()
            .map(|a| match a? {
                Answer::Settle(s) => Ok(s),
                Answer::Reserve(_) => Err(StateError::Rejected(
                    "quota call: a reserve answer for a settlement".into(),
                )),
            })
            .collect())
    }

    /// Runs `ops` of `tag` in order in one call of their own (Redis:
    /// `quota_batch`, whatever else is in flight): Redis's time and each
    /// operation's answer.
    pub async fn batch(&self, tag: &str, ops: &[Op]) -> Result<Batched> {
        match self {
            QuotaStore::Memory(m) => {
                let now = now_ms();
                Ok(Batched {
                    now_ms: now,
                    answers: m.batch(tag, ops, now).into_iter().map(Ok).collect(),
                })
            }
            QuotaStore::Redis(r) => calls::batch(&r.conn, tag, ops).await,
        }
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
        let QuotaStore::Redis(RedisQuotas { conn: c, .. }) = self else {
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
            QuotaStore::Redis(r) => &r.conn,
        };
        let p = conn.prefix.as_str();
        let [lease, index] = tag_keys(p, tag);
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
            QuotaStore::Redis(r) => &r.conn,
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
