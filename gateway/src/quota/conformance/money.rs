//! The quota store suite's calendar windows, usage ledger and alert
//! percentages: both stores count the calendar period that holds their own
//! clock, add a ledger entry exactly when a settlement charges, and answer each
//! alert percentage once per period.

use super::super::now_ms;
use super::super::store::{
    Actual, Crossed, Item, LedgerAdd, QuotaStore, ReserveAnswer, SettleAnswer, SettleCall,
    SettleMode, Settled, Span,
};
use super::member;
use shared::ledger::{Dims, Totals};
use std::time::Duration;

const LEASE: u64 = 10_000;
const TOMB: u64 = 60_000;
const ALERTS: [u8; 3] = [50, 80, 100];

/// Bounds around this process's clock (Redis's is the same machine's): the
/// current period began 10 s ago and ends `ms` from now.
fn ending_in(ms: u64) -> [u64; 4] {
    let now = now_ms();
    [now - 20_000, now - 10_000, now + ms, now + ms + 3_600_000]
}

fn day(zone: &str, bounds: [u64; 4]) -> Span {
    Span::Calendar {
        name: format!("day@{zone}").into(),
        bounds,
    }
}

async fn sleep_past(t: u64) {
    let wait = (t + 100).saturating_sub(now_ms());
    tokio::time::sleep(Duration::from_millis(wait)).await;
}

fn item(key: &str, limit: u64, span: &Span, amount: u64) -> Item {
    Item {
        key: key.to_string(),
        limit,
        span: span.clone(),
        amount,
    }
}

fn actual(key: &str, span: &Span, amount: u64, limit: u64, alerts: &[u8]) -> Actual {
    Actual {
        key: key.to_string(),
        span: span.clone(),
        amount,
        limit,
        alerts: alerts.into(),
    }
}

/// One store call per settlement, as the gateway makes it.
struct Tag<'a> {
    s: &'a QuotaStore,
    tag: String,
}

impl Tag<'_> {
    fn key(&self, quota: &str) -> String {
        format!("{{{}}}:q:t:x:{quota}:x", self.tag)
    }

    async fn reserve(&self, id: &str, items: &[Item]) -> ReserveAnswer {
        self.s
            .reserve(&self.tag, id, LEASE, TOMB, items)
            .await
            .unwrap()
    }

    async fn settle(
        &self,
        id: &str,
        member: &str,
        mode: SettleMode,
        actual: &[Actual],
        ledger: Option<&LedgerAdd>,
    ) -> Settled {
        let call = SettleCall {
            tag: &self.tag,
            id,
            member,
            tomb_ms: TOMB,
            mode,
            actual,
            ledger,
        };
        self.s.settle(&call).await.unwrap()
    }

    /// Usage without a reservation: the crossed alerts (charged, else panics).
    async fn spend(&self, id: &str, actual: &[Actual]) -> Vec<Crossed> {
        let r = self
            .settle(id, "", SettleMode::Unreserved, actual, None)
            .await;
        assert_eq!(r.answer, SettleAnswer::Charged, "{id}: {r:?}");
        r.crossed
    }

    /// (used, reset ms) of a window, read by name.
    async fn usage(&self, key: &str) -> (u64, u64) {
        let p = self
            .s
            .usage(&self.tag, TOMB, &[key.to_string()], 0, None)
            .await
            .unwrap();
        assert_eq!(p.windows.len(), 1, "{p:?}");
        (p.windows[0].1, p.windows[0].2)
    }
}

fn crossed(index: usize, percent: u8, used: u64) -> Vec<Crossed> {
    vec![Crossed {
        index,
        percent,
        used,
    }]
}

/// Calendar windows and alerts on both sides of one period boundary, then the
/// ledger.
pub async fn run(s: &QuotaStore, salt: &str) {
    let b = ending_in(1000);
    let utc = day("UTC", b);
    let q = Tag {
        s,
        tag: format!("t:cal{salt}"),
    };
    let (kc, kz, kn) = (q.key("budget"), q.key("empty"), q.key("renamed"));

    // admitted up to the limit, refused until the period's end
    let r1 = q.reserve("r1", &[item(&kc, 10, &utc, 6)]).await;
    match &r1 {
        ReserveAnswer::Admitted { used, .. } => {
            assert_eq!(used[0].used, 6);
            assert!(used[0].reset_ms > 0 && used[0].reset_ms <= 1000, "{used:?}");
        }
        other => panic!("r1 should be admitted: {other:?}"),
    }
    match q.reserve("r2", &[item(&kc, 10, &utc, 5)]).await {
        ReserveAnswer::Refused {
            used, retry_ms: r, ..
        } => {
            assert_eq!(used, 6);
            assert!(r.is_some_and(|r| r > 0 && r <= 1000), "{r:?}");
        }
        other => panic!("r2 should be refused: {other:?}"),
    }
    let r3 = q.reserve("r3", &[item(&kc, 10, &utc, 4)]).await;
    assert!(matches!(r3, ReserveAnswer::Admitted { .. }), "{r3:?}");
    let (used, reset) = q.usage(&kc).await;
    assert!(used == 10 && reset > 0 && reset <= 1000, "{used} {reset}");
    // a window emptied again has nothing to reset
    let z = q.reserve("z", &[item(&kz, 10, &utc, 3)]).await;
    let zero = [actual(&kz, &utc, 0, 10, &[])];
    let r = q
        .settle("z", member(&z), SettleMode::Reserved, &zero, None)
        .await;
    assert_eq!(r.answer, SettleAnswer::Settled);
    assert_eq!(q.usage(&kz).await, (0, 0));
    // another calendar starts afresh (even with the same period start)
    q.reserve("n1", &[item(&kn, 5, &utc, 5)]).await;
    let berlin = day("Europe/Berlin", b);
    match q.reserve("n2", &[item(&kn, 5, &berlin, 5)]).await {
        ReserveAnswer::Admitted { used, .. } => assert_eq!(used[0].used, 5),
        other => panic!("n2 should be admitted afresh: {other:?}"),
    }

    // each alert percentage once per period; never for a sliding window
    let a = Tag {
        s,
        tag: format!("t:alert{salt}"),
    };
    let (ka, kb, ks) = (a.key("budget"), a.key("pair"), a.key("rpm"));
    let spend = |n| [actual(&ka, &utc, n, 10, &ALERTS)];
    assert_eq!(a.spend("u1", &spend(4)).await, []);
    assert_eq!(a.spend("u2", &spend(1)).await, crossed(0, 50, 5));
    assert_eq!(a.spend("u3", &spend(3)).await, crossed(0, 80, 8));
    assert_eq!(a.spend("u4", &spend(2)).await, crossed(0, 100, 10));
    assert_eq!(a.spend("u5", &spend(1)).await, []);
    let again = a
        .settle("u5", "", SettleMode::Unreserved, &spend(1), None)
        .await;
    assert_eq!(again.crossed, [], "a repeated settlement alerts nothing");
    let pair = [
        actual(&ks, &Span::Sliding(60_000), 10, 10, &ALERTS),
        actual(&kb, &utc, 10, 20, &ALERTS),
    ];
    assert_eq!(a.spend("u6", &pair).await, crossed(1, 50, 10));

    sleep_past(b[2]).await;
    // the next period: the old sum is gone
    assert_eq!(q.usage(&kc).await, (0, 0));
    let r4 = q.reserve("r4", &[item(&kc, 10, &utc, 10)]).await;
    assert!(matches!(r4, ReserveAnswer::Admitted { .. }), "{r4:?}");
    // a reservation of the last period: its excess counts in this one, its
    // refund nowhere
    let nine = [actual(&kc, &utc, 9, 10, &[])];
    let r = q
        .settle("r1", member(&r1), SettleMode::Reserved, &nine, None)
        .await;
    assert_eq!(r.answer, SettleAnswer::Settled);
    let one = [actual(&kc, &utc, 1, 10, &[])];
    let r = q
        .settle("r3", member(&r3), SettleMode::Reserved, &one, None)
        .await;
    assert_eq!(r.answer, SettleAnswer::Settled);
    assert_eq!(q.usage(&kc).await.0, 13);
    assert_eq!(a.spend("u7", &spend(5)).await, crossed(0, 50, 5));

    ledger(s, salt).await;
}

/// Ledger entries: added by the settlements that charge (once under
/// repeats), a ledger-only one included, read back alike from both stores.
async fn ledger(s: &QuotaStore, salt: &str) {
    let q = Tag {
        s,
        tag: format!("t:led{salt}"),
    };
    let the_day = "2026-12-07";
    let entry = |consumer: &str, figures: [u64; 9]| LedgerAdd {
        dims: Dims {
            tenant: format!("led{salt}"),
            consumer: consumer.to_string(),
            model: "gpt-4o".to_string(),
            provider: "openai".to_string(),
            day: the_day.to_string(),
        },
        figures: Totals::from_array(figures),
        expire_at_s: now_ms() / 1000 + 3600,
    };
    let bob = entry("bob", [1, 1200, 300, 0, 0, 45, 4_000_000_000_000_000, 0, 1]);
    let anon = entry("", [1, 10, 20, 0, 0, 0, 0, 1, 0]);
    let day_number = super::super::ledger::day_number(the_day).unwrap();
    s.register_ledger_tag(&q.tag, day_number, 1, now_ms() / 1000 + 3600)
        .await
        .unwrap();
    if let Some(c) = s.conn() {
        // the list of ledger tags expires with its newest day hash
        let key = format!("{}{}", c.prefix, super::super::store::LEDGER_TAGS);
        let ttl: i64 = c
            .query(crate::redis_conn::Budget::Slow, redis::cmd("TTL").arg(&key))
            .await
            .unwrap();
        assert!((3000..=3600).contains(&ttl), "TTL of {key}: {ttl}");
    }
    let k = q.key("tpm");
    let tpm = [actual(&k, &Span::Sliding(60_000), 30, 100, &[])];

    let r1 = q
        .reserve("r1", &[item(&k, 100, &Span::Sliding(60_000), 50)])
        .await;
    for want in [SettleAnswer::Settled, SettleAnswer::Nothing] {
        let r = q
            .settle("r1", member(&r1), SettleMode::Reserved, &tpm, Some(&bob))
            .await;
        assert_eq!(r.answer, want);
    }
    let r = q
        .settle("ghost", "", SettleMode::Reserved, &tpm, Some(&bob))
        .await;
    assert_eq!(r.answer, SettleAnswer::Nothing);
    for want in [SettleAnswer::Charged, SettleAnswer::Already] {
        let r = q
            .settle("u1", "", SettleMode::Unreserved, &tpm, Some(&bob))
            .await;
        assert_eq!(r.answer, want);
        // the request reserved nothing under this tag: its entry alone
        let r = q
            .settle("l1", "", SettleMode::Unreserved, &[], Some(&anon))
            .await;
        assert_eq!(r.answer, want);
    }

    let read = s
        .ledger_read(the_day, the_day, Some(&format!("led{salt}")))
        .await
        .unwrap();
    let mut twice = bob.figures;
    twice.add(&bob.figures);
    assert_eq!(read, [(anon.dims, anon.figures), (bob.dims, twice)]);
}
