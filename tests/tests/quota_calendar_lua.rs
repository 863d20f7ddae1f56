//! What v3 of the quota scripts added, as v4 has it (`lua/quota_reserve.v4.lua`,
//! `quota_settle.v4.lua`, `quota_usage.v4.lua` after `quota_lib.v4.lua`, and
//! `ledger_read.v1.lua`), run with `EVAL` on a real redis-server and checked
//! against their header comments and `lua/README.md`:
//!
//! * calendar windows: an argument `<calendar>,<t0>,<t1>,<t2>,<t3>` (four
//!   period boundaries, ms) counts the period that holds Redis's `TIME`, and
//!   starts afresh at the next boundary or under another calendar. The tests
//!   read `TIME` first and place a boundary 1-2 s ahead, then sleep past it.
//! * the usage ledger: `quota_settle` adds a request's figures to its day
//!   hash exactly when it charges the usage (answers 1, 3, 4), so a
//!   settlement sent twice counts once; `ledger_read` returns the day hashes.
//! * alert percentages: a settle answers each percentage a calendar window
//!   crossed, once per period.
//!
//! The sliding windows, leases and usage pages of v2 are `quota_lua.rs`'s.

use gateway_tests::redis::reply::Reply;
use gateway_tests::redis::scripts::{
    assert_every_key_expires, cal, ending_in, eval, Entry, QuotaTag, LEDGER_READ, RESERVE, TOMB,
};
use gateway_tests::redis::RedisServer;
use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::Duration;

/// Amounts settle with when no limit is meant (the scripts' largest whole number).
const NO_LIMIT: i64 = 1 << 53;
/// The day hash the ledger tests write.
const DAY: &str = "2026-12-07";
/// A ledger group: `[tenant, consumer, model, provider]` as JSON.
const BOB: &str = r#"["acme","bob","gpt-4o","openai"]"#;
const ANON: &str = r#"["acme","","gpt-4o-mini","azure"]"#;
/// The ledger field one group's figures make: `<dims>` = its nine figures,
/// comma-separated (letters: r requests, i input, o output, c cached, w cache
/// write, x reasoning, k cost, u unpriced, e estimated; the others 0).
fn fields(dims: &str, figures: &[(char, i64)]) -> BTreeMap<String, String> {
    let order = ['r', 'i', 'o', 'c', 'w', 'x', 'k', 'u', 'e'];
    let value: Vec<String> = order
        .iter()
        .map(|l| {
            figures
                .iter()
                .find(|(f, _)| f == l)
                .map_or(0, |(_, v)| *v)
                .to_string()
        })
        .collect();
    BTreeMap::from([(dims.to_string(), value.join(","))])
}

// ---------------------------------------------------------------------------
// calendar windows

#[test]
fn a_calendar_window_admits_until_its_limit_and_starts_afresh_at_the_boundary() {
    let redis = RedisServer::start();
    let q = QuotaTag::new(&redis, "acme");
    let b = ending_in(q.now(), 1500);
    let day = cal("day@UTC", b);

    let first = q.admit("r1", &[("budget", 10, &day, 4)]);
    assert_eq!(first.used, [4]);
    // everything in it frees at the period's end
    assert_eq!(first.reset, [b[2] - first.now]);
    assert_eq!(q.admit("r2", &[("budget", 10, &day, 6)]).used, [10]);
    let no = q.refuse("r3", &[("budget", 10, &day, 1)]);
    assert_eq!((no.quota, no.used), (1, 10));
    assert_eq!(no.retry, b[2] - no.now, "retry at the period's end");
    let no = q.refuse("r4", &[("budget", 10, &day, 11)]);
    assert_eq!((no.retry, no.used), (-1, 10), "more than the limit alone");

    // one bucket, the period: `w` the calendar, `o` its start, `e` its end
    let h = q.hash(&q.window("budget"));
    assert_eq!(h["w"], "day@UTC");
    assert_eq!(h["o"], b[1].to_string());
    assert_eq!(h["e"], b[2].to_string());
    assert_eq!(
        (h["s"].as_str(), h[&b[1].to_string()].as_str()),
        ("10", "10")
    );
    // the hash lives a minute past its period
    let pttl = q.pttl(&q.window("budget"));
    assert!(
        pttl > b[2] - q.now() + 59_000 && pttl <= b[2] - first.now + 60_000,
        "{pttl}"
    );
    assert_every_key_expires(&redis);

    // the same argument after the boundary: the next period, empty
    q.sleep_past(b[2]);
    let next = q.admit("r5", &[("budget", 10, &day, 10)]);
    assert_eq!(next.used, [10], "the old period's sum is gone");
    assert_eq!(next.reset, [b[3] - next.now]);
    let h = q.hash(&q.window("budget"));
    assert_eq!(
        (h["o"].as_str(), h["e"].as_str()),
        (&*b[2].to_string(), &*b[3].to_string())
    );
    assert!(!h.contains_key(&b[1].to_string()), "{h:?}");
    let no = q.refuse("r6", &[("budget", 10, &day, 1)]);
    assert_eq!(no.retry, b[3] - no.now);
    assert_every_key_expires(&redis);
}

#[test]
fn a_reservation_settled_in_the_next_period_charges_only_its_excess_there() {
    let redis = RedisServer::start();
    let q = QuotaTag::new(&redis, "acme");
    let b = ending_in(q.now(), 1000);
    let day = cal("day@UTC", b);

    let under = q.admit("under", &[("budget", 100, &day, 5)]);
    let over = q.admit("over", &[("budget", 100, &day, 5)]);
    assert_eq!(over.used, [10]);
    q.sleep_past(b[2]);

    // what it reserved left with its period: the refund moves nothing
    assert_eq!(q.settle(&under, &[("budget", &day, 2, 100, "")]), [1]);
    assert_eq!(q.used("budget"), (0, 0));
    // usage beyond the reservation counts, in the new period
    assert_eq!(q.settle(&over, &[("budget", &day, 8, 100, "")]), [1]);
    let (used, reset) = q.used("budget");
    assert_eq!(used, 3);
    assert!(
        reset > b[3] - q.now() - 1000 && reset <= b[3] - b[2],
        "{reset}"
    );
    assert_eq!(q.admit("next", &[("budget", 100, &day, 1)]).used, [4]);
    assert_eq!(q.hash(&q.window("budget"))["o"], b[2].to_string());
    // settled once
    assert_eq!(q.settle(&over, &[("budget", &day, 8, 100, "")]), [0]);
    assert_eq!(q.used("budget").0, 4);
    assert_every_key_expires(&redis);
}

#[test]
fn another_calendar_or_a_sliding_window_starts_afresh() {
    let redis = RedisServer::start();
    let q = QuotaTag::new(&redis, "acme");
    let now = q.now();
    let utc = cal("day@UTC", ending_in(now, 60_000));
    let berlin = cal("day@Europe/Berlin", ending_in(now, 70_000));

    let a = q.admit("a", &[("budget", 10, &utc, 7)]);
    // the quota's calendar changed (a reload): the window starts again
    assert_eq!(q.admit("b", &[("budget", 10, &berlin, 7)]).used, [7]);
    assert_eq!(q.hash(&q.window("budget"))["w"], "day@Europe/Berlin");
    // a reservation of the old calendar never moves the new one
    assert_eq!(q.settle(&a, &[("budget", &berlin, 0, 10, "")]), [1]);
    assert_eq!(q.used("budget").0, 7);
    // to a sliding window and back
    assert_eq!(q.admit("c", &[("budget", 10, "60000", 9)]).used, [9]);
    assert_eq!(q.admit("d", &[("budget", 10, &berlin, 2)]).used, [2]);
    assert_every_key_expires(&redis);
}

#[test]
fn bounds_that_hold_no_now_are_an_error_and_write_nothing() {
    let redis = RedisServer::start();
    let q = QuotaTag::new(&redis, "acme");
    let now = q.now();
    let past = cal("day@UTC", [now - 4000, now - 3000, now - 2000, now - 1000]);
    let future = cal(
        "day@UTC",
        [now + 60_000, now + 70_000, now + 80_000, now + 90_000],
    );
    let live = cal("day@UTC", ending_in(now, 60_000));

    for w in [&past, &future] {
        // also as the second quota, after one that would be admitted
        let r = q.reserve("r1", &[("rpm", 10, "60000", 1), ("budget", 10, w, 1)]);
        assert!(
            r.err()
                .contains("quota_reserve: no calendar period given holds the time now at 2"),
            "{r:?}"
        );
        let e = Entry {
            day: DAY,
            dims: BOB,
            figures: "1,0,0,0,0,0,0,0,0",
            expire_at: now / 1000 + 3600,
        };
        let r = q.settle_call("u1", "u", "", Some(&e), &[("budget", w, 1, 10, "50")]);
        assert!(r.err().contains("quota_settle: bad"), "{r:?}");
    }
    for bad in [
        // not increasing, too few, a number for a name, no name
        format!(
            "day@UTC,{},{},{},{}",
            now - 10,
            now + 10,
            now + 10,
            now + 20
        ),
        format!("day@UTC,{},{},{}", now - 10, now + 10, now + 20),
        format!("7,{},{},{},{}", now - 20, now - 10, now + 10, now + 20),
        format!(",{},{},{},{}", now - 20, now - 10, now + 10, now + 20),
        format!("day@UTC,{},{},{},x", now - 20, now - 10, now + 10),
    ] {
        let r = q.reserve("r2", &[("budget", 10, &bad, 1)]);
        assert!(
            r.err().contains("quota_reserve: bad quota arguments"),
            "{bad}: {r:?}"
        );
        let r = q.settle_call("u2", "u", "", None, &[("budget", &bad, 1, 10, "")]);
        assert!(r.err().contains("quota_settle: bad"), "{bad}: {r:?}");
    }
    assert_eq!(q.cmd(&["DBSIZE"]), "0", "an error writes nothing");
    // the same calls with bounds around now do write
    q.admit("r3", &[("budget", 10, &live, 1)]);
    assert_eq!(q.used("budget").0, 1);
}

#[test]
fn usage_shows_a_calendar_window_until_its_period_ends() {
    let redis = RedisServer::start();
    let q = QuotaTag::new(&redis, "acme");
    let b = ending_in(q.now(), 1000);
    let day = cal("month@UTC", b);

    let a = q.admit("r1", &[("budget", 100, &day, 40)]);
    assert_eq!(q.settle(&a, &[("budget", &day, 25, 100, "")]), [1]);
    let u = q.usage(&["budget"]);
    let (used, reset) = u.named[0];
    assert_eq!(used, 25);
    assert!(reset > 0 && reset <= b[2] - a.now, "{reset}");
    // listed by the index too, until a minute past the period
    assert_eq!(u.listed[&q.window("budget")], (used, reset));
    // a window emptied again holds nothing that resets
    let z = q.admit("r2", &[("empty", 100, &day, 5)]);
    assert_eq!(q.settle(&z, &[("empty", &day, 0, 100, "")]), [1]);
    assert_eq!(q.used("empty"), (0, 0));

    q.sleep_past(b[2]);
    let u = q.usage(&["budget"]);
    assert_eq!(u.named, [(0, 0)]);
    assert_eq!(u.listed[&q.window("budget")], (0, 0));
    assert_every_key_expires(&redis);
}

// ---------------------------------------------------------------------------
// the usage ledger

#[test]
fn a_settle_adds_its_ledger_entry_once_when_it_charges() {
    let redis = RedisServer::start();
    let q = QuotaTag::new(&redis, "acme");
    let expire_at = q.now() / 1000 + 86_400;
    // requests, input, output, cached, cache write, reasoning, cost, unpriced, estimated
    let e = Entry {
        day: DAY,
        dims: BOB,
        figures: "1,1200,300,0,0,45,4000000000000000,0,1",
        expire_at,
    };
    let once = fields(
        BOB,
        &[
            ('r', 1),
            ('i', 1200),
            ('o', 300),
            ('x', 45),
            ('k', 4_000_000_000_000_000),
            ('e', 1),
        ],
    );
    let tpm = |n| [("tpm", "60000", n, NO_LIMIT, "")];

    // answer 1 (settled): each figure exactly
    let a = q.admit("r1", &[("tpm", 100, "60000", 50)]);
    assert_eq!(
        q.settle_call("r1", "r", &a.member, Some(&e), &tpm(30))
            .ints(),
        [1]
    );
    assert_eq!(q.hash(&q.ledger(DAY)), once);
    let at: i64 = q.cmd(&["EXPIRETIME", &q.ledger(DAY)]).parse().unwrap();
    assert_eq!(at, expire_at);
    // answer 0 (settled before): nothing added
    assert_eq!(
        q.settle_call("r1", "r", &a.member, Some(&e), &tpm(30))
            .ints(),
        [0]
    );
    assert_eq!(q.hash(&q.ledger(DAY)), once);
    // nor for a reservation never made
    assert_eq!(
        q.settle_call("r0", "r", "r0\nx\n1\n1\n1", Some(&e), &tpm(1))
            .ints(),
        [0]
    );
    assert_eq!(q.hash(&q.ledger(DAY)), once);

    // answer 4 (charged without reservation), then 2 (the retry queue sent it again)
    assert_eq!(q.settle_call("u1", "u", "", Some(&e), &tpm(10)).ints(), [4]);
    assert_eq!(q.settle_call("u1", "u", "", Some(&e), &tpm(10)).ints(), [2]);
    let twice = fields(
        BOB,
        &[
            ('r', 2),
            ('i', 2400),
            ('o', 600),
            ('x', 90),
            ('k', 8_000_000_000_000_000),
            ('e', 2),
        ],
    );
    assert_eq!(q.hash(&q.ledger(DAY)), twice);

    // answer 3 (the lease had ended): charged, so in the ledger
    let keys = [q.key("qlease"), q.key("qidx"), q.window("tpm")];
    let late = eval(
        &redis,
        RESERVE,
        &keys,
        &["late", "30", TOMB.to_string().as_str(), "100", "60000", "5"],
    );
    let member = match late.items().last() {
        Some(Reply::Str(m)) => m.clone(),
        other => panic!("late should be admitted: {other:?}"),
    };
    sleep(Duration::from_millis(60));
    q.usage(&[]); // sweeps the ended lease
    let anon = Entry {
        day: DAY,
        dims: ANON,
        figures: "1,7,3,2,1,0,250,1,0",
        expire_at,
    };
    assert_eq!(
        q.settle_call("late", "r", &member, Some(&anon), &tpm(9))
            .ints(),
        [3]
    );
    let mut want = twice.clone();
    want.extend(fields(
        ANON,
        &[
            ('r', 1),
            ('i', 7),
            ('o', 3),
            ('c', 2),
            ('w', 1),
            ('k', 250),
            ('u', 1),
        ],
    ));
    assert_eq!(q.hash(&q.ledger(DAY)), want);
    assert_eq!(
        q.settle_call("late", "r", &member, Some(&anon), &tpm(9))
            .ints(),
        [0]
    );
    assert_eq!(q.hash(&q.ledger(DAY)), want);
    assert_every_key_expires(&redis);
}

/// Figures are whole numbers up to 2^53 (the scripts' exact range); sums stop
/// there instead of losing their last digits.
#[test]
fn ledger_figures_stay_exact_up_to_2_pow_53() {
    let redis = RedisServer::start();
    let q = QuotaTag::new(&redis, "acme");
    let entry = |figures| Entry {
        day: DAY,
        dims: BOB,
        figures,
        expire_at: q.now() / 1000 + 3600,
    };
    let over = entry("1,0,0,0,0,0,9007199254740993,0,0");
    let r = q.settle_call("big", "u", "", Some(&over), &[]);
    assert!(r.err().contains("quota_settle: bad ledger entry"), "{r:?}");
    assert_eq!(q.cmd(&["DBSIZE"]), "0", "a refused entry writes nothing");
    let max = entry("1,0,0,0,0,0,9007199254740992,0,0");
    for id in ["m1", "m2"] {
        assert_eq!(q.settle_call(id, "u", "", Some(&max), &[]).ints(), [4]);
    }
    let top = fields(BOB, &[('r', 2), ('k', 9_007_199_254_740_992)]);
    assert_eq!(q.hash(&q.ledger(DAY)), top);
}

#[test]
fn a_ledger_entry_alone_is_added_once_even_when_sent_twice() {
    let redis = RedisServer::start();
    let q = QuotaTag::new(&redis, "acme");
    let e = Entry {
        day: DAY,
        dims: ANON,
        figures: "1,10,20,0,0,0,0,1,0",
        expire_at: q.now() / 1000 + 3600,
    };
    // mode u with no window: the request reserved nothing under this tag
    assert_eq!(q.settle_call("l1", "u", "", Some(&e), &[]).ints(), [4]);
    assert_eq!(q.settle_call("l1", "u", "", Some(&e), &[]).ints(), [2]);
    let once = fields(ANON, &[('r', 1), ('i', 10), ('o', 20), ('u', 1)]);
    assert_eq!(q.hash(&q.ledger(DAY)), once);
    // another request is another entry
    assert_eq!(q.settle_call("l2", "u", "", Some(&e), &[]).ints(), [4]);
    let twice = fields(ANON, &[('r', 2), ('i', 20), ('o', 40), ('u', 2)]);
    assert_eq!(q.hash(&q.ledger(DAY)), twice);
    // only the S tombstones and the day hash: no window, no index
    let mut keys: Vec<String> = q.cmd(&["KEYS", "*"]).lines().map(String::from).collect();
    keys.sort();
    assert_eq!(keys, [q.ledger(DAY), q.key("qlease")]);
    assert_every_key_expires(&redis);
}

#[test]
fn ledger_read_returns_the_day_hashes_in_order() {
    let redis = RedisServer::start();
    let q = QuotaTag::new(&redis, "acme");
    let e = Entry {
        day: DAY,
        dims: BOB,
        figures: "1,5,6,0,0,0,70,0,0",
        expire_at: q.now() / 1000 + 3600,
    };
    assert_eq!(q.settle_call("l1", "u", "", Some(&e), &[]).ints(), [4]);
    q.cmd(&["HSET", &q.ledger("2026-12-05"), "x", "3,0,0,0,0,0,0,0,0"]);
    // (a list of lists: read with a client, redis-cli --no-raw nests them)
    let mut con = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let days: Vec<Vec<String>> = redis::cmd("EVAL")
        .arg(LEDGER_READ)
        .arg(3)
        .arg(q.ledger("2026-12-05"))
        .arg(q.ledger("2026-12-06"))
        .arg(q.ledger(DAY))
        .query(&mut con)
        .unwrap();
    let days: Vec<BTreeMap<String, String>> = days
        .iter()
        .map(|flat| {
            flat.chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect()
        })
        .collect();
    assert_eq!(days.len(), 3, "{days:?}");
    assert_eq!(days[0], fields("x", &[('r', 3)]));
    assert!(days[1].is_empty());
    assert_eq!(
        days[2],
        fields(BOB, &[('r', 1), ('i', 5), ('o', 6), ('k', 70)])
    );
}

// ---------------------------------------------------------------------------
// alert percentages

#[test]
fn each_alert_percentage_is_answered_once_per_period() {
    let redis = RedisServer::start();
    let q = QuotaTag::new(&redis, "acme");
    let b = ending_in(q.now(), 1500);
    let day = cal("day@UTC", b);
    let spend = |id: &str, n| q.settle_u(id, &[("budget", &day, n, 10, "50,80,100")]);

    assert_eq!(spend("u1", 4), [4], "40%: none yet");
    assert_eq!(spend("u2", 1), [4, 1, 50, 5]);
    assert_eq!(spend("u3", 2), [4], "70%: 50 was answered already");
    assert_eq!(spend("u4", 1), [4, 1, 80, 8]);
    // a reservation alone crosses nothing; its settlement does
    let a = q.admit("r1", &[("budget", 10, &day, 2)]);
    assert_eq!(a.used, [10]);
    assert_eq!(
        q.settle(&a, &[("budget", &day, 2, 10, "50,80,100")]),
        [1, 1, 100, 10]
    );
    assert_eq!(spend("u5", 5), [4], "past 100%: once");
    assert_eq!(q.hash(&q.window("budget"))["a"], "100");
    // a repeated settlement charges nothing and answers no alert
    assert_eq!(spend("u5", 5), [2]);

    // the next period: each once again; a jump answers the highest crossed
    q.sleep_past(b[2]);
    assert_eq!(spend("u6", 6), [4, 1, 50, 6]);
    assert_eq!(spend("u7", 3), [4, 1, 80, 9]);
    let q2 = QuotaTag::new(&redis, "beta");
    let settled = q2.settle_u("u8", &[("budget", &day, 9, 10, "50,80,100")]);
    assert_eq!(settled, [4, 1, 80, 9], "50 and 80 at once: 80");
    assert_every_key_expires(&redis);
}

#[test]
fn alerts_name_their_window_and_never_come_from_sliding_ones() {
    let redis = RedisServer::start();
    let q = QuotaTag::new(&redis, "acme");
    let day = cal("day@UTC", ending_in(q.now(), 60_000));
    let pair = |id: &str, n| {
        q.settle_u(
            id,
            &[
                ("rpm", "60000", n, 10, "50,80,100"),
                ("budget", &day, n, 20, "50,80,100"),
            ],
        )
    };

    // the sliding window at 100%, the calendar one (the second) at 50%
    assert_eq!(pair("u1", 10), [4, 2, 50, 10]);
    assert_eq!(pair("u2", 6), [4, 2, 80, 16]);
    assert!(!q.hash(&q.window("rpm")).contains_key("a"));
    // no alerts asked for: none answered, none kept
    assert_eq!(q.settle_u("u3", &[("budget", &day, 4, 20, "")]), [4]);
    assert_eq!(q.hash(&q.window("budget"))["a"], "80");
    assert_eq!(q.used("budget").0, 20);
}
