//! One quota suite for every store: the memory store runs it as a unit test,
//! standalone Redis and a Redis Cluster run it from the integration tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::store::{Item, QuotaStore, ReserveAnswer, SettleAnswer, SettleMode};

fn item(key: &str, limit: u64, window_ms: u64, amount: u64) -> Item {
    Item {
        key: key.to_string(),
        limit,
        window_ms,
        amount,
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

async fn usage_of(s: &QuotaStore, tag: &str, key: &str) -> u64 {
    s.usage(tag, 60_000)
        .await
        .unwrap()
        .into_iter()
        .find(|(k, _, _)| k == key)
        .map_or(0, |(_, u, _)| u)
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
        .settle(&tag, "r1", member(&r1), 60_000, SettleMode::Reserved, &real)
        .await
        .unwrap();
    assert_eq!(r, SettleAnswer::Settled);
    assert_eq!(usage_of(s, &tag, &k1).await, 25);
    let r = s
        .settle(&tag, "r1", member(&r1), 60_000, SettleMode::Reserved, &real)
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
    s.settle(
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
        .settle(&tag, "u1", "", 60_000, SettleMode::Unreserved, &late)
        .await
        .unwrap();
    assert_eq!(r, SettleAnswer::Charged);
    let r = s
        .settle(&tag, "u1", "", 60_000, SettleMode::Unreserved, &late)
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
    let r = s
        .settle(
            &tag,
            "dead",
            member(&dead),
            60_000,
            SettleMode::Reserved,
            &[(k1.clone(), min, 7)],
        )
        .await
        .unwrap();
    assert_eq!(r, SettleAnswer::LateCharged);
    assert_eq!(usage_of(s, &tag, &k1).await, 68);

    // reset empties the window
    s.reset(std::slice::from_ref(&k1)).await.unwrap();
    assert_eq!(usage_of(s, &tag, &k1).await, 0);
    s.settle(
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
    s.settle(
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
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_conforms() {
        let s = super::QuotaStore::Memory(Default::default());
        super::run(&s, "").await;
    }
}
