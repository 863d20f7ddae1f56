//! One quota suite for every store: the memory store runs it as a unit test,
//! standalone Redis and a Redis Cluster run it from the integration tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::store::{
    Actual, Item, QuotaStore, ReserveAnswer, SettleAnswer, SettleCall, SettleMode, Span,
};
use crate::redis_conn::Result;

mod batch;
mod money;

fn item(key: &str, limit: u64, window_ms: u64, amount: u64) -> Item {
    Item {
        key: key.to_string(),
        limit,
        span: Span::Sliding(window_ms),
        amount,
    }
}

/// Settlements of sliding windows without a ledger entry: (key, window ms,
/// amount) each.
trait SettleSliding {
    async fn settle_as_v2(
        &self,
        tag: &str,
        id: &str,
        member: &str,
        tomb_ms: u64,
        mode: SettleMode,
        actual: &[(String, u64, u64)],
    ) -> Result<SettleAnswer>;
}

impl SettleSliding for QuotaStore {
    async fn settle_as_v2(
        &self,
        tag: &str,
        id: &str,
        member: &str,
        tomb_ms: u64,
        mode: SettleMode,
        actual: &[(String, u64, u64)],
    ) -> Result<SettleAnswer> {
        let actual: Vec<Actual> = actual
            .iter()
            .map(|(key, ms, amount)| Actual {
                key: key.clone(),
                span: Span::Sliding(*ms),
                amount: *amount,
                limit: 1 << 53,
                alerts: Vec::new().into(),
            })
            .collect();
        let call = SettleCall {
            tag,
            id,
            member,
            tomb_ms,
            mode,
            actual: &actual,
            ledger: None,
        };
        Ok(self.settle(&call).await?.answer)
    }
}

fn used(a: &ReserveAnswer) -> Vec<u64> {
    match a {
        ReserveAnswer::Admitted { used, .. } => used.iter().map(|u| u.used).collect(),
        ReserveAnswer::Refused { .. } => panic!("refused: {a:?}"),
    }
}

fn member(a: &ReserveAnswer) -> &str {
    match a {
        ReserveAnswer::Admitted { member, .. } => member,
        ReserveAnswer::Refused { .. } => panic!("refused: {a:?}"),
    }
}

/// What window `key` holds, read by name (0 when there is none).
async fn usage_of(s: &QuotaStore, tag: &str, key: &str) -> u64 {
    let p = s
        .usage(tag, 60_000, &[key.to_string()], 0, None)
        .await
        .unwrap();
    assert_eq!(p.windows.len(), 1, "{p:?}");
    assert_eq!(p.windows[0].0, key);
    p.windows[0].1
}

/// Every window the index of `tag` lists, `count` at a time: (keys in the
/// order listed, pages read).
async fn pages(s: &QuotaStore, tag: &str, count: usize) -> (Vec<String>, usize) {
    let (mut keys, mut pages, mut after) = (Vec::new(), 0, None);
    loop {
        let p = s
            .usage(tag, 60_000, &[], count, after.as_ref())
            .await
            .unwrap();
        assert!(p.windows.len() <= count, "{p:?}");
        keys.extend(p.windows.into_iter().map(|w| w.0));
        pages += 1;
        match p.next {
            Some(a) => after = Some(a),
            None => return (keys, pages),
        }
    }
}

/// Runs every check against `s`; `run` names keys with `salt` so several runs
/// can share one store.
pub async fn run(s: &QuotaStore, salt: &str) {
    let tag = format!("t:conf{salt}");
    let k1 = format!("{{{tag}}}:q:t:conf:tpm:a");
    let k2 = format!("{{{tag}}}:q:t:conf:rpm:a");
    let min = 60_000;

    // admit up to the limit, all or nothing across two quotas
    let r1 = s
        .reserve(
            &tag,
            "r1",
            10_000,
            60_000,
            &[item(&k1, 100, min, 60), item(&k2, 2, min, 1)],
        )
        .await
        .unwrap();
    assert_eq!(used(&r1), vec![60, 1]);
    let a = s
        .reserve(
            &tag,
            "r2",
            10_000,
            60_000,
            &[item(&k1, 100, min, 50), item(&k2, 2, min, 1)],
        )
        .await
        .unwrap();
    match a {
        ReserveAnswer::Refused {
            index,
            retry_ms,
            used,
            ..
        } => {
            assert_eq!(index, 0);
            assert_eq!(used, 60);
            let r = retry_ms.expect("fits once r1 leaves the window");
            assert!(r > 0 && r <= min + 1000, "{r}");
        }
        other => panic!("expected a refusal: {other:?}"),
    }
    assert_eq!(
        usage_of(s, &tag, &k2).await,
        1,
        "refusal left nothing behind"
    );

    // more than the limit alone: refused without a retry time
    let a = s
        .reserve(&tag, "big", 10_000, 60_000, &[item(&k1, 100, min, 101)])
        .await
        .unwrap();
    assert!(
        matches!(a, ReserveAnswer::Refused { retry_ms: None, .. }),
        "{a:?}"
    );

    // settle lowers to the real usage, once
    let real = vec![(k1.clone(), min, 25), (k2.clone(), min, 1)];
    let r = s
        .settle_as_v2(&tag, "r1", member(&r1), 60_000, SettleMode::Reserved, &real)
        .await
        .unwrap();
    assert_eq!(r, SettleAnswer::Settled);
    assert_eq!(usage_of(s, &tag, &k1).await, 25);
    let r = s
        .settle_as_v2(&tag, "r1", member(&r1), 60_000, SettleMode::Reserved, &real)
        .await
        .unwrap();
    assert_eq!(
        r,
        SettleAnswer::Nothing,
        "a repeated settle changes nothing"
    );
    assert_eq!(usage_of(s, &tag, &k1).await, 25);

    // settle above the reservation charges the difference
    let r3 = s
        .reserve(&tag, "r3", 10_000, 60_000, &[item(&k1, 100, min, 10)])
        .await
        .unwrap();
    s.settle_as_v2(
        &tag,
        "r3",
        member(&r3),
        60_000,
        SettleMode::Reserved,
        &[(k1.clone(), min, 30)],
    )
    .await
    .unwrap();
    assert_eq!(usage_of(s, &tag, &k1).await, 55);

    // usage admitted without the store is charged once
    let late = vec![(k1.clone(), min, 5)];
    let r = s
        .settle_as_v2(&tag, "u1", "", 60_000, SettleMode::Unreserved, &late)
        .await
        .unwrap();
    assert_eq!(r, SettleAnswer::Charged);
    let r = s
        .settle_as_v2(&tag, "u1", "", 60_000, SettleMode::Unreserved, &late)
        .await
        .unwrap();
    assert_eq!(r, SettleAnswer::Already);
    assert_eq!(usage_of(s, &tag, &k1).await, 60);

    // an expired lease gives the reservation back; a late settle charges the usage
    let dead = s
        .reserve(&tag, "dead", 30, 60_000, &[item(&k1, 100, min, 40)])
        .await
        .unwrap();
    assert_eq!(usage_of(s, &tag, &k1).await, 100);
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    let r4 = s
        .reserve(&tag, "r4", 10_000, 60_000, &[item(&k1, 100, min, 1)])
        .await
        .unwrap();
    assert_eq!(used(&r4), vec![61], "the dead replica's 40 came back");
    // settled late once: a repeat finds nothing to settle, on every store
    // (the memory store answered `Already`: found by tests/tests/quota_model.rs)
    for want in [SettleAnswer::LateCharged, SettleAnswer::Nothing] {
        let r = s
            .settle_as_v2(
                &tag,
                "dead",
                member(&dead),
                60_000,
                SettleMode::Reserved,
                &[(k1.clone(), min, 7)],
            )
            .await
            .unwrap();
        assert_eq!(r, want);
        assert_eq!(usage_of(s, &tag, &k1).await, 68);
    }

    // reset empties the window
    s.reset(std::slice::from_ref(&k1)).await.unwrap();
    assert_eq!(usage_of(s, &tag, &k1).await, 0);
    s.settle_as_v2(
        &tag,
        "r4",
        member(&r4),
        60_000,
        SettleMode::Reserved,
        &[(k1.clone(), min, 0)],
    )
    .await
    .unwrap();
    assert_eq!(
        usage_of(s, &tag, &k1).await,
        0,
        "no negative bucket after a reset"
    );

    // a reservation from before a reset never moves the new window's buckets
    let before = s
        .reserve(&tag, "before", 10_000, 60_000, &[item(&k1, 100, min, 50)])
        .await
        .unwrap();
    s.reset(std::slice::from_ref(&k1)).await.unwrap();
    s.reserve(&tag, "after", 10_000, 60_000, &[item(&k1, 100, min, 50)])
        .await
        .unwrap();
    s.settle_as_v2(
        &tag,
        "before",
        member(&before),
        60_000,
        SettleMode::Reserved,
        &[(k1.clone(), min, 10)],
    )
    .await
    .unwrap();
    assert_eq!(
        usage_of(s, &tag, &k1).await,
        50,
        "the new window keeps the reservation made after the reset"
    );

    // a window slides: what was used early still counts a little later, then leaves
    let k3 = format!("{{{tag}}}:q:t:conf:tps:a");
    let sec = 1000;
    s.reserve(&tag, "w1", 10_000, 60_000, &[item(&k3, 10, sec, 10)])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let a = s
        .reserve(&tag, "w2", 10_000, 60_000, &[item(&k3, 10, sec, 1)])
        .await
        .unwrap();
    assert!(matches!(a, ReserveAnswer::Refused { .. }), "{a:?}");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let a = s
        .reserve(&tag, "w3", 10_000, 60_000, &[item(&k3, 10, sec, 10)])
        .await
        .unwrap();
    assert_eq!(
        used(&a),
        vec![10],
        "the whole limit is back after one window"
    );

    windows_end_and_the_index_pages(s, salt).await;
    money::run(s, salt).await;
    batch::run(s, salt).await;
}

/// Windows counted by a client's value (here 25 addresses): the tag's index
/// lists them page by page, each once; a window ends two windows and a bucket
/// after its newest charge, and is listed no more.
async fn windows_end_and_the_index_pages(s: &QuotaStore, salt: &str) {
    let tag = format!("r:pages{salt}");
    let w = 300; // ends 2 * 300 + 5 ms after its newest charge
    let mut keys: Vec<String> = (0..25)
        .map(|i| format!("{{{tag}}}:q:r:pages:per-ip:10.0.0.{i}"))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        let id = format!("p{i}");
        let a = s
            .reserve(&tag, &id, 10_000, 60_000, &[item(k, 10, w, 2)])
            .await
            .unwrap();
        let real = [(k.clone(), w, 1)];
        let r = s
            .settle_as_v2(&tag, &id, member(&a), 60_000, SettleMode::Reserved, &real)
            .await
            .unwrap();
        assert_eq!(r, SettleAnswer::Settled);
    }
    let (mut listed, n) = pages(s, &tag, 10).await;
    assert_eq!(n, 3, "25 windows, 10 a page");
    listed.sort();
    keys.sort();
    assert_eq!(listed, keys, "every window once");
    // windows asked for by name come first, at 0 when there is none
    let none = format!("{{{tag}}}:q:r:pages:per-ip:10.9.9.9");
    let p = s
        .usage(&tag, 60_000, &[none.clone(), keys[0].clone()], 1, None)
        .await
        .unwrap();
    assert_eq!(p.windows.len(), 3, "{p:?}");
    assert_eq!(p.windows[0], (none, 0, 0));
    assert_eq!((&p.windows[1].0, p.windows[1].1), (&keys[0], 1));
    assert!(p.next.is_some());

    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let (listed, _) = pages(s, &tag, 10).await;
    assert!(
        listed.is_empty(),
        "ended windows are not listed: {listed:?}"
    );
    assert_eq!(usage_of(s, &tag, &keys[0]).await, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::memory::MemoryQuotas;

    #[tokio::test]
    async fn memory_store_conforms() {
        let s = super::QuotaStore::Memory(Default::default());
        super::run(&s, "").await;
    }

    /// Usage settled beyond a reservation of 0 counts in the reservation's
    /// bucket and leaves the window with it, as the Redis scripts count it
    /// (the memory store charged it in the bucket of the settle, where it
    /// counted up to a window longer: found by tests/tests/quota_model.rs).
    #[test]
    fn usage_beyond_a_reservation_of_0_counts_in_its_bucket() {
        let m = MemoryQuotas::default();
        let k = "{t:a}:q:t:a:q:a";
        // a 6 s window: buckets of 100 ms; the reservation in bucket 10,000
        let now = 1_000_000;
        let a = m.reserve("t:a", "r", 60_000, 60_000, &[item(k, 100, 6000, 0)], now);
        assert!(matches!(a, ReserveAnswer::Admitted { .. }));
        let actual = [Actual {
            key: k.into(),
            span: Span::Sliding(6000),
            amount: 4,
            limit: 100,
            alerts: Vec::new().into(),
        }];
        let call = SettleCall {
            tag: "t:a",
            id: "r",
            member: "",
            tomb_ms: 60_000,
            mode: SettleMode::Reserved,
            actual: &actual,
            ledger: None,
        };
        // settled 59 buckets later, while bucket 10,000 still counts
        assert_eq!(m.settle(&call, now + 5_900).answer, SettleAnswer::Settled);
        let used = |at| match m.reserve(
            "t:a",
            &format!("p{at}"),
            60_000,
            60_000,
            &[item(k, 100, 6000, 0)],
            at,
        ) {
            ReserveAnswer::Admitted { used, .. } => used[0].used,
            other => panic!("{other:?}"),
        };
        assert_eq!(used(now + 5_950), 4);
        // 61 buckets after the reservation, its bucket has left the window
        assert_eq!(used(now + 6_100), 0);
    }

    /// 2,000 windows of one-second quotas: all held while they count, all gone
    /// after one sweep once they ended; a reserve removes a few itself.
    #[test]
    fn memory_store_sweeps_ended_windows() {
        let m = MemoryQuotas::default();
        let now = 1_000_000;
        for i in 0..2000 {
            let k = format!("{{r:chat}}:q:r:chat:per-team:sha256:{i:032x}");
            let a = m.reserve(
                "r:chat",
                &format!("r{i}"),
                5000,
                60_000,
                &[item(&k, 5, 1000, 1)],
                now,
            );
            assert!(matches!(a, ReserveAnswer::Admitted { .. }));
            let actual = [Actual {
                key: k,
                span: Span::Sliding(1000),
                amount: 1,
                limit: 5,
                alerts: Vec::new().into(),
            }];
            let call = SettleCall {
                tag: "r:chat",
                id: &format!("r{i}"),
                member: "",
                tomb_ms: 60_000,
                mode: SettleMode::Reserved,
                actual: &actual,
                ledger: None,
            };
            m.settle(&call, now);
        }
        assert_eq!(m.windows(), 2000);
        // still counting two windows later (ends at now + 2000 + 17)
        m.sweep(now + 2000, 60_000);
        assert_eq!(m.windows(), 2000);
        let k = "{r:chat}:q:r:chat:per-team:other".to_string();
        m.reserve(
            "r:chat",
            "x",
            5000,
            60_000,
            &[item(&k, 5, 1000, 1)],
            now + 2100,
        );
        assert_eq!(m.windows(), 2000 + 1 - 64, "a reserve sweeps 64");
        m.sweep(now + 2100, 60_000);
        assert_eq!(m.windows(), 1);
    }
}
