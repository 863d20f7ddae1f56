//! The quota scripts (`lua/quota_reserve.v4.lua`, `quota_settle.v4.lua`,
//! `quota_usage.v4.lua`, each after `quota_lib.v4.lua`) run with `EVAL` on a
//! real redis-server, checked against their header comments and
//! `lua/README.md` ("Quotas"): all-or-nothing reservations on a sliding window
//! of 60 sub-buckets, refusals with a truthful retry time, reservations kept as
//! members of the lease zset (`"<id>\n<key>\n<bucket>\n<amount>\n<gen>..."`, settled
//! by that member), ended leases given back lazily (when a reserve would
//! otherwise refuse, 1 call in 16, and always by quota_usage), settles that
//! happen once, a TTL on every key, the window index (a zset scored with
//! each window's end, trimmed as windows end, gone with its last window) and
//! the usage report a page at a time. One test runs the same on a 3-node
//! cluster with every key under one hash tag.
//!
//! Most windows are 1000 ms, so a sub-bucket is `ceil(1000 / 60)` = 17 ms and
//! the sum covers 61 buckets: a charge made now counts for 1020..1037 ms.

use gateway_tests::redis::lease::{leases_of, Cli};
use gateway_tests::redis::reply::{ints, parse, Reply};
use gateway_tests::redis::scripts::{
    assert_every_key_expires, eval, BATCH, RESERVE, SETTLE, USAGE,
};
use gateway_tests::redis::{RedisCluster, RedisServer};
use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::Duration;

/// The window of most tests (ms) and its sub-bucket `ceil(W / 60)`.
const W: i64 = 1000;
const B: i64 = 17;
/// A day: its sub-bucket is 24 minutes, so calls a few ms apart share one.
const DAY: i64 = 86_400_000;
/// Lease and tombstone of reservations that are not about expiry.
const LEASE: i64 = 30_000;
const TOMB: i64 = 60_000;

/// The sub-bucket length of a window: `ceil(w / 60)`.
fn bucket_ms(w: i64) -> i64 {
    (w + 59) / 60
}

// ---------------------------------------------------------------------------
// the scripts, for one tenant's hash tag

/// A quota spec for reserve: (quota name, limit, window ms, amount).
type Q<'a> = (&'a str, i64, i64, i64);

/// An admitted reservation: what quota_reserve answered.
#[derive(Debug)]
struct Admitted {
    id: String,
    now: i64,
    used: Vec<i64>,
    reset: Vec<i64>,
    /// the lease zset member, which a mode `r` settle takes
    member: String,
}

#[derive(Debug, PartialEq)]
struct Refused {
    now: i64,
    quota: i64,
    retry: i64,
    used: i64,
}

/// The quota keys of tenant `t` under the hash tag `{t:<t>}`.
struct Tag<'a> {
    redis: &'a dyn Cli,
    t: &'a str,
}

impl<'a> Tag<'a> {
    fn new(redis: &'a dyn Cli, t: &'a str) -> Tag<'a> {
        Tag { redis, t }
    }

    /// `gw:{t:acme}:<suffix>`
    fn key(&self, suffix: &str) -> String {
        format!("gw:{{t:{}}}:{suffix}", self.t)
    }

    /// The lease zset: one member per reservation, plus tombstones.
    fn lease(&self) -> String {
        self.key("qlease")
    }

    /// The window hash of tenant quota `name`: `gw:{t:acme}:q:t:acme:<name>:acme`.
    fn window(&self, name: &str) -> String {
        let t = self.t;
        format!("gw:{{t:{t}}}:q:t:{t}:{name}:{t}")
    }

    /// KEYS of reserve/settle: lease zset, index, then the windows.
    fn keys(&self, names: &[&str]) -> Vec<String> {
        let mut keys = vec![self.lease(), self.key("qidx")];
        keys.extend(names.iter().map(|n| self.window(n)));
        keys
    }

    fn cmd(&self, args: &[&str]) -> String {
        self.redis.cli(args)
    }

    fn eval<S: AsRef<str>>(&self, script: &str, keys: &[String], args: &[S]) -> Reply {
        eval(self.redis, script, keys, args)
    }

    /// quota_reserve with every argument as given (to send bad ones).
    fn reserve_raw(&self, id: &str, lease: &str, quotas: &[(&str, &str, &str, &str)]) -> Reply {
        let names: Vec<&str> = quotas.iter().map(|q| q.0).collect();
        let tomb = TOMB.to_string();
        let mut args = vec![id, lease, tomb.as_str()];
        for (_, limit, w, amount) in quotas {
            args.extend([*limit, *w, *amount]);
        }
        self.eval(RESERVE, &self.keys(&names), &args)
    }

    fn reserve_lease(&self, id: &str, lease: i64, quotas: &[Q]) -> Reply {
        let s: Vec<[String; 3]> = quotas
            .iter()
            .map(|q| [q.1.to_string(), q.2.to_string(), q.3.to_string()])
            .collect();
        let raw: Vec<(&str, &str, &str, &str)> = quotas
            .iter()
            .zip(&s)
            .map(|(q, [l, w, a])| (q.0, l.as_str(), w.as_str(), a.as_str()))
            .collect();
        self.reserve_raw(id, &lease.to_string(), &raw)
    }

    fn reserve(&self, id: &str, quotas: &[Q]) -> Reply {
        self.reserve_lease(id, LEASE, quotas)
    }

    /// Reserves and expects `{1, now, used_1, reset_1, ..., member}`, the
    /// member being `"<id>"` then `"\n<key>\n<bucket>\n<amount>\n<gen>"` per quota.
    fn admit_lease(&self, id: &str, lease: i64, quotas: &[Q]) -> Admitted {
        let r = self.reserve_lease(id, lease, quotas);
        let Some((Reply::Str(member), rest)) = r.items().split_last() else {
            panic!("{id} should be admitted with its member last: {r:?}")
        };
        let n = ints(rest);
        assert_eq!(n[0], 1, "{id} should be admitted: {r:?}");
        assert_eq!(n.len(), 2 + 2 * quotas.len(), "{r:?}");
        let now = n[1];
        let mut expected = vec![id.to_string()];
        for (name, _, w, amount) in quotas {
            expected.push(self.window(name));
            expected.push((now / bucket_ms(*w)).to_string());
            expected.push(amount.to_string());
            // the window's generation
            expected.push(self.cmd(&["HGET", &self.window(name), "g"]));
        }
        assert_eq!(*member, expected.join("\n"), "{r:?}");
        Admitted {
            id: id.to_string(),
            now,
            used: n[2..].iter().step_by(2).copied().collect(),
            reset: n[3..].iter().step_by(2).copied().collect(),
            member: member.clone(),
        }
    }

    fn admit(&self, id: &str, quotas: &[Q]) -> Admitted {
        self.admit_lease(id, LEASE, quotas)
    }

    /// Reserves and expects `{0, now, quota index, retry_ms, used, then
    /// used and reset_ms of every quota}`.
    fn refuse(&self, id: &str, quotas: &[Q]) -> Refused {
        let r = self.reserve(id, quotas).ints();
        assert_eq!(r[0], 0, "{id} should be refused: {r:?}");
        assert_eq!(r.len(), 5 + 2 * quotas.len(), "{r:?}");
        let refused = usize::try_from(r[2] - 1).unwrap();
        assert_eq!(
            r[5 + 2 * refused],
            r[4],
            "the refused quota's standing: {r:?}"
        );
        Refused {
            now: r[1],
            quota: r[2],
            retry: r[3],
            used: r[4],
        }
    }

    /// KEYS of settle: lease zset, index, the ledger's day hash, then the
    /// windows.
    fn settle_keys(&self, names: &[&str]) -> Vec<String> {
        let mut keys = self.keys(names);
        keys.insert(2, self.key("ledger:2026-12-07"));
        keys
    }

    /// quota_settle with every argument as given: id, mode, member, no
    /// ledger entry, then (quota name, window ms, actual amount) per quota
    /// (no limit to alert on, no alerts).
    fn settle_raw(
        &self,
        id: &str,
        mode: &str,
        member: &str,
        quotas: &[(&str, &str, &str)],
    ) -> Reply {
        let names: Vec<&str> = quotas.iter().map(|q| q.0).collect();
        let tomb = TOMB.to_string();
        let mut args = vec![id, tomb.as_str(), mode, member, "", "", "0"];
        for (_, w, actual) in quotas {
            args.extend([*w, *actual, "9007199254740992", ""]);
        }
        self.eval(SETTLE, &self.settle_keys(&names), &args)
    }

    /// quota_settle with (quota name, window ms, actual amount) per quota.
    fn settle_as(&self, id: &str, mode: &str, member: &str, quotas: &[(&str, i64, i64)]) -> i64 {
        let s: Vec<[String; 2]> = quotas
            .iter()
            .map(|q| [q.1.to_string(), q.2.to_string()])
            .collect();
        let raw: Vec<(&str, &str, &str)> = quotas
            .iter()
            .zip(&s)
            .map(|(q, [w, a])| (q.0, w.as_str(), a.as_str()))
            .collect();
        self.settle_raw(id, mode, member, &raw).ints()[0]
    }

    /// Mode `r`: the reservation `a`, by its member.
    fn settle(&self, a: &Admitted, quotas: &[(&str, i64, i64)]) -> i64 {
        self.settle_as(&a.id, "r", &a.member, quotas)
    }

    /// Mode `u`: usage of a request admitted without Redis (no member).
    fn settle_u(&self, id: &str, quotas: &[(&str, i64, i64)]) -> i64 {
        self.settle_as(id, "u", "", quotas)
    }

    /// quota_usage: windows `named`, then up to `count` index entries after
    /// `after` (score, member; "" "" from the start), with tombstone `tomb`
    /// ms: now, the next page's (score, member) if any, and (window key, used,
    /// reset_ms) in the order answered.
    fn usage_page(
        &self,
        named: &[String],
        count: usize,
        after: (&str, &str),
        tomb: i64,
    ) -> UsagePage {
        let mut keys = vec![self.key("qidx"), self.lease()];
        keys.extend(named.iter().cloned());
        let (tomb, count) = (tomb.to_string(), count.to_string());
        let r = self.eval(USAGE, &keys, &[tomb.as_str(), &count, after.0, after.1]);
        let items = r.items();
        let (Some(Reply::Int(now)), Some(Reply::Str(score)), Some(Reply::Str(member))) =
            (items.first(), items.get(1), items.get(2))
        else {
            panic!("quota_usage should start with now and the next page: {items:?}")
        };
        let windows = items[3..]
            .chunks(3)
            .map(|w| match w {
                [Reply::Str(k), Reply::Int(used), Reply::Int(reset)] => (k.clone(), *used, *reset),
                _ => panic!("quota_usage entry {w:?} in {items:?}"),
            })
            .collect();
        UsagePage {
            now: *now,
            next: (!score.is_empty()).then(|| (score.clone(), member.clone())),
            windows,
        }
    }

    /// quota_usage of the whole index with tombstone `tomb` ms: now, and
    /// window key -> (used, reset_ms).
    fn usage_tomb(&self, tomb: i64) -> (i64, BTreeMap<String, (i64, i64)>) {
        let p = self.usage_page(&[], 10_000, ("", ""), tomb);
        assert_eq!(p.next, None, "one page holds every window here");
        let windows = p.windows.into_iter().map(|(k, u, r)| (k, (u, r))).collect();
        (p.now, windows)
    }

    /// The index zset: (member, score) in its order.
    fn index(&self) -> Vec<(String, i64)> {
        let r = parse(&self.cmd(&[
            "--no-raw",
            "ZRANGE",
            &self.key("qidx"),
            "0",
            "-1",
            "WITHSCORES",
        ]));
        r.items()
            .chunks(2)
            .map(|p| match p {
                [Reply::Str(m), Reply::Str(s)] => (m.clone(), s.parse().unwrap()),
                _ => panic!("index entry {p:?} in {r:?}"),
            })
            .collect()
    }

    fn usage(&self) -> (i64, BTreeMap<String, (i64, i64)>) {
        self.usage_tomb(TOMB)
    }

    /// What quota `name` holds now per quota_usage (0 when it is not listed).
    fn used(&self, name: &str) -> i64 {
        self.usage().1.get(&self.window(name)).map_or(0, |u| u.0)
    }

    /// The lease zset: (member, score) in score order.
    fn leases(&self) -> Vec<(String, i64)> {
        leases_of(self.redis, &self.lease())
            .into_iter()
            .map(|l| (l.member, l.until_ms))
            .collect()
    }

    /// The lease end (or tombstone end) of `member`, if it is in the zset.
    fn lease_of(&self, member: &str) -> Option<i64> {
        self.leases()
            .into_iter()
            .find(|(m, _)| m == member)
            .map(|(_, s)| s)
    }

    /// Whether a reservation of `id` is in the lease zset.
    fn holds(&self, id: &str) -> bool {
        let prefix = format!("{id}\n");
        self.leases().iter().any(|(m, _)| m.starts_with(&prefix))
    }

    /// The raw fields of the window hash of quota `name`.
    fn fields(&self, name: &str) -> BTreeMap<String, String> {
        let flat = self.cmd(&["HGETALL", &self.window(name)]);
        let lines: Vec<&str> = flat.lines().collect();
        lines
            .chunks(2)
            .map(|p| (p[0].to_string(), p[1].to_string()))
            .collect()
    }

    fn pttl(&self, key: &str) -> i64 {
        self.cmd(&["PTTL", key]).parse().unwrap()
    }
}

/// What quota_usage answered.
#[derive(Debug)]
struct UsagePage {
    now: i64,
    /// (score, member) the next page starts after
    next: Option<(String, String)>,
    /// (window key, used, reset_ms)
    windows: Vec<(String, i64, i64)>,
}

fn ms(n: i64) -> Duration {
    Duration::from_millis(u64::try_from(n).unwrap())
}

// ---------------------------------------------------------------------------
// reserve

#[test]
fn admits_until_the_limit_then_refuses_with_retry() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let rpm = ("rpm", 3, W, 1);

    let first = q.admit("r1", &[rpm]);
    assert_eq!(first.used, [1]);
    // the charge leaves the sum when its bucket is 61 buckets old
    assert_eq!(first.reset, [(first.now / B + 61) * B - first.now]);
    // the reservation is its member in the lease zset, scored with the lease end
    assert_eq!(q.lease_of(&first.member), Some(first.now + LEASE));
    assert_eq!(q.admit("r2", &[rpm]).used, [2]);
    assert_eq!(q.admit("r3", &[rpm]).used, [3]);

    let no = q.refuse("r4", &[rpm]);
    assert_eq!((no.quota, no.used), (1, 3));
    // one more fits once the oldest charge (r1's bucket) leaves the window. A
    // charge made now counts for at least W (up to 61 buckets = 1037 ms), so
    // right after filling, retry_ms is a little over W, never more than 61 B.
    assert_eq!(no.retry, (first.now / B + 61) * B - no.now, "{no:?}");
    assert!(no.retry > 0 && no.retry <= 61 * B, "{no:?}");
    // a refusal leaves no reservation behind
    assert!(!q.holds("r4"));
    assert_eq!(q.leases().len(), 3);
    assert_eq!(q.used("rpm"), 3);
}

#[test]
fn amount_above_the_limit_is_refused_for_good() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");

    let no = q.refuse("big", &[("tpm", 5, W, 6)]);
    assert_eq!((no.quota, no.retry, no.used), (1, -1, 0));
    // also as the second quota of a call
    let no = q.refuse("big", &[("rpm", 10, W, 1), ("tpm", 5, W, 6)]);
    assert_eq!((no.quota, no.retry, no.used), (2, -1, 0));
    assert_eq!(q.cmd(&["DBSIZE"]), "0", "a refusal writes nothing");
}

#[test]
fn zero_amount_passes_below_the_limit_only() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let tpm = |amount| ("tpm", 2, W, amount);

    let a = q.admit("z1", &[tpm(0)]);
    assert_eq!((a.used, a.reset), (vec![0], vec![0]), "empty window");
    assert_eq!(q.admit("a1", &[tpm(1)]).used, [1]);
    assert_eq!(q.admit("z2", &[tpm(0)]).used, [1]);
    assert_eq!(q.admit("a2", &[tpm(1)]).used, [2]);

    let no = q.refuse("z3", &[tpm(0)]);
    assert_eq!((no.quota, no.used), (1, 2));
    assert!(no.retry > 0 && no.retry <= 61 * B, "{no:?}");
}

#[test]
fn two_quotas_are_all_or_nothing() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let quotas = |tokens| [("rpm", 10, W, 1), ("tpm", 100, W, tokens)];

    assert_eq!(q.admit("r1", &quotas(60)).used, [1, 60]);
    let no = q.refuse("r2", &quotas(50));
    assert_eq!((no.quota, no.used), (2, 60));
    // the first quota did not keep r2's request
    assert_eq!((q.used("rpm"), q.used("tpm")), (1, 60));
    assert!(!q.holds("r2"));
    // one member holds both quotas of the call
    let r3 = q.admit("r3", &quotas(40));
    assert_eq!(r3.used, [2, 100]);
    assert_eq!(r3.member.lines().count(), 9, "{:?}", r3.member);
}

#[test]
fn bad_arguments_are_error_replies() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let w = W.to_string();
    let w = w.as_str();

    for (id, lease, limit, window, amount) in [
        ("r1", "1000", "10", w, "-1"),
        ("r1", "1000", "-5", w, "1"),
        ("r1", "1000", "10", w, "abc"),
        ("r1", "1000", "ten", w, "1"),
        ("r1", "1000", "10", "0", "1"),
        ("r1", "1000", "10", "soon", "1"),
        ("r1", "0", "10", w, "1"),
        ("r1", "later", "10", w, "1"),
        // the id starts the member, whose parts are split at newlines
        ("", "1000", "10", w, "1"),
        ("r\n1", "1000", "10", w, "1"),
    ] {
        let r = q.reserve_raw(id, lease, &[("tpm", limit, window, amount)]);
        assert!(
            r.err().contains("quota_reserve: bad"),
            "id {id:?} lease {lease} limit {limit} window {window} amount {amount}: {r:?}"
        );
    }
    // ARGV not 3 + 3 per window key, or no window key at all
    for (keys, args) in [
        (q.keys(&["tpm"]), vec!["r1", "1000", "1000", "10", w]),
        (
            q.keys(&["tpm"]),
            vec!["r1", "1000", "1000", "10", w, "1", "7"],
        ),
        (
            q.keys(&["tpm", "rpm"]),
            vec!["r1", "1000", "1000", "10", w, "1"],
        ),
        (q.keys(&[]), vec!["r1", "1000", "1000"]),
    ] {
        let r = q.eval(RESERVE, &keys, &args);
        assert!(r.err().contains("quota_reserve: bad"), "{args:?}: {r:?}");
    }

    for (id, mode, tomb, window, actual) in [
        ("r1", "x", "1000", w, "1"),
        ("r1", "", "1000", w, "1"),
        ("r1", "r", "0", w, "1"),
        ("r1", "r", "1000", w, "-3"),
        ("r1", "u", "1000", w, "lots"),
        ("r1", "u", "1000", "0", "1"),
        ("", "u", "1000", w, "1"),
    ] {
        let r = q.eval(
            SETTLE,
            &q.settle_keys(&["tpm"]),
            &[id, tomb, mode, "", "", "", "0", window, actual, "10", ""],
        );
        assert!(
            r.err().contains("quota_settle: bad"),
            "id {id:?} mode {mode:?} tomb {tomb} window {window} actual {actual}: {r:?}"
        );
    }
    // ARGV not 7 + 4 per window key (the member and the ledger entry are
    // always there, "" when none), no window key in mode r, a bad ledger
    // entry, a bad alert
    for (keys, args) in [
        (
            q.settle_keys(&["tpm"]),
            vec!["r1", "1000", "u", "", "", "", "0", w, "1", "10"],
        ),
        (
            q.settle_keys(&["tpm"]),
            vec!["r1", "1000", "u", "", "", "", "0", w, "1", "10", "", "2"],
        ),
        // the v2 layout
        (q.settle_keys(&["tpm"]), vec!["r1", "1000", "u", "", w, "1"]),
        (q.settle_keys(&[]), vec!["r1", "1000", "r", "", "", "", "0"]),
        (q.settle_keys(&[]), vec!["r1", "1000", "u", ""]),
        (
            q.settle_keys(&[]),
            vec![
                "r1",
                "1000",
                "u",
                "",
                "[\"a\",\"\",\"m\",\"p\"]",
                "1,2,3",
                "9",
            ],
        ),
        (
            q.settle_keys(&[]),
            vec![
                "r1",
                "1000",
                "u",
                "",
                "[\"a\",\"\",\"m\",\"p\"]",
                "1,0,0,0,0,0,0,0,x",
                "9",
            ],
        ),
        (
            q.settle_keys(&[]),
            vec![
                "r1",
                "1000",
                "u",
                "",
                "[\"a\",\"\",\"m\",\"p\"]",
                "1,0,0,0,0,0,0,0,0",
                "soon",
            ],
        ),
        (
            q.settle_keys(&["tpm"]),
            vec!["r1", "1000", "u", "", "", "", "0", w, "1", "10", "101"],
        ),
        (
            q.settle_keys(&["tpm"]),
            vec!["r1", "1000", "u", "", "", "", "0", w, "1", "10", "0"],
        ),
    ] {
        let r = q.eval(SETTLE, &keys, &args);
        assert!(r.err().contains("quota_settle: bad"), "{args:?}: {r:?}");
    }

    // quota_usage: the index and the lease zset (then windows by name), a
    // tombstone length, a page size up to 10,000 and a whole score to start after
    let (index, lease) = (q.key("qidx"), q.lease());
    let both = vec![index.clone(), lease.clone()];
    for (keys, args) in [
        (both.clone(), ["0", "10", "", ""]),
        (both.clone(), ["never", "10", "", ""]),
        (both.clone(), ["1000", "-1", "", ""]),
        (both.clone(), ["1000", "10001", "", ""]),
        (both.clone(), ["1000", "ten", "", ""]),
        (both.clone(), ["1000", "10", "soon", "x"]),
        (both.clone(), ["1000", "10", "1.5", "x"]),
        (vec![index.clone()], ["1000", "10", "", ""]),
    ] {
        let r = q.eval(USAGE, &keys, &args);
        assert!(
            r.err().contains("quota_usage: bad"),
            "{keys:?} {args:?}: {r:?}"
        );
    }
    let r = q.eval(USAGE, &both, &["1000", "10", ""]);
    assert!(r.err().contains("quota_usage: bad"), "3 arguments: {r:?}");
    assert_eq!(q.cmd(&["DBSIZE"]), "0", "a rejected call writes nothing");
}

/// quota_batch: an operation with bad arguments answers `{-1, error}` and
/// the others run; a malformed list is an error reply and writes nothing.
#[test]
fn a_batch_refuses_a_bad_operation_alone() {
    use redis::Value;
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys = q.keys(&["tpm"]);
    let mut batch = |args: &[&str]| -> redis::RedisResult<Vec<Value>> {
        redis::cmd("EVAL")
            .arg(BATCH)
            .arg(keys.len())
            .arg(&keys)
            .arg(args)
            .query(&mut con)
    };
    let w = W.to_string();
    // reserve 4, a reservation naming KEYS[9] (there is none), reserve 5
    let r = batch(&[
        "3", "r", "a", "30000", "60000", "1", "3", "10", &w, "4", "r", "b", "30000", "60000", "1",
        "9", "10", &w, "1", "r", "c", "30000", "60000", "1", "3", "10", &w, "5",
    ])
    .unwrap();
    let op = |i: usize| match &r[i] {
        Value::Array(a) => a.clone(),
        other => panic!("operation {i}: {other:?} in {r:?}"),
    };
    assert_eq!(r.len(), 4, "{r:?}");
    assert_eq!(op(1)[..3], [Value::Int(1), r[0].clone(), Value::Int(4)]);
    assert_eq!(
        op(2),
        [
            Value::Int(-1),
            Value::BulkString(b"quota_batch: bad key position at 1".to_vec())
        ]
    );
    assert_eq!(op(3)[..3], [Value::Int(1), r[0].clone(), Value::Int(9)]);
    assert_eq!(q.used("tpm"), 9);
    // malformed: a count beyond the operations, an unknown kind, none
    for args in [
        vec![
            "2",
            "r",
            "d",
            "30000",
            "60000",
            "1",
            "3",
            "10",
            w.as_str(),
            "1",
        ],
        vec!["1", "x", "d"],
        vec!["0"],
    ] {
        let e = batch(&args).expect_err("a malformed list").to_string();
        assert!(
            e.contains("quota_batch") && e.contains("bad arguments"),
            "{args:?}: {e}"
        );
    }
    assert_eq!(q.used("tpm"), 9, "a refused list wrote nothing");
}

#[test]
fn fractional_and_non_finite_amounts_charge_nothing() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let w = W.to_string();
    let w = w.as_str();

    // the first quota is fine, the second is not an integer: the call must
    // fail as a whole, without charging the first one
    for bad in ["1.5", "nan", "inf", "-inf", "1e400"] {
        let r = q.reserve_raw(
            "r1",
            "1000",
            &[("rpm", "10", w, "1"), ("tpm", "100", w, bad)],
        );
        assert!(matches!(r, Reply::Err(_)), "amount {bad}: {r:?}");
        let r = q.reserve_raw("r1", "1000", &[("rpm", "10", w, "1"), ("tpm", bad, w, "1")]);
        assert!(matches!(r, Reply::Err(_)), "limit {bad}: {r:?}");
        assert_eq!(q.used("rpm"), 0, "{bad}");
        assert!(!q.holds("r1"), "{bad}");
    }

    // same for a settle: no partial move of the first quota, and the
    // reservation is still there to be settled
    let both = [("rpm", 10, W, 1), ("tpm", 100, W, 10)];
    let r2 = q.admit("r2", &both);
    assert_eq!(r2.used, [1, 10]);
    for bad in ["2.5", "nan", "inf"] {
        let r = q.settle_raw("r2", "r", &r2.member, &[("rpm", w, "3"), ("tpm", w, bad)]);
        assert!(matches!(r, Reply::Err(_)), "actual {bad}: {r:?}");
        assert_eq!((q.used("rpm"), q.used("tpm")), (1, 10), "{bad}");
        assert!(q.holds("r2"), "{bad}");
    }
    assert_eq!(q.settle(&r2, &[("rpm", W, 3), ("tpm", W, 12)]), 1);
    assert_eq!((q.used("rpm"), q.used("tpm")), (3, 12));
}

#[test]
fn huge_values_stay_exact_integers() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let limit = 9_007_199_254_740_000; // just below 2^53
    let tpm = |amount| ("tpm", limit, W, amount);

    let h1 = q.admit("h1", &[tpm(999_999_999_999_999)]);
    assert_eq!(h1.used, [999_999_999_999_999]);
    let h2 = q.admit("h2", &[tpm(1_000_000_000_000_001)]);
    assert_eq!(h2.used, [2_000_000_000_000_000]);
    let no = q.refuse("h3", &[tpm(7_007_199_254_740_001)]);
    assert_eq!((no.quota, no.used), (1, 2_000_000_000_000_000));
    assert!(no.retry > 0, "{no:?}");
    assert_eq!(q.admit("h4", &[tpm(7_007_199_254_740_000)]).used, [limit]);

    // every field holds a plain integer (no 1e+15 style floats): `w`, the
    // running sum `s`, the oldest bucket counted `o`, the newest charged `n`
    // and the buckets; `s` is the sum of the buckets
    let fields = q.fields("tpm");
    for (k, v) in &fields {
        assert!(
            v.bytes().all(|c| c.is_ascii_digit()),
            "{k}: {v} in {fields:?}"
        );
    }
    assert_eq!(fields["w"], "1000");
    assert_eq!(fields["s"], limit.to_string());
    let buckets: BTreeMap<i64, i64> = fields
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v.parse().unwrap())))
        .collect();
    assert_eq!(buckets.values().sum::<i64>(), limit, "{fields:?}");
    let (oldest, newest) = (
        fields["o"].parse::<i64>().unwrap(),
        fields["n"].parse().unwrap(),
    );
    assert_eq!(buckets.keys().next_back(), Some(&newest), "{fields:?}");
    assert!(oldest <= *buckets.keys().next().unwrap(), "{fields:?}");
    assert!(oldest >= newest - 60, "{fields:?}");

    // settling at the reserved amount changes nothing, settling lower moves
    // by exactly the difference
    assert_eq!(q.settle(&h1, &[("tpm", W, 999_999_999_999_999)]), 1);
    assert_eq!(q.used("tpm"), limit);
    assert_eq!(q.settle(&h2, &[("tpm", W, 1)]), 1);
    assert_eq!(q.used("tpm"), limit - 1_000_000_000_000_000);
    assert_eq!(
        q.fields("tpm")["s"],
        (limit - 1_000_000_000_000_000).to_string()
    );
}

// ---------------------------------------------------------------------------
// the window in time

#[test]
fn a_full_window_is_free_again_after_the_window() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let rpm = |n| ("rpm", 2, W, n);

    assert_eq!(q.admit("r1", &[rpm(2)]).used, [2]);
    let no = q.refuse("r2", &[rpm(1)]);
    assert!(no.retry > 0 && no.retry < 1100, "{no:?}");

    sleep(ms(1100));
    assert_eq!(q.used("rpm"), 0);
    assert_eq!(q.admit("r3", &[rpm(2)]).used, [2]);
}

#[test]
fn the_window_slides_instead_of_resetting() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let tpm = |n| ("tpm", 10, W, n);

    // 6 in the first half of a window, 4 in the second
    let early = q.admit("early", &[tpm(6)]);
    sleep(ms(W / 2));
    assert_eq!(q.admit("late", &[tpm(4)]).used, [10]);

    // the first half still counts; one more token fits when the early bucket
    // leaves, about half a window from now (not at a fixed boundary)
    let no = q.refuse("more", &[tpm(1)]);
    assert!(no.now - early.now >= W / 2, "{no:?}");
    assert_eq!((no.quota, no.used), (1, 10));
    assert_eq!(no.retry, (early.now / B + 61) * B - no.now, "{no:?}");
    assert!(no.retry < W, "{no:?}");

    // and exactly then the early 6 are gone while the late 4 still count
    sleep(ms(no.retry + 20));
    assert_eq!(q.admit("more", &[tpm(1)]).used, [5]);
    // the running sum lost the early bucket once, and `o` moved past it
    let fields = q.fields("tpm");
    assert_eq!(fields["s"], "5", "{fields:?}");
    assert!(
        fields["o"].parse::<i64>().unwrap() > early.now / B,
        "{fields:?}"
    );
    assert!(
        !fields.contains_key(&(early.now / B).to_string()),
        "{fields:?}"
    );
}

#[test]
fn a_changed_window_length_starts_afresh() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");

    let r1 = q.admit("r1", &[("tpm", 10, W, 8)]);
    assert_eq!(r1.used, [8]);
    q.refuse("r2", &[("tpm", 10, W, 5)]);
    // same quota key, window now 2 s: the old buckets are dropped
    let r2 = q.admit("r2", &[("tpm", 10, 2 * W, 5)]);
    assert_eq!(r2.used, [5]);
    assert_eq!(q.cmd(&["HGET", &q.window("tpm"), "w"]), "2000");
    assert_eq!(q.used("tpm"), 5);

    // r1's charge went with the old window: settling it moves no bucket of the
    // new one (numbered differently); only what it used beyond its
    // reservation (10 - 8) is charged, in the current bucket
    assert_eq!(q.settle(&r1, &[("tpm", 2 * W, 10)]), 1);
    assert_eq!(q.used("tpm"), 7);
    assert_eq!(q.fields("tpm")["s"], "7");
    assert_eq!(q.settle(&r2, &[("tpm", 2 * W, 3)]), 1);
    assert_eq!(q.used("tpm"), 5);
}

// ---------------------------------------------------------------------------
// settle, leases, retries

/// The reset a window announces counts from its newest bucket that holds
/// usage. v3 counted from a bucket reserved at 0, kept counting from a bucket
/// a refund had emptied, and missed usage settled into a bucket reserved at
/// 0 (found by `quota_model.rs`, against the memory store).
#[test]
fn the_reset_counts_from_the_newest_bucket_holding_usage() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let w = 6_000; // buckets of 100 ms
    let b = bucket_ms(w);
    let tpm = |n| ("tpm", 1000, w, n);
    // the reset of usage in bucket `k`, seen at `now`
    let reset = |k: i64, now: i64| (k + 61) * b - now;
    let next_bucket = || sleep(ms(b + 20));

    let a = q.admit("a", &[tpm(10)]);
    next_bucket();
    let z = q.admit("z", &[tpm(0)]);
    assert!(z.now / b > a.now / b);
    assert_eq!(
        z.reset,
        [reset(a.now / b, z.now)],
        "a reservation of 0 moves nothing"
    );
    assert_eq!(q.settle(&z, &[("tpm", w, 5)]), 1);
    let p = q.admit("p", &[tpm(0)]);
    assert_eq!(p.used, [15]);
    assert_eq!(
        p.reset,
        [reset(z.now / b, p.now)],
        "usage settled into z's bucket"
    );
    next_bucket();
    let c = q.admit("c", &[tpm(7)]);
    assert!(c.now / b > z.now / b);
    assert_eq!(q.settle(&c, &[("tpm", w, 0)]), 1);
    let r = q.admit("r", &[tpm(0)]);
    assert_eq!(r.used, [15]);
    assert_eq!(
        r.reset,
        [reset(z.now / b, r.now)],
        "c's bucket emptied by the refund"
    );
}

#[test]
fn settle_replaces_the_reservation_once() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let tpm = |n| ("tpm", 1000, W, n);

    let low = q.admit("low", &[tpm(100)]);
    assert_eq!(low.used, [100]);
    let high = q.admit("high", &[tpm(10)]);
    assert_eq!(high.used, [110]);

    // lower than reserved: used goes down
    assert_eq!(q.settle(&low, &[("tpm", W, 30)]), 1);
    assert_eq!(q.used("tpm"), 40);
    // higher than reserved: used goes up
    assert_eq!(q.settle(&high, &[("tpm", W, 50)]), 1);
    assert_eq!(q.used("tpm"), 80);

    // the settle removed the member: a repeat finds nothing, does nothing
    assert!(!q.holds("low"));
    assert_eq!(q.settle(&low, &[("tpm", W, 999)]), 0);
    assert_eq!(q.used("tpm"), 80);

    // mode r settles by the member: the id alone, or a member that is not
    // the one reserve answered, settles nothing
    let none = q.admit("none", &[tpm(20)]);
    assert_eq!(none.used, [100]);
    assert_eq!(q.settle_as("none", "r", "", &[("tpm", W, 0)]), 0);
    let other = none.member.replace("\n20", "\n21");
    assert_eq!(q.settle_as("none", "r", &other, &[("tpm", W, 0)]), 0);
    assert_eq!(q.used("tpm"), 100);
    assert!(q.holds("none"));

    // settling to zero removes the charge entirely, and the last member
    // takes the lease zset with it
    assert_eq!(q.settle(&none, &[("tpm", W, 0)]), 1);
    assert_eq!(q.used("tpm"), 80);
    assert_eq!(q.cmd(&["EXISTS", &q.lease()]), "0");
}

#[test]
fn settle_without_a_reservation() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");

    // mode r: the reserve never arrived, nothing to do and nothing written
    assert_eq!(q.settle_as("ghost", "r", "", &[("tpm", W, 7)]), 0);
    let made_up = format!("ghost\n{}\n1\n7", q.window("tpm"));
    assert_eq!(q.settle_as("ghost", "r", &made_up, &[("tpm", W, 7)]), 0);
    assert_eq!(q.cmd(&["DBSIZE"]), "0");

    // mode u: admitted while Redis was away, charged once (an S tombstone
    // remembers it for the retry queue, which may send it again)
    assert_eq!(q.settle_u("offline", &[("tpm", W, 7)]), 4);
    assert_eq!(q.used("tpm"), 7);
    let (now, _) = q.usage();
    let tomb = q.lease_of("S\noffline").expect("an S tombstone");
    assert!(tomb > now && tomb <= now + TOMB, "{tomb} vs {now}");
    assert_eq!(q.settle_u("offline", &[("tpm", W, 7)]), 2);
    assert_eq!(q.used("tpm"), 7);
    // a mode r settle of that id finds no reservation
    assert_eq!(q.settle_as("offline", "r", "", &[("tpm", W, 7)]), 0);
    assert_eq!(q.used("tpm"), 7);
    // ... and the charge counts against the limit like any other
    let no = q.refuse("r1", &[("tpm", 10, W, 4)]);
    assert_eq!((no.quota, no.used), (1, 7));
}

#[test]
fn an_ended_lease_is_given_back_when_needed_and_a_late_settle_charges() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let tpm = |n| ("tpm", 100, W, n);

    let slow = q.admit_lease("slow", 50, &[tpm(40)]);
    assert_eq!(slow.used, [40]);
    assert_eq!(q.lease_of(&slow.member), Some(slow.now + 50));

    sleep(ms(100));
    // a reserve with room does not look at ended leases (but 1 call in 16,
    // when now % 16 == 0, sweeps anyway)
    let other = q.admit("other", &[tpm(10)]);
    if other.now % 16 == 0 {
        assert_eq!(other.used, [10], "{other:?}");
    } else {
        assert_eq!(other.used, [50], "{other:?}");
        assert!(q.holds("slow"));
    }
    // one the stale reservation would refuse sweeps, gives it back and is
    // admitted: 10 + 60 fit, 50 + 60 would not
    let big = q.admit("big", &[tpm(60)]);
    assert_eq!(big.used, [70]);
    assert!(!q.holds("slow"));
    let tomb = q.lease_of("E\nslow").expect("an E tombstone");
    assert!(
        tomb >= other.now + TOMB && tomb <= big.now + TOMB,
        "{tomb}: {other:?} {big:?}"
    );
    assert_eq!(q.used("tpm"), 70);

    // the request did finish: its real usage is charged now, once
    assert_eq!(q.settle(&slow, &[("tpm", W, 25)]), 3);
    assert_eq!(q.used("tpm"), 95);
    assert_eq!(q.lease_of("E\nslow"), None);
    assert_eq!(q.settle(&slow, &[("tpm", W, 25)]), 0);
    assert_eq!(q.used("tpm"), 95);
}

#[test]
fn the_sweep_of_one_call_in_16_gives_back_for_good() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    // a day's window: every charge of the test stays in it
    let tpd = |n| ("tpd", 1_000_000, DAY, n);

    // until a reserve with room lands on now % 16 == 0, with one ended lease
    // each time (settled by hand when no sweep came)
    for i in 0..400 {
        let dead = q.admit_lease(&format!("dead{i}"), 1, &[tpd(100)]);
        sleep(ms(3));
        let a = q.admit(&format!("r{i}"), &[tpd(1)]);
        if a.now % 16 != 0 {
            assert_eq!(a.used, [i + 1 + 100], "{a:?}");
            assert_eq!(q.settle(&dead, &[("tpd", DAY, 0)]), 1);
            continue;
        }
        // the sweep gave the 100 back before this reservation was charged, and
        // the charge did not write the old sum (or bucket) back over it
        assert_eq!(a.used, [i + 1], "{a:?}");
        assert!(q.lease_of(&format!("E\ndead{i}")).is_some());
        let fields = q.fields("tpd");
        assert_eq!(fields["s"], (i + 1).to_string(), "{fields:?}");
        let buckets: i64 = fields
            .iter()
            .filter(|(k, _)| k.parse::<i64>().is_ok())
            .map(|(_, v)| v.parse::<i64>().unwrap())
            .sum();
        assert_eq!(buckets, i + 1, "{fields:?}");
        assert_eq!(q.used("tpd"), i + 1);
        return;
    }
    panic!("no reserve in 400 landed on now % 16 == 0");
}

#[test]
fn quota_usage_gives_back_ended_leases_and_drops_ended_tombstones() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");

    let dead = q.admit_lease("dead", 30, &[("rpm", 10, W, 5)]);
    assert_eq!(dead.used, [5]);
    sleep(ms(60));
    // no reserve in between: quota_usage sweeps by itself. A 20 ms tombstone
    let (now, windows) = q.usage_tomb(20);
    assert_eq!(windows[&q.window("rpm")].0, 0);
    assert_eq!(q.leases(), [("E\ndead".to_string(), now + 20)]);

    // the tombstone ends too, and the next sweep drops it
    sleep(ms(40));
    assert_eq!(q.used("rpm"), 0);
    assert_eq!(q.cmd(&["EXISTS", &q.lease()]), "0");
    // a settle that late finds nothing to settle
    assert_eq!(q.settle(&dead, &[("rpm", W, 1)]), 0);
    assert_eq!(q.used("rpm"), 0);
}

#[test]
fn mode_u_after_a_lost_reserve_answer_charges_once() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let tpm = |n| ("tpm", 100, W, n);

    // the reserve ran but its answer was lost: the gateway admitted the
    // request without Redis and settles its usage in mode u
    q.admit_lease("lost", 30, &[tpm(40)]);
    assert_eq!(q.settle_u("lost", &[("tpm", W, 10)]), 4);
    // the ghost reservation ends and is given back
    sleep(ms(60));
    assert_eq!(q.used("tpm"), 10);
    assert!(q.lease_of("E\nlost").is_some());
    // the retry queue sends the usage again: still charged once
    assert_eq!(q.settle_u("lost", &[("tpm", W, 10)]), 2);
    assert_eq!(q.used("tpm"), 10);

    // the same when the ghost had ended before the first settle came
    q.admit_lease("late", 30, &[tpm(40)]);
    sleep(ms(60));
    assert_eq!(q.used("tpm"), 10);
    assert_eq!(q.settle_u("late", &[("tpm", W, 5)]), 3);
    assert_eq!(q.used("tpm"), 15);
    assert_eq!(q.settle_u("late", &[("tpm", W, 5)]), 2);
    assert_eq!(q.used("tpm"), 15);
}

#[test]
fn a_settle_after_the_window_expired_charges_only_the_excess() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    // a 60 ms window (1 ms buckets) expires 121 ms after its last reserve
    let long = q.admit("long", &[("tpm", 100, 60, 5)]);
    sleep(ms(200));
    assert_eq!(q.cmd(&["EXISTS", &q.window("tpm")]), "0");

    assert_eq!(q.settle(&long, &[("tpm", 60, 8)]), 1);
    // what it used beyond its reservation (8 - 5) counts, in a new window
    // with its TTL and `w` (never a hash without them)
    let pttl = q.pttl(&q.window("tpm"));
    assert!(pttl > 0, "window key without a TTL: {pttl}");
    assert_eq!(q.cmd(&["HGET", &q.window("tpm"), "w"]), "60");
    assert_eq!(q.used("tpm"), 3);
}

#[test]
fn two_reserves_with_one_id_are_two_reservations() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let tpm = |n| ("tpm", 10, W, n);

    // the gateway never sends a reserve twice: one id reserving again is
    // another reservation, charged and settled on its own
    let a = q.admit("x", &[tpm(3)]);
    assert_eq!(a.used, [3]);
    let b = q.admit("x", &[tpm(4)]);
    assert_eq!(b.used, [7]);
    assert_ne!(a.member, b.member);
    assert_eq!(q.leases().len(), 2);
    let no = q.refuse("y", &[tpm(4)]);
    assert_eq!((no.quota, no.used), (1, 7));

    assert_eq!(q.settle(&a, &[("tpm", W, 1)]), 1);
    assert_eq!(q.used("tpm"), 5);
    assert_eq!(q.settle(&b, &[("tpm", W, 2)]), 1);
    assert_eq!(q.used("tpm"), 3);
    assert_eq!(q.settle(&a, &[("tpm", W, 1)]), 0);
    assert_eq!(q.used("tpm"), 3);
}

#[test]
fn every_key_the_scripts_write_expires() {
    let redis = RedisServer::start();
    let tpd = |n| ("tpd", 1000, DAY, n);

    // a reserve sets the lease zset's TTL (lease + tombstone + a minute)
    let q = Tag::new(&redis, "acme");
    let a = q.admit("a", &[tpd(1)]);
    let pttl = q.pttl(&q.lease());
    assert!(pttl > 0 && pttl <= LEASE + TOMB + 60_000, "{pttl}");
    assert_every_key_expires(&redis);
    // settled, the zset is empty and gone; a reserve in the same 24 min
    // bucket makes it again, with a TTL
    assert_eq!(q.settle(&a, &[("tpd", DAY, 1)]), 1);
    assert_eq!(q.cmd(&["EXISTS", &q.lease()]), "0");
    q.admit("b", &[tpd(1)]);
    assert_every_key_expires(&redis);

    // a sweep replacing the only reservation by its tombstone
    let q = Tag::new(&redis, "beta");
    q.admit_lease("c", 30, &[tpd(1)]);
    sleep(ms(60));
    assert_eq!(q.used("tpd"), 0);
    assert_eq!(q.leases().len(), 1);
    assert_every_key_expires(&redis);

    // a mode u settle on a tag Redis had nothing of
    let q = Tag::new(&redis, "gamma");
    assert_eq!(q.settle_u("d", &[("tpd", DAY, 1)]), 4);
    assert_eq!(q.leases().len(), 1);
    assert_every_key_expires(&redis);
}

// ---------------------------------------------------------------------------
// usage

#[test]
fn usage_lists_every_window_and_forgets_expired_ones() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");

    let (now, windows) = q.usage();
    assert!(now > 0 && windows.is_empty(), "{windows:?}");

    // "blip": a 300 ms window (gone 605 ms after its reservation: 2 windows
    // and a bucket), long enough for the listing right after it on a busy
    // machine (60 ms was not), short enough to wait for
    let a = q.admit("r1", &[("rpm", 10, W, 3), ("blip", 10, 300, 2)]);
    assert_eq!(a.used, [3, 2]);
    let (now, windows) = q.usage();
    assert_eq!(windows.len(), 2, "{windows:?}");
    let rpm_reset = (a.now / B + 61) * B - now;
    assert_eq!(windows[&q.window("rpm")], (3, rpm_reset));
    assert_eq!(windows[&q.window("blip")].0, 2);

    // the 300 ms window has expired and is no longer listed
    sleep(ms(800));
    let (now, windows) = q.usage();
    let rpm_reset = (a.now / B + 61) * B - now;
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert_eq!(windows[&q.window("rpm")], (3, rpm_reset));
    // the index holds each window with its end: the hash's TTL
    let index = q.index();
    let rpm_end = index
        .iter()
        .find(|(m, _)| *m == q.window("rpm"))
        .map(|(_, s)| *s);
    assert_eq!(rpm_end, Some(a.now + 2 * W + B), "{index:?}");
    // a window reset (deleted) before its end leaves the index when listed
    q.cmd(&["DEL", &q.window("rpm")]);
    assert!(q.usage().1.is_empty());
    assert!(
        q.index().iter().all(|(m, _)| *m != q.window("rpm")),
        "{:?}",
        q.index()
    );
}

/// Reserves 1 on each window `keys` (`w` ms) of tenant `t`'s tag and settles
/// each at 1, so no lease stays behind: two pipelined round trips (redis-cli
/// one call at a time would outlast short windows).
fn charge_windows(redis: &RedisServer, t: &str, keys: &[String], w: i64) {
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut sha = |script: &str| -> String {
        redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(script)
            .query(&mut con)
            .unwrap()
    };
    let (reserve, settle) = (sha(RESERVE), sha(SETTLE));
    let (lease, index) = (format!("gw:{{t:{t}}}:qlease"), format!("gw:{{t:{t}}}:qidx"));
    let mut p = redis::pipe();
    for (i, k) in keys.iter().enumerate() {
        p.cmd("EVALSHA")
            .arg(&reserve)
            .arg(3)
            .arg(&lease)
            .arg(&index)
            .arg(k);
        p.arg(format!("c{i}"))
            .arg(30_000)
            .arg(60_000)
            .arg(10)
            .arg(w)
            .arg(1);
    }
    let admitted: Vec<Vec<redis::Value>> = p.query(&mut con).unwrap();
    let mut p = redis::pipe();
    for (i, (k, a)) in keys.iter().zip(&admitted).enumerate() {
        let Some(redis::Value::BulkString(member)) = a.last() else {
            panic!("{k} not admitted: {a:?}")
        };
        p.cmd("EVALSHA")
            .arg(&settle)
            .arg(4)
            .arg(&lease)
            .arg(&index)
            .arg(&lease)
            .arg(k);
        p.arg(format!("c{i}"))
            .arg(60_000)
            .arg("r")
            .arg(member)
            .arg("")
            .arg("")
            .arg(0)
            .arg(w)
            .arg(1)
            .arg(10)
            .arg("");
    }
    let settled: Vec<Vec<i64>> = p.query(&mut con).unwrap();
    assert!(settled.iter().all(|s| *s == [1]), "{settled:?}");
}

/// Windows counted by client values (300 addresses of a `by: ip` quota): the
/// usage report pages through them in the order of their ends, each window
/// once, named windows first (at 0 when there is none); ended windows are
/// never listed and leave the index, 64 each time a window is charged, and an
/// index ends with its last window.
#[test]
fn usage_pages_through_many_windows_and_the_index_ends_with_them() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    // (long enough that the listing below ends before the windows do, on a
    // loaded machine too: 200 ms was not, with 4 builds running)
    let w = 1000;
    let ip = |i: usize| format!("gw:{{t:acme}}:q:t:acme:per-ip:10.0.{}.{}", i / 256, i % 256);
    // a daily window keeps this index alive throughout
    charge_windows(&redis, "acme", &[q.window("tpd")], DAY);
    charge_windows(&redis, "acme", &(0..300).map(ip).collect::<Vec<_>>(), w);
    let mut listed = Vec::new();
    let mut after = (String::new(), String::new());
    let mut pages = 0;
    loop {
        let p = q.usage_page(&[], 128, (&after.0, &after.1), TOMB);
        assert!(p.windows.len() <= 128, "{}", p.windows.len());
        listed.extend(p.windows.into_iter().map(|(k, used, _)| {
            assert_eq!(used, 1, "{k}");
            k
        }));
        pages += 1;
        match p.next {
            Some(n) => after = n,
            None => break,
        }
    }
    assert_eq!(pages, 3, "301 windows, 128 a page");
    let mut want: Vec<String> = (0..300).map(ip).collect();
    want.push(q.window("tpd"));
    listed.sort();
    want.sort();
    assert_eq!(listed, want, "every window exactly once");

    // named windows come first, listed or not
    let gone = "gw:{t:acme}:q:t:acme:per-ip:10.9.9.9".to_string();
    let p = q.usage_page(&[gone.clone(), ip(7)], 0, ("", ""), TOMB);
    assert_eq!(p.windows, vec![(gone, 0, 0), (ip(7), 1, p.windows[1].2)]);
    assert_eq!(p.next, None);

    // after their end (2 * w + 4 ms) they are not listed; the next window
    // charged takes 64 ended entries out of the index
    sleep(ms(2 * w + 100));
    let p = q.usage_page(&[], 10_000, ("", ""), TOMB);
    assert_eq!(p.windows.len(), 1, "only the daily window: {:?}", p.windows);
    assert_eq!(q.index().len(), 301);
    charge_windows(&redis, "acme", &[ip(1000)], w);
    assert_eq!(q.index().len(), 301 - 64 + 1);
    assert_every_key_expires(&redis);

    // an index of short windows only ends with the last of them
    let b = Tag::new(&redis, "beta");
    let beta: Vec<String> = (0..20)
        .map(|i| format!("gw:{{t:beta}}:q:t:beta:per-ip:10.1.0.{i}"))
        .collect();
    charge_windows(&redis, "beta", &beta, w);
    // (read one after the other by separate redis-cli runs: the window's
    // countdown goes on meanwhile, by several ms on a loaded machine)
    let (index, last) = (b.pttl(&b.key("qidx")), b.pttl(&beta[19]));
    assert!(
        index > 0 && index <= last + 50,
        "index {index} ms, last window {last} ms"
    );
    sleep(ms(2 * w + 100));
    assert_eq!(
        redis.cli(&["KEYS", "*beta*"]),
        "",
        "every key of the tag is gone"
    );
}

// ---------------------------------------------------------------------------
// cluster

#[test]
fn the_scripts_run_on_a_cluster_under_one_hash_tag() {
    let cluster = RedisCluster::start();
    let q = Tag::new(&cluster, "acme");
    let quotas = |n| [("rpm", 2, W, 1), ("tpm", 100, W, n)];

    let c1 = q.admit("c1", &quotas(40));
    assert_eq!(c1.used, [1, 40]);
    assert_eq!(q.admit("c2", &quotas(60)).used, [2, 100]);
    let no = q.refuse("c3", &quotas(1));
    assert_eq!((no.quota, no.used), (1, 2));
    let actual = [("rpm", W, 1), ("tpm", W, 10)];
    assert_eq!(q.settle(&c1, &actual), 1);
    assert_eq!(q.settle(&c1, &actual), 0);
    assert_eq!(q.settle_u("c4", &actual), 4);
    assert_eq!(q.settle_u("c4", &actual), 2);
    let (_, windows) = q.usage();
    assert_eq!(windows[&q.window("rpm")].0, 3);
    assert_eq!(windows[&q.window("tpm")].0, 80);

    let p = q.usage_page(&[], 1, ("", ""), TOMB);
    assert_eq!(p.windows.len(), 1);
    let next = p.next.expect("a second page");
    let p = q.usage_page(&[], 1, (&next.0, &next.1), TOMB);
    assert_eq!(p.windows.len(), 1);

    // every key of the tag (lease zset, index, two windows) lives on the one
    // node that owns its slot
    let sizes: Vec<u64> = (0..3)
        .map(|i| cluster.node_cli(i, &["DBSIZE"]).parse().unwrap())
        .collect();
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 0, 4], "{sizes:?}");
}
