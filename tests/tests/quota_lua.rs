//! The quota scripts (`lua/quota_reserve.v1.lua`, `quota_settle.v1.lua`,
//! `quota_usage.v1.lua`) run with `EVAL` on a real redis-server, checked
//! against the contract in `lua/README.md` ("Quotas"): all-or-nothing
//! reservations on a sliding window of 60 sub-buckets, refusals with a
//! truthful retry time, leases that give their tokens back, settles that
//! happen once, and the usage report. One test runs the same on a 3-node
//! cluster with every key under one hash tag.
//!
//! Most windows are 1000 ms, so a sub-bucket is `ceil(1000 / 60)` = 17 ms and
//! the sum covers 61 buckets: a charge made now counts for 1020..1037 ms.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gateway_tests::redis::{RedisCluster, RedisServer};
use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::Duration;

const RESERVE: &str = concat!(
    include_str!("../../lua/quota_lib.v1.lua"),
    include_str!("../../lua/quota_reserve.v1.lua")
);
const SETTLE: &str = concat!(
    include_str!("../../lua/quota_lib.v1.lua"),
    include_str!("../../lua/quota_settle.v1.lua")
);
const USAGE: &str = concat!(
    include_str!("../../lua/quota_lib.v1.lua"),
    include_str!("../../lua/quota_usage.v1.lua")
);

/// The window of most tests (ms) and its sub-bucket `ceil(W / 60)`.
const W: i64 = 1000;
const B: i64 = 17;
/// Lease and tombstone of reservations that are not about expiry.
const LEASE: i64 = 30_000;
const TOMB: i64 = 60_000;

// ---------------------------------------------------------------------------
// redis-cli output

/// One reply as `redis-cli --no-raw` prints it (flat arrays only, which is
/// all these scripts answer).
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Int(i64),
    Str(String),
    Nil,
    Err(String),
    Arr(Vec<Reply>),
}

fn parse_scalar(s: &str) -> Reply {
    if let Some(n) = s.strip_prefix("(integer) ") {
        Reply::Int(n.parse().unwrap_or_else(|e| panic!("integer {n:?}: {e}")))
    } else if let Some(e) = s.strip_prefix("(error) ") {
        Reply::Err(e.to_string())
    } else if s == "(nil)" {
        Reply::Nil
    } else if let Some(q) = s.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
        Reply::Str(q.replace("\\\"", "\"").replace("\\\\", "\\"))
    } else {
        panic!("unexpected redis-cli output {s:?}")
    }
}

/// Parses `redis-cli --no-raw` output: a scalar, or array lines `N) value`
/// (right-aligned once there are 10 or more).
fn parse(out: &str) -> Reply {
    if out == "(empty array)" {
        return Reply::Arr(Vec::new());
    }
    let mut items = Vec::new();
    for line in out.lines() {
        let line = line.trim_start();
        match line.split_once(") ") {
            Some((n, v)) if !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()) => {
                items.push(parse_scalar(v));
            }
            _ if out.lines().count() == 1 => return parse_scalar(line),
            _ => panic!("unexpected redis-cli output line {line:?} in:\n{out}"),
        }
    }
    Reply::Arr(items)
}

impl Reply {
    fn ints(&self) -> Vec<i64> {
        match self {
            Reply::Arr(items) => items
                .iter()
                .map(|i| match i {
                    Reply::Int(n) => *n,
                    other => panic!("expected integers, got {other:?} in {self:?}"),
                })
                .collect(),
            other => panic!("expected an array, got {other:?}"),
        }
    }

    fn int(&self) -> i64 {
        match self {
            Reply::Int(n) => *n,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    fn err(&self) -> &str {
        match self {
            Reply::Err(e) => e,
            other => panic!("expected an error reply, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// the scripts, for one tenant's hash tag

trait Redis {
    /// `redis-cli ARGS...` (raw output unless ARGS say otherwise).
    fn run(&self, args: &[&str]) -> String;
}

impl Redis for RedisServer {
    fn run(&self, args: &[&str]) -> String {
        self.cli(args)
    }
}

impl Redis for RedisCluster {
    fn run(&self, args: &[&str]) -> String {
        self.cli(args)
    }
}

/// A quota spec for reserve: (quota name, limit, window ms, amount).
type Q<'a> = (&'a str, i64, i64, i64);

#[derive(Debug)]
struct Admitted {
    now: i64,
    used: Vec<i64>,
    reset: Vec<i64>,
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
    redis: &'a dyn Redis,
    t: &'a str,
}

impl<'a> Tag<'a> {
    fn new(redis: &'a dyn Redis, t: &'a str) -> Tag<'a> {
        Tag { redis, t }
    }

    /// `gw:{t:acme}:<suffix>`
    fn key(&self, suffix: &str) -> String {
        format!("gw:{{t:{}}}:{suffix}", self.t)
    }

    /// The window hash of tenant quota `name`: `gw:{t:acme}:q:t:acme:<name>:acme`.
    fn window(&self, name: &str) -> String {
        let t = self.t;
        format!("gw:{{t:{t}}}:q:t:{t}:{name}:{t}")
    }

    /// KEYS of reserve/settle: reservations, leases, index, then the windows.
    fn keys(&self, names: &[&str]) -> Vec<String> {
        let mut keys = vec![self.key("qres"), self.key("qlease"), self.key("qkeys")];
        keys.extend(names.iter().map(|n| self.window(n)));
        keys
    }

    fn cmd(&self, args: &[&str]) -> String {
        self.redis.run(args)
    }

    fn eval<S: AsRef<str>>(&self, script: &str, keys: &[String], args: &[S]) -> Reply {
        let n = keys.len().to_string();
        let mut argv = vec!["--no-raw", "EVAL", script, n.as_str()];
        argv.extend(keys.iter().map(String::as_str));
        argv.extend(args.iter().map(AsRef::as_ref));
        parse(&self.redis.run(&argv))
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

    /// Reserves and expects `{1, now, used_1, reset_1, ...}`.
    fn admit(&self, id: &str, quotas: &[Q]) -> Admitted {
        let r = self.reserve(id, quotas).ints();
        assert_eq!(r[0], 1, "{id} should be admitted: {r:?}");
        assert_eq!(r.len(), 2 + 2 * quotas.len(), "{r:?}");
        Admitted {
            now: r[1],
            used: r[2..].iter().step_by(2).copied().collect(),
            reset: r[3..].iter().step_by(2).copied().collect(),
        }
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

    fn settle_raw(&self, id: &str, mode: &str, quotas: &[(&str, &str, &str)]) -> Reply {
        let names: Vec<&str> = quotas.iter().map(|q| q.0).collect();
        let tomb = TOMB.to_string();
        let mut args = vec![id, tomb.as_str(), mode];
        for (_, w, actual) in quotas {
            args.extend([*w, *actual]);
        }
        self.eval(SETTLE, &self.keys(&names), &args)
    }

    /// quota_settle with (quota name, window ms, actual amount) per quota.
    fn settle(&self, id: &str, mode: &str, quotas: &[(&str, i64, i64)]) -> i64 {
        let s: Vec<[String; 2]> = quotas
            .iter()
            .map(|q| [q.1.to_string(), q.2.to_string()])
            .collect();
        let raw: Vec<(&str, &str, &str)> = quotas
            .iter()
            .zip(&s)
            .map(|(q, [w, a])| (q.0, w.as_str(), a.as_str()))
            .collect();
        self.settle_raw(id, mode, &raw).int()
    }

    /// quota_usage: now, and window key -> (used, reset_ms).
    fn usage(&self) -> (i64, BTreeMap<String, (i64, i64)>) {
        let tomb = TOMB.to_string();
        let keys = [self.key("qkeys"), self.key("qres"), self.key("qlease")];
        let Reply::Arr(items) = self.eval(USAGE, &keys, &[tomb.as_str()]) else {
            panic!("quota_usage should answer an array")
        };
        let Some(Reply::Int(now)) = items.first() else {
            panic!("quota_usage should start with now: {items:?}")
        };
        let mut windows = BTreeMap::new();
        for w in items[1..].chunks(3) {
            match w {
                [Reply::Str(k), Reply::Int(used), Reply::Int(reset)] => {
                    windows.insert(k.clone(), (*used, *reset));
                }
                _ => panic!("quota_usage entry {w:?} in {items:?}"),
            }
        }
        (*now, windows)
    }

    /// What quota `name` holds now per quota_usage (0 when it is not listed).
    fn used(&self, name: &str) -> i64 {
        self.usage().1.get(&self.window(name)).map_or(0, |u| u.0)
    }

    fn has_record(&self, id: &str) -> bool {
        self.cmd(&["HEXISTS", &self.key("qres"), id]) == "1"
    }
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
    assert!(!q.has_record("r4"));
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
    assert!(!q.has_record("r2"));
    assert_eq!(q.admit("r3", &quotas(40)).used, [2, 100]);
}

#[test]
fn bad_arguments_are_error_replies() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let w = W.to_string();
    let w = w.as_str();

    for (lease, limit, window, amount) in [
        ("1000", "10", w, "-1"),
        ("1000", "-5", w, "1"),
        ("1000", "10", w, "abc"),
        ("1000", "ten", w, "1"),
        ("1000", "10", "0", "1"),
        ("1000", "10", "soon", "1"),
        ("0", "10", w, "1"),
        ("later", "10", w, "1"),
    ] {
        let r = q.reserve_raw("r1", lease, &[("tpm", limit, window, amount)]);
        assert!(
            r.err().contains("quota_reserve: bad"),
            "lease {lease} limit {limit} window {window} amount {amount}: {r:?}"
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

    for (mode, tomb, window, actual) in [
        ("x", "1000", w, "1"),
        ("", "1000", w, "1"),
        ("r", "0", w, "1"),
        ("r", "1000", w, "-3"),
        ("u", "1000", w, "lots"),
        ("u", "1000", "0", "1"),
    ] {
        let r = q.eval(
            SETTLE,
            &q.keys(&["tpm"]),
            &["r1", tomb, mode, window, actual],
        );
        assert!(
            r.err().contains("quota_settle: bad"),
            "mode {mode:?} tomb {tomb} window {window} actual {actual}: {r:?}"
        );
    }
    for (keys, args) in [
        (q.keys(&["tpm"]), vec!["r1", "1000", "u", w]),
        (q.keys(&["tpm"]), vec!["r1", "1000", "u", w, "1", "2"]),
        (q.keys(&[]), vec!["r1", "1000", "u"]),
    ] {
        let r = q.eval(SETTLE, &keys, &args);
        assert!(r.err().contains("quota_settle: bad"), "{args:?}: {r:?}");
    }
    assert_eq!(q.cmd(&["DBSIZE"]), "0", "a rejected call writes nothing");
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
        assert!(!q.has_record("r1"), "{bad}");
    }

    // same for a settle: no partial move of the first quota
    let both = [("rpm", 10, W, 1), ("tpm", 100, W, 10)];
    assert_eq!(q.admit("r2", &both).used, [1, 10]);
    for bad in ["2.5", "nan", "inf"] {
        let r = q.settle_raw("r2", "r", &[("rpm", w, "3"), ("tpm", w, bad)]);
        assert!(matches!(r, Reply::Err(_)), "actual {bad}: {r:?}");
        assert_eq!((q.used("rpm"), q.used("tpm")), (1, 10), "{bad}");
    }
    assert_eq!(q.settle("r2", "r", &[("rpm", W, 3), ("tpm", W, 12)]), 1);
    assert_eq!((q.used("rpm"), q.used("tpm")), (3, 12));
}

#[test]
fn huge_values_stay_exact_integers() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let limit = 9_007_199_254_740_000; // just below 2^53
    let tpm = |amount| ("tpm", limit, W, amount);

    assert_eq!(
        q.admit("h1", &[tpm(999_999_999_999_999)]).used,
        [999_999_999_999_999]
    );
    assert_eq!(
        q.admit("h2", &[tpm(1_000_000_000_000_001)]).used,
        [2_000_000_000_000_000]
    );
    let no = q.refuse("h3", &[tpm(7_007_199_254_740_001)]);
    assert_eq!((no.quota, no.used), (1, 2_000_000_000_000_000));
    assert!(no.retry > 0, "{no:?}");
    assert_eq!(q.admit("h4", &[tpm(7_007_199_254_740_000)]).used, [limit]);

    // every bucket holds a plain integer (no 1e+15 style floats)
    let fields = q.cmd(&["HGETALL", &q.window("tpm")]);
    for v in fields.lines().skip(1).step_by(2) {
        assert!(v.bytes().all(|c| c.is_ascii_digit()), "{fields}");
    }
    assert_eq!(q.cmd(&["HGET", &q.window("tpm"), "w"]), "1000");

    // settling at the reserved amount changes nothing, settling lower moves
    // by exactly the difference
    assert_eq!(q.settle("h1", "r", &[("tpm", W, 999_999_999_999_999)]), 1);
    assert_eq!(q.used("tpm"), limit);
    assert_eq!(q.settle("h2", "r", &[("tpm", W, 1)]), 1);
    assert_eq!(q.used("tpm"), limit - 1_000_000_000_000_000);
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
}

#[test]
fn a_changed_window_length_starts_afresh() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");

    assert_eq!(q.admit("r1", &[("tpm", 10, W, 8)]).used, [8]);
    q.refuse("r2", &[("tpm", 10, W, 5)]);
    // same quota key, window now 2 s: the old buckets are dropped
    assert_eq!(q.admit("r2", &[("tpm", 10, 2 * W, 5)]).used, [5]);
    assert_eq!(q.cmd(&["HGET", &q.window("tpm"), "w"]), "2000");
    assert_eq!(q.used("tpm"), 5);
}

// ---------------------------------------------------------------------------
// settle, leases, retries

#[test]
fn settle_replaces_the_reservation_once() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let tpm = |n| ("tpm", 1000, W, n);

    assert_eq!(q.admit("low", &[tpm(100)]).used, [100]);
    assert_eq!(q.admit("high", &[tpm(10)]).used, [110]);

    // lower than reserved: used goes down
    assert_eq!(q.settle("low", "r", &[("tpm", W, 30)]), 1);
    assert_eq!(q.used("tpm"), 40);
    // higher than reserved: used goes up
    assert_eq!(q.settle("high", "r", &[("tpm", W, 50)]), 1);
    assert_eq!(q.used("tpm"), 80);

    // mode r forgets the reservation: a repeat finds nothing, does nothing
    assert!(!q.has_record("low"));
    assert_eq!(q.settle("low", "r", &[("tpm", W, 999)]), 0);
    assert_eq!(q.used("tpm"), 80);

    // mode u (the retry queue, which may send it again) keeps a tombstone:
    // a repeat in any mode answers 2 and changes nothing
    assert_eq!(q.admit("queued", &[tpm(20)]).used, [100]);
    assert_eq!(q.settle("queued", "u", &[("tpm", W, 5)]), 1);
    assert_eq!(q.used("tpm"), 85);
    assert_eq!(q.settle("queued", "u", &[("tpm", W, 5)]), 2);
    assert_eq!(q.settle("queued", "r", &[("tpm", W, 999)]), 2);
    assert_eq!(q.used("tpm"), 85);

    // settling to zero removes the charge entirely
    assert_eq!(q.admit("none", &[tpm(20)]).used, [105]);
    assert_eq!(q.settle("none", "r", &[("tpm", W, 0)]), 1);
    assert_eq!(q.used("tpm"), 85);
}

#[test]
fn settle_without_a_reservation() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");

    // mode r: the reserve never arrived, nothing to do and nothing written
    assert_eq!(q.settle("ghost", "r", &[("tpm", W, 7)]), 0);
    assert_eq!(q.cmd(&["DBSIZE"]), "0");

    // mode u: admitted while Redis was away, charged once
    assert_eq!(q.settle("offline", "u", &[("tpm", W, 7)]), 4);
    assert_eq!(q.used("tpm"), 7);
    assert_eq!(q.settle("offline", "u", &[("tpm", W, 7)]), 2);
    assert_eq!(q.used("tpm"), 7);
    // ... and the charge counts against the limit like any other
    let no = q.refuse("r1", &[("tpm", 10, W, 4)]);
    assert_eq!((no.quota, no.used), (1, 7));
}

#[test]
fn an_expired_lease_is_refunded_and_a_late_settle_charges() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");

    let r = q.reserve_lease("slow", 50, &[("tpm", 100, W, 40)]).ints();
    assert_eq!(r[..1], [1]);
    assert_eq!(q.used("tpm"), 40);

    sleep(ms(100));
    // any reserve on the tag sweeps the expired lease, here on another quota
    assert_eq!(q.admit("other", &[("rpm", 10, W, 1)]).used, [1]);
    assert_eq!(q.used("tpm"), 0);
    let rec = q.cmd(&["HGET", &q.key("qres"), "slow"]);
    assert!(rec.contains(r#""s":"E""#), "{rec}");

    // the request did finish: its real usage is charged now, once
    assert_eq!(q.settle("slow", "r", &[("tpm", W, 25)]), 3);
    assert_eq!(q.used("tpm"), 25);
    assert_eq!(q.settle("slow", "r", &[("tpm", W, 25)]), 2);
    assert_eq!(q.used("tpm"), 25);
}

#[test]
fn a_settle_after_the_window_expired_does_not_resurrect_it() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    // a 60 ms window (1 ms buckets) expires 121 ms after its last reserve
    let r = q.reserve("long", &[("tpm", 100, 60, 5)]).ints();
    assert_eq!(r[..1], [1]);
    sleep(ms(200));
    assert_eq!(q.cmd(&["EXISTS", &q.window("tpm")]), "0");

    assert_eq!(q.settle("long", "r", &[("tpm", 60, 8)]), 1);
    // no window hash without TTL (and without `w`) left behind
    let pttl: i64 = q.cmd(&["PTTL", &q.window("tpm")]).parse().unwrap();
    assert_ne!(pttl, -1, "window key recreated without a TTL");
    assert_eq!(q.used("tpm"), 0);
}

#[test]
fn the_same_reservation_twice_counts_once() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");
    let tpm = ("tpm", 5, W, 5);

    assert_eq!(q.admit("x", &[tpm]).used, [5]);
    // a retried call whose answer was lost: admitted again, charged once,
    // even though the window is full now
    assert_eq!(q.admit("x", &[tpm]).used, [5]);
    assert_eq!(q.used("tpm"), 5);
    q.refuse("y", &[tpm]);
    assert_eq!(q.settle("x", "r", &[("tpm", W, 5)]), 1);
    assert_eq!(q.used("tpm"), 5);
}

// ---------------------------------------------------------------------------
// usage

#[test]
fn usage_lists_every_window_and_forgets_expired_ones() {
    let redis = RedisServer::start();
    let q = Tag::new(&redis, "acme");

    let (now, windows) = q.usage();
    assert!(now > 0 && windows.is_empty(), "{windows:?}");

    let a = q.admit("r1", &[("rpm", 10, W, 3), ("blip", 10, 60, 2)]);
    assert_eq!(a.used, [3, 2]);
    let (now, windows) = q.usage();
    assert_eq!(windows.len(), 2, "{windows:?}");
    let rpm_reset = (a.now / B + 61) * B - now;
    assert_eq!(windows[&q.window("rpm")], (3, rpm_reset));
    assert_eq!(windows[&q.window("blip")].0, 2);

    // the 60 ms window expires after 121 ms and leaves the index
    sleep(ms(200));
    let (now, windows) = q.usage();
    let rpm_reset = (a.now / B + 61) * B - now;
    assert_eq!(windows.len(), 1, "{windows:?}");
    assert_eq!(windows[&q.window("rpm")], (3, rpm_reset));
    let members = q.cmd(&["SMEMBERS", &q.key("qkeys")]);
    assert_eq!(members, q.window("rpm"));
}

// ---------------------------------------------------------------------------
// cluster

#[test]
fn the_scripts_run_on_a_cluster_under_one_hash_tag() {
    let cluster = RedisCluster::start();
    let q = Tag::new(&cluster, "acme");
    let quotas = |n| [("rpm", 2, W, 1), ("tpm", 100, W, n)];

    assert_eq!(q.admit("c1", &quotas(40)).used, [1, 40]);
    assert_eq!(q.admit("c2", &quotas(60)).used, [2, 100]);
    let no = q.refuse("c3", &quotas(1));
    assert_eq!((no.quota, no.used), (1, 2));
    assert_eq!(q.settle("c1", "r", &[("rpm", W, 1), ("tpm", W, 10)]), 1);
    assert_eq!(q.settle("c1", "r", &[("rpm", W, 1), ("tpm", W, 10)]), 0);
    let (_, windows) = q.usage();
    assert_eq!(windows[&q.window("rpm")].0, 2);
    assert_eq!(windows[&q.window("tpm")].0, 70);

    // every key of the tag lives on the one node that owns its slot
    let sizes: Vec<u64> = (0..3)
        .map(|i| cluster.node_cli(i, &["DBSIZE"]).parse().unwrap())
        .collect();
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 0, 5], "{sizes:?}");
}
