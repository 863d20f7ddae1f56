//! The quota scripts' calls as the Redis store sends them: their arguments and
//! answers. One reservation (`lua/quota_reserve.v5.lua`), one settlement
//! (`quota_settle.v5.lua`), or several operations of one hash tag in one call
//! (`quota_batch.v5.lua`, each operation answered as the single scripts
//! answer it). See lua/README.md.

use super::ops::{
    Answer, Crossed, LedgerAdd, Op, ReserveAnswer, ReserveOp, SettleAnswer, SettleMode, Settled,
    WindowUse,
};
use super::store::{ledger_key, SettleCall};
use crate::redis_conn::{Budget, RedisConn, Result, StateError, SCRIPTS};
use redis::Value;

/// The lease zset and the window index of a tag.
pub(super) fn tag_keys(prefix: &str, tag: &str) -> [String; 2] {
    [
        format!("{prefix}{{{tag}}}:qlease"),
        format!("{prefix}{{{tag}}}:qidx"),
    ]
}

pub(super) fn bad_reply(what: &str, v: impl std::fmt::Debug) -> StateError {
    StateError::Rejected(format!("unexpected {what} answer from Redis: {v:?}"))
}

pub(super) fn num(v: i64) -> u64 {
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

fn mode_arg(m: SettleMode) -> &'static str {
    match m {
        SettleMode::Reserved => "r",
        SettleMode::Unreserved => "u",
    }
}

/// A ledger entry's dims (the JSON array of the group) and figures (nine
/// numbers, comma-separated).
fn ledger_args(l: &LedgerAdd) -> Result<(String, String)> {
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
    Ok((dims, figures))
}

/// The alert percentages of a window: `50,80,100` or "".
fn alerts_arg(alerts: &[u8]) -> String {
    let mut s = String::new();
    for (i, p) in alerts.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(itoa::Buffer::new().format(*p));
    }
    s
}

/// One reservation: `quota_reserve`.
pub(super) async fn reserve(conn: &RedisConn, tag: &str, op: &ReserveOp) -> Result<ReserveAnswer> {
    let mut inv = SCRIPTS.quota_reserve.prepare_invoke();
    for k in tag_keys(&conn.prefix, tag) {
        inv.key(k);
    }
    inv.arg(&op.id).arg(op.lease_ms).arg(op.tomb_ms);
    for it in &op.items {
        inv.key(format!("{}{}", conn.prefix, it.key));
        inv.arg(it.limit).arg(it.span.arg()).arg(it.amount);
    }
    let r: Vec<Value> = conn.script(Budget::Fast, &inv).await?;
    reserve_reply(r, op.items.len())
}

/// What `quota_reserve` answered for `items` windows.
fn reserve_reply(mut r: Vec<Value>, items: usize) -> Result<ReserveAnswer> {
    let member = match r.last() {
        Some(Value::BulkString(m)) if r.first() == Some(&Value::Int(1)) => {
            let m = String::from_utf8_lossy(m).into_owned();
            r.pop();
            Some(m)
        }
        _ => None,
    };
    let r: Vec<i64> = r
        .iter()
        .map(|v| match v {
            Value::Int(i) => Ok(*i),
            other => Err(bad_reply("quota_reserve", other)),
        })
        .collect::<Result<_>>()?;
    match (r.as_slice(), member) {
        ([1, now, rest @ ..], Some(member)) if rest.len() == 2 * items => {
            Ok(ReserveAnswer::Admitted {
                now_ms: num(*now),
                used: pairs(rest),
                member,
            })
        }
        ([0, now, i, retry, used, rest @ ..], None)
            if *i >= 1 && (*i as usize) <= items && rest.len() == 2 * items =>
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

/// One settlement: `quota_settle`.
pub(super) async fn settle(conn: &RedisConn, call: &SettleCall<'_>) -> Result<Settled> {
    let mut inv = SCRIPTS.quota_settle.prepare_invoke();
    let [lease, index] = tag_keys(&conn.prefix, call.tag);
    inv.key(&lease).key(index);
    inv.arg(call.id)
        .arg(call.tomb_ms)
        .arg(mode_arg(call.mode))
        .arg(call.member);
    match call.ledger {
        Some(l) => {
            let (dims, figures) = ledger_args(l)?;
            inv.key(format!(
                "{}{}",
                conn.prefix,
                ledger_key(call.tag, &l.dims.day)
            ));
            inv.arg(dims).arg(figures).arg(l.expire_at_s);
        }
        None => {
            inv.key(lease).arg("").arg("").arg(0);
        }
    }
    for a in call.actual {
        inv.key(format!("{}{}", conn.prefix, a.key));
        inv.arg(a.span.arg())
            .arg(a.amount)
            .arg(a.limit)
            .arg(alerts_arg(&a.alerts));
    }
    let r: Vec<i64> = conn.script(Budget::Fast, &inv).await?;
    settle_reply(&r, call.actual.len())
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

/// What one call of several operations answered: Redis's time, and each
/// operation's answer (an error of its own when its arguments were refused).
#[derive(Debug)]
pub struct Batched {
    pub now_ms: u64,
    pub answers: Vec<Result<Answer>>,
}

/// The KEYS of a batch: the lease zset and the index, then every other key
/// once; answers a key's position (1-based, as the script counts).
struct Keys<'a> {
    prefix: &'a str,
    /// unprefixed keys from the third on, in order
    names: Vec<&'a str>,
}

impl<'a> Keys<'a> {
    fn at(&mut self, key: &'a str) -> usize {
        let i = match self.names.iter().position(|k| *k == key) {
            Some(i) => i,
            None => {
                self.names.push(key);
                self.names.len() - 1
            }
        };
        i + 3
    }
}

/// Several operations of `tag` in one `quota_batch` call, run in order.
pub(super) async fn batch(conn: &RedisConn, tag: &str, ops: &[Op]) -> Result<Batched> {
    let ledger_keys: Vec<Option<String>> = ops
        .iter()
        .map(|op| match op {
            Op::Settle(s) => s.ledger.as_ref().map(|l| ledger_key(tag, &l.dims.day)),
            Op::Reserve(_) => None,
        })
        .collect();
    let mut keys = Keys {
        prefix: &conn.prefix,
        names: Vec::new(),
    };
    let mut inv = SCRIPTS.quota_batch.prepare_invoke();
    inv.arg(ops.len());
    for (op, ledger) in ops.iter().zip(&ledger_keys) {
        match op {
            Op::Reserve(r) => {
                inv.arg("r")
                    .arg(&r.id)
                    .arg(r.lease_ms)
                    .arg(r.tomb_ms)
                    .arg(r.items.len());
                for it in &r.items {
                    inv.arg(keys.at(&it.key))
                        .arg(it.limit)
                        .arg(it.span.arg())
                        .arg(it.amount);
                }
            }
            Op::Settle(s) => {
                inv.arg("s")
                    .arg(&s.id)
                    .arg(s.tomb_ms)
                    .arg(mode_arg(s.mode))
                    .arg(&s.member);
                match (&s.ledger, ledger) {
                    (Some(l), Some(k)) => {
                        let (dims, figures) = ledger_args(l)?;
                        inv.arg(keys.at(k))
                            .arg(dims)
                            .arg(figures)
                            .arg(l.expire_at_s);
                    }
                    _ => {
                        inv.arg(0).arg("").arg("").arg(0);
                    }
                }
                inv.arg(s.actual.len());
                for a in &s.actual {
                    inv.arg(keys.at(&a.key))
                        .arg(a.span.arg())
                        .arg(a.amount)
                        .arg(a.limit)
                        .arg(alerts_arg(&a.alerts));
                }
            }
        }
    }
    for k in tag_keys(keys.prefix, tag) {
        inv.key(k);
    }
    for k in &keys.names {
        inv.key(format!("{}{k}", keys.prefix));
    }
    let r: Vec<Value> = conn.script(Budget::Fast, &inv).await?;
    batch_reply(r, ops)
}

/// What `quota_batch` answered for `ops`.
fn batch_reply(r: Vec<Value>, ops: &[Op]) -> Result<Batched> {
    let mut it = r.into_iter();
    let now_ms = match it.next() {
        Some(Value::Int(now)) => num(now),
        other => return Err(bad_reply("quota_batch", other)),
    };
    let answers: Vec<Result<Answer>> = ops
        .iter()
        .zip(it.by_ref())
        .map(|(op, v)| {
            let Value::Array(v) = v else {
                return Err(bad_reply("quota_batch", v));
            };
            if let [Value::Int(-1), Value::BulkString(e)] = v.as_slice() {
                return Err(StateError::Rejected(format!(
                    "Redis: {}",
                    String::from_utf8_lossy(e)
                )));
            }
            match op {
                Op::Reserve(r) => reserve_reply(v, r.items.len()).map(Answer::Reserve),
                Op::Settle(s) => {
                    let ints: Vec<i64> = v
                        .iter()
                        .map(|x| match x {
                            Value::Int(i) => Ok(*i),
                            other => Err(bad_reply("quota_settle", other)),
                        })
                        .collect::<Result<_>>()?;
                    settle_reply(&ints, s.actual.len()).map(Answer::Settle)
                }
            }
        })
        .collect();
    if answers.len() != ops.len() || it.next().is_some() {
        return Err(bad_reply("quota_batch", "another number of answers"));
    }
    Ok(Batched { now_ms, answers })
}

/// Sends `ops` of `tag` in one call: the single scripts for one operation
/// (the lone request's call stays as small as it was), `quota_batch` for
/// more. A failed call is the failure of each of its operations.
pub(super) async fn send(conn: &RedisConn, tag: &str, ops: &[Op]) -> Result<Vec<Result<Answer>>> {
    match ops {
        [Op::Reserve(r)] => Ok(vec![Ok(Answer::Reserve(reserve(conn, tag, r).await?))]),
        [Op::Settle(s)] => Ok(vec![Ok(Answer::Settle(settle(conn, &s.call(tag)).await?))]),
        _ => Ok(batch(conn, tag, ops).await?.answers),
    }
}
