//! The quota and ledger scripts as the gateway sends them (`quota_lib.v5.lua`
//! prepended to each quota script), run with `EVAL` through `redis-cli`, for
//! the tests that check the scripts themselves (`tests/tests/quota_lua.rs`,
//! `quota_calendar_lua.rs`): the script texts, `EVAL`, Redis's clock, and
//! [`QuotaTag`], one tenant's quota keys with calls in v3's argument layout
//! (calendar window arguments, ledger entries, alert percentages).

use super::lease::Cli;
use super::reply::{ints, parse, Reply};
use super::RedisServer;
use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::Duration;

pub const RESERVE: &str = concat!(
    include_str!("../../../lua/quota_lib.v5.lua"),
    include_str!("../../../lua/quota_reserve.v5.lua")
);
pub const SETTLE: &str = concat!(
    include_str!("../../../lua/quota_lib.v5.lua"),
    include_str!("../../../lua/quota_settle.v5.lua")
);
pub const BATCH: &str = concat!(
    include_str!("../../../lua/quota_lib.v5.lua"),
    include_str!("../../../lua/quota_batch.v5.lua")
);
pub const USAGE: &str = concat!(
    include_str!("../../../lua/quota_lib.v5.lua"),
    include_str!("../../../lua/quota_usage.v5.lua")
);
pub const LEDGER_READ: &str = include_str!("../../../lua/ledger_read.v1.lua");

/// `EVAL script` with `keys` and `args`, the answer parsed.
pub fn eval<S: AsRef<str>>(redis: &dyn Cli, script: &str, keys: &[String], args: &[S]) -> Reply {
    let n = keys.len().to_string();
    let mut argv = vec!["--no-raw", "EVAL", script, n.as_str()];
    argv.extend(keys.iter().map(String::as_str));
    argv.extend(args.iter().map(AsRef::as_ref));
    parse(&redis.cli(&argv))
}

/// Redis's own clock (`TIME`), in ms: what the scripts count with.
pub fn redis_now_ms(redis: &dyn Cli) -> i64 {
    let t = redis.cli(&["TIME"]);
    let mut parts = t.lines().map(|l| l.trim().parse::<i64>().unwrap());
    let (Some(s), Some(us)) = (parts.next(), parts.next()) else {
        panic!("TIME answered {t:?}")
    };
    s * 1000 + us / 1000
}

/// Every key on `redis` (standalone) expires: none without a TTL.
pub fn assert_every_key_expires(redis: &RedisServer) {
    let keys = redis.cli(&["KEYS", "*"]);
    for key in keys.lines() {
        let pttl: i64 = redis.cli(&["PTTL", key]).parse().unwrap();
        assert!(pttl > 0, "{key:?} has PTTL {pttl}");
    }
}

// ---------------------------------------------------------------------------
// v3: calendar windows, the usage ledger, alerts

/// Lease and tombstone of reservations that are not about expiry.
pub const LEASE: i64 = 30_000;
pub const TOMB: i64 = 60_000;

/// Four period boundaries around `now` (Redis ms): the current period began
/// 10 s ago and ends `ms` after `now`; the next one lasts an hour.
pub fn ending_in(now: i64, ms: i64) -> [i64; 4] {
    [now - 20_000, now - 10_000, now + ms, now + ms + 3_600_000]
}

/// The window argument of a calendar: `<name>,<t0>,<t1>,<t2>,<t3>`.
pub fn cal(name: &str, b: [i64; 4]) -> String {
    format!("{name},{},{},{},{}", b[0], b[1], b[2], b[3])
}

/// A reserve: (quota name, limit, window argument, amount).
pub type Reserving<'a> = (&'a str, i64, &'a str, i64);
/// A settle: (quota name, window argument, actual amount, limit, alert
/// percentages `50,80,100` or "").
pub type Settling<'a> = (&'a str, &'a str, i64, i64, &'a str);

/// A ledger entry: the group, its 9 figures, when the day hash expires (unix s).
pub struct Entry<'a> {
    /// `YYYY-MM-DD`: the hash `{tag}:ledger:<day>`
    pub day: &'a str,
    pub dims: &'a str,
    pub figures: &'a str,
    pub expire_at: i64,
}

#[derive(Debug)]
pub struct Admitted {
    pub id: String,
    pub now: i64,
    pub used: Vec<i64>,
    pub reset: Vec<i64>,
    pub member: String,
}

#[derive(Debug)]
pub struct Refused {
    pub now: i64,
    pub quota: i64,
    pub retry: i64,
    pub used: i64,
}

/// The keys of tenant `t` under the hash tag `{t:<t>}`.
pub struct QuotaTag<'a> {
    pub redis: &'a RedisServer,
    pub t: &'a str,
}

impl<'a> QuotaTag<'a> {
    pub fn new(redis: &'a RedisServer, t: &'a str) -> QuotaTag<'a> {
        QuotaTag { redis, t }
    }

    /// `gw:{t:acme}:<suffix>`
    pub fn key(&self, suffix: &str) -> String {
        format!("gw:{{t:{}}}:{suffix}", self.t)
    }

    /// The window hash of tenant quota `name`.
    pub fn window(&self, name: &str) -> String {
        let t = self.t;
        format!("gw:{{t:{t}}}:q:t:{t}:{name}:{t}")
    }

    /// The ledger's hash of day `day`.
    pub fn ledger(&self, day: &str) -> String {
        self.key(&format!("ledger:{day}"))
    }

    pub fn cmd(&self, args: &[&str]) -> String {
        self.redis.cli(args)
    }

    pub fn now(&self) -> i64 {
        redis_now_ms(self.redis)
    }

    /// Sleeps until Redis's clock is a little past `t` (ms).
    pub fn sleep_past(&self, t: i64) {
        let wait = t + 30 - self.now();
        if wait > 0 {
            sleep(Duration::from_millis(u64::try_from(wait).unwrap()));
        }
    }

    pub fn reserve(&self, id: &str, quotas: &[Reserving]) -> Reply {
        let mut keys = vec![self.key("qlease"), self.key("qidx")];
        let mut args = vec![id.to_string(), LEASE.to_string(), TOMB.to_string()];
        for (name, limit, w, amount) in quotas {
            keys.push(self.window(name));
            args.extend([limit.to_string(), w.to_string(), amount.to_string()]);
        }
        eval(self.redis, RESERVE, &keys, &args)
    }

    /// Reserves and expects `{1, now, used_1, reset_1, ..., member}`.
    pub fn admit(&self, id: &str, quotas: &[Reserving]) -> Admitted {
        let r = self.reserve(id, quotas);
        let Some((Reply::Str(member), rest)) = r.items().split_last() else {
            panic!("{id} should be admitted: {r:?}")
        };
        let n = ints(rest);
        assert_eq!((n[0], n.len()), (1, 2 + 2 * quotas.len()), "{r:?}");
        Admitted {
            id: id.to_string(),
            now: n[1],
            used: n[2..].iter().step_by(2).copied().collect(),
            reset: n[3..].iter().step_by(2).copied().collect(),
            member: member.clone(),
        }
    }

    /// Reserves and expects `{0, now, quota, retry_ms, used, ...}`.
    pub fn refuse(&self, id: &str, quotas: &[Reserving]) -> Refused {
        let r = self.reserve(id, quotas).ints();
        assert_eq!((r[0], r.len()), (0, 5 + 2 * quotas.len()), "{r:?}");
        Refused {
            now: r[1],
            quota: r[2],
            retry: r[3],
            used: r[4],
        }
    }

    /// quota_settle: lease, index, the ledger's day hash, the windows; id,
    /// tombstone, mode, member, the ledger entry ('' '' 0: none), then per
    /// window its argument, actual amount, limit and alerts.
    pub fn settle_call(
        &self,
        id: &str,
        mode: &str,
        member: &str,
        entry: Option<&Entry>,
        actual: &[Settling],
    ) -> Reply {
        // (without an entry the gateway names the lease zset: a key of the tag)
        let day = entry.map_or(self.key("qlease"), |e| self.ledger(e.day));
        let mut keys = vec![self.key("qlease"), self.key("qidx"), day];
        let mut args: Vec<String> = vec![id.into(), TOMB.to_string(), mode.into(), member.into()];
        match entry {
            Some(e) => args.extend([
                e.dims.to_string(),
                e.figures.to_string(),
                e.expire_at.to_string(),
            ]),
            None => args.extend([String::new(), String::new(), "0".to_string()]),
        }
        for (name, w, amount, limit, alerts) in actual {
            keys.push(self.window(name));
            args.extend([
                w.to_string(),
                amount.to_string(),
                limit.to_string(),
                alerts.to_string(),
            ]);
        }
        eval(self.redis, SETTLE, &keys, &args)
    }

    /// Mode `r`, no ledger entry: the answer `{code, i, percent, used, ...}`.
    pub fn settle(&self, a: &Admitted, actual: &[Settling]) -> Vec<i64> {
        self.settle_call(&a.id, "r", &a.member, None, actual).ints()
    }

    /// Mode `u` (usage charged without a reservation), no ledger entry.
    pub fn settle_u(&self, id: &str, actual: &[Settling]) -> Vec<i64> {
        self.settle_call(id, "u", "", None, actual).ints()
    }

    /// quota_usage of the windows `names` and of the whole index.
    pub fn usage(&self, names: &[&str]) -> Usage {
        let mut keys = vec![self.key("qidx"), self.key("qlease")];
        keys.extend(names.iter().map(|n| self.window(n)));
        let r = eval(
            self.redis,
            USAGE,
            &keys,
            &[TOMB.to_string().as_str(), "10000", "", ""],
        );
        let mut u = Usage {
            named: Vec::new(),
            listed: BTreeMap::new(),
        };
        for (i, w) in r.items()[3..].chunks(3).enumerate() {
            let [Reply::Str(k), Reply::Int(used), Reply::Int(reset)] = w else {
                panic!("quota_usage entry {w:?} in {r:?}")
            };
            if i < names.len() {
                assert_eq!(*k, keys[2 + i], "the named windows first, in order");
                u.named.push((*used, *reset));
            } else {
                u.listed.insert(k.clone(), (*used, *reset));
            }
        }
        u
    }

    /// What window `name` holds per quota_usage, and its reset ms.
    pub fn used(&self, name: &str) -> (i64, i64) {
        self.usage(&[name]).named[0]
    }

    /// The raw fields of a hash (fields may hold newlines).
    pub fn hash(&self, key: &str) -> BTreeMap<String, String> {
        pairs(parse(&self.cmd(&["--no-raw", "HGETALL", key])).items())
    }

    pub fn pttl(&self, key: &str) -> i64 {
        self.cmd(&["PTTL", key]).parse().unwrap()
    }
}

/// What quota_usage answered: (used, reset_ms) of the windows asked for by
/// name, in order, and of those the index lists, by key.
pub struct Usage {
    pub named: Vec<(i64, i64)>,
    pub listed: BTreeMap<String, (i64, i64)>,
}

/// A flat `[field, value, ...]` reply as a map.
pub fn pairs(flat: &[Reply]) -> BTreeMap<String, String> {
    flat.chunks(2)
        .map(|p| match p {
            [Reply::Str(f), Reply::Str(v)] => (f.clone(), v.clone()),
            _ => panic!("hash pair {p:?}"),
        })
        .collect()
}
