//! Health in Redis: one hash per provider (`<prefix>{h:<provider>}:health`)
//! changed and read by `lua/health_report.v1.lua`, the probe lease
//! (`{h:<provider>}:probe`, `SET NX PX`), and the fleet's in-flight counts
//! (`lua/busy_sync.v1.lua`).

use super::rules::{Source, TargetState};
use crate::redis_conn::Result;
use crate::redis_conn::{Budget, RedisConn, SCRIPTS};
use std::collections::HashMap;

/// What one provider's hash held, with Redis's clock at that moment.
#[derive(Debug, Default, Clone)]
pub struct FleetState {
    pub now: u64,
    /// what this call did: 1 = began an ejection, 2 = ended one (3 = both)
    pub changed: u8,
    /// by target: 0 = provider, i + 1 = api token i
    pub targets: HashMap<usize, TargetState>,
}

/// One event as the script takes it.
pub struct Arg {
    pub target: usize,
    pub kind: &'static str,
    pub count: u32,
    pub err: String,
    pub a: u64,
    pub b: u64,
    pub c: u64,
}

pub fn health_key(prefix: &str, provider: &str) -> String {
    format!("{prefix}{{h:{provider}}}:health")
}

/// Sends `events` (none: only reads) and answers the provider's state after them.
/// `labels` names the targets in the hash: `labels[t]` for target `t` (`p` for
/// the provider, a fingerprint for each api token, so a token keeps its state
/// when others are added or removed and a replaced token starts afresh).
pub async fn exchange(
    conn: &RedisConn,
    channel: &str,
    provider: &str,
    labels: &[String],
    events: &[Arg],
) -> Result<FleetState> {
    let key = health_key(&conn.prefix, provider);
    let mut inv = SCRIPTS.health_report.key(&key);
    inv.arg(channel)
        .arg(format!("h:{provider}"))
        .arg(events.iter().filter(|e| e.target < labels.len()).count());
    for e in events {
        let Some(label) = labels.get(e.target) else {
            continue;
        };
        inv.arg(label)
            .arg(e.kind)
            .arg(e.count)
            .arg(&e.err)
            .arg(e.a)
            .arg(e.b)
            .arg(e.c);
    }
    let raw: Vec<redis::Value> = conn.script(Budget::Fast, &inv).await?;
    Ok(parse(&raw, labels))
}

fn text(v: &redis::Value) -> Option<String> {
    match v {
        redis::Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        redis::Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn parse(raw: &[redis::Value], labels: &[String]) -> FleetState {
    let mut out = FleetState {
        now: raw
            .first()
            .and_then(text)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
        changed: raw
            .get(1)
            .and_then(text)
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
        targets: HashMap::new(),
    };
    for pair in raw.get(2..).unwrap_or_default().chunks(2) {
        let (Some(field), Some(value)) = (pair.first().and_then(text), pair.get(1).and_then(text))
        else {
            continue;
        };
        let Some((label, f)) = field.split_once(':') else {
            continue;
        };
        // fields of tokens no longer configured are left alone
        let Some(t) = labels.iter().position(|l| l == label) else {
            continue;
        };
        let s = out.targets.entry(t).or_default();
        let n = || value.parse::<f64>().map(|x| x as u64).unwrap_or(0);
        match f {
            "f" => s.fails = n(),
            "u" => s.until = n(),
            "a" => s.since = n(),
            "n" => s.ejections = u32::try_from(n()).unwrap_or(u32::MAX),
            "s" => s.source = Source::parse(&value),
            "e" => s.last_error = Some(value),
            "ok" => s.probe_ok = n(),
            "ko" => s.probe_ko = n(),
            "r" => {
                s.recent = value
                    .split(',')
                    .filter_map(|x| x.parse::<f64>().ok().map(|x| x as u64))
                    .collect()
            }
            _ => {}
        }
    }
    out
}

/// Takes the probe lease of `provider` for `ms` if nobody holds it.
pub async fn lease(conn: &RedisConn, provider: &str, replica: &str, ms: u64) -> Result<bool> {
    let key = format!("{}{{h:{provider}}}:probe", conn.prefix);
    let got: Option<String> = conn
        .query(
            Budget::Fast,
            redis::cmd("SET")
                .arg(key)
                .arg(replica)
                .arg("NX")
                .arg("PX")
                .arg(ms.max(1)),
        )
        .await?;
    Ok(got.is_some())
}

/// The hash tag of the fleet's in-flight counts.
pub const BUSY_TAG: &str = "busy";

/// Writes this replica's in-flight counts and answers the other replicas' sums by
/// provider. Replicas silent for `stale_ms` no longer count.
pub async fn busy_exchange(
    conn: &RedisConn,
    replica: &str,
    counts: &[(std::sync::Arc<str>, i64)],
    stale_ms: u64,
) -> Result<HashMap<String, i64>> {
    let key = format!("{}{{{BUSY_TAG}}}:inflight", conn.prefix);
    let mut inv = SCRIPTS.busy_sync.key(&key);
    inv.arg(replica).arg(stale_ms);
    for (p, n) in counts {
        inv.arg(&**p).arg(*n);
    }
    let raw: Vec<redis::Value> = conn.script(Budget::Fast, &inv).await?;
    let mut out = HashMap::new();
    for pair in raw.chunks(2) {
        if let (Some(p), Some(n)) = (
            pair.first().and_then(text),
            pair.get(1).and_then(text).and_then(|n| n.parse().ok()),
        ) {
            out.insert(p, n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    fn b(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn parses_the_hash() {
        let raw = vec![
            Value::Int(5000),
            Value::Int(1),
            b("p:u"),
            b("9000"),
            b("p:a"),
            b("4000"),
            b("p:s"),
            b("active"),
            b("tok:f"),
            b("3"),
            b("tok:r"),
            b("4000,4500"),
            b("tok:e"),
            b("http 401"),
            b("gone:f"),
            b("9"),
            b("junk"),
            b("x"),
        ];
        let labels: Vec<String> = ["p", "a1", "tok"].iter().map(|s| s.to_string()).collect();
        let s = parse(&raw, &labels);
        assert_eq!((s.now, s.changed), (5000, 1));
        let p = &s.targets[&0];
        assert_eq!((p.until, p.since, p.source), (9000, 4000, Source::Active));
        let t = &s.targets[&2];
        assert_eq!(t.fails, 3);
        assert_eq!(t.recent, [4000, 4500]);
        assert_eq!(t.last_error.as_deref(), Some("http 401"));
        assert_eq!(s.targets.len(), 2, "a label not configured is skipped");
    }
}
