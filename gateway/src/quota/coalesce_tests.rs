//! Tests of the group commit per hash tag (`coalesce.rs`): a gated store
//! shows what each call carried.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::quota::memory::MemoryQuotas;
use crate::quota::ops::{Actual, Item, ReserveOp, SettleMode, SettleOp, Span};
use std::sync::atomic::AtomicBool;
use tokio::sync::Semaphore;

const TAG: &str = "t:a";
const KEY: &str = "{t:a}:q:t:a:tpm:a";

/// The memory store behind a gate: each call waits for a permit, and
/// the test sees what each call carried.
struct Gated {
    store: MemoryQuotas,
    gate: Semaphore,
    calls: Mutex<Vec<Vec<String>>>,
    fail: AtomicBool,
}

impl Default for Gated {
    fn default() -> Self {
        Gated {
            store: MemoryQuotas::default(),
            gate: Semaphore::new(0),
            calls: Mutex::default(),
            fail: AtomicBool::new(false),
        }
    }
}

impl Transport for Gated {
    async fn send(&self, tag: &str, ops: &[Op]) -> Reply {
        let seen = ops
            .iter()
            .map(|op| match op {
                Op::Reserve(r) => format!("r {}", r.id),
                Op::Settle(s) => format!("s {}", s.id),
            })
            .collect();
        self.calls.lock().unwrap().push(seen);
        self.gate.acquire().await.unwrap().forget();
        if self.fail.load(Ordering::Relaxed) {
            return Err(StateError::Unavailable("down".into()));
        }
        let now = crate::quota::now_ms();
        Ok(self
            .store
            .batch(tag, ops, now)
            .into_iter()
            .map(Ok)
            .collect())
    }
}

impl Gated {
    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().unwrap().clone()
    }
}

fn reserve(id: &str, amount: u64) -> Vec<Op> {
    vec![Op::Reserve(Arc::new(ReserveOp {
        id: id.into(),
        lease_ms: 60_000,
        tomb_ms: 60_000,
        items: vec![Item {
            key: KEY.into(),
            limit: 100,
            span: Span::Sliding(60_000),
            amount,
        }],
    }))]
}

fn settle(id: &str, amount: u64) -> Op {
    Op::Settle(Arc::new(SettleOp {
        id: id.into(),
        member: String::new(),
        tomb_ms: 60_000,
        mode: SettleMode::Unreserved,
        actual: vec![Actual {
            key: KEY.into(),
            span: Span::Sliding(60_000),
            amount,
            limit: 100,
            alerts: Arc::from(Vec::new()),
        }],
        ledger: None,
    }))
}

/// Operations waiting behind the call in flight of `TAG`.
fn waiting(lines: &Lines) -> usize {
    lines.lock().get(TAG).map_or(0, |l| {
        l.settles
            .iter()
            .chain(&l.reserves)
            .map(|w| w.ops.len())
            .sum()
    })
}

/// Polls `what` every 0.1 ms of the (paused) clock, up to 100 ms.
async fn until(what: impl Fn() -> bool) {
    for _ in 0..1000 {
        if what() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_micros(100)).await;
    }
    panic!("never happened");
}

/// `ops` sent for `TAG` from a task of their own, so that the test can watch
/// them wait.
fn spawn_call(lines: &Arc<Lines>, to: &Arc<Gated>, ops: Vec<Op>) -> tokio::task::JoinHandle<Reply> {
    let (lines, to) = (lines.clone(), to.clone());
    tokio::spawn(async move { call(&lines, &to, TAG, ops).await })
}

fn used(a: &Result<Answer>) -> u64 {
    match a {
        Ok(Answer::Reserve(ReserveAnswer::Admitted { used, .. })) => used[0].used,
        other => panic!("not admitted: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_lone_operation_goes_at_once() {
    let (lines, to) = (Arc::new(Lines::default()), Arc::new(Gated::default()));
    to.gate.add_permits(1);
    let r = call(&lines, &to, TAG, reserve("a", 10)).await.unwrap();
    assert_eq!(used(&r[0]), 10);
    assert_eq!(to.calls(), [["r a"]]);
    assert!(lines.lock().is_empty(), "no call in flight any more");
}

#[tokio::test(start_paused = true)]
async fn operations_ready_while_a_call_is_in_flight_share_the_next_settlements_first() {
    let (lines, to) = (Arc::new(Lines::default()), Arc::new(Gated::default()));
    let first = spawn_call(&lines, &to, reserve("a", 10));
    until(|| to.calls().len() == 1).await;
    let mut later = Vec::new();
    let mut n = 0;
    for ops in [
        reserve("b", 20),
        vec![settle("s1", 5), settle("s2", 5)],
        reserve("c", 30),
    ] {
        n += ops.len();
        later.push(spawn_call(&lines, &to, ops));
        until(|| waiting(&lines) == n).await;
    }
    assert_eq!(waiting(&lines), 4);
    assert_eq!(to.calls().len(), 1, "they wait for the call in flight");
    to.gate.add_permits(2);
    assert_eq!(used(&first.await.unwrap().unwrap()[0]), 10);
    let answers: Vec<Vec<Result<Answer>>> = {
        let mut v = Vec::new();
        for t in later {
            v.push(t.await.unwrap().unwrap());
        }
        v
    };
    assert_eq!(
        to.calls(),
        [vec!["r a"], vec!["s s1", "s s2", "r b", "r c"]],
        "one call for all that gathered, settlements first"
    );
    // in that order: 10 + 5 + 5, then b, then c
    assert_eq!(used(&answers[0][0]), 40);
    assert_eq!(answers[1].len(), 2);
    assert_eq!(used(&answers[2][0]), 70);
    assert!(lines.lock().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_settlement_waits_a_moment_for_a_reservation_to_ride_with() {
    let (lines, to) = (Arc::new(Lines::default()), Arc::new(Gated::default()));
    to.gate.add_permits(10);
    // the request before: its settlement comes first and lingers
    let settled = spawn_call(&lines, &to, vec![settle("before", 5)]);
    until(|| waiting(&lines) == 1).await;
    assert!(to.calls().is_empty(), "no call yet");
    // the next request's reservation takes it along, and waits for nothing
    let r = call(&lines, &to, TAG, reserve("next", 10)).await.unwrap();
    assert_eq!(used(&r[0]), 15);
    settled.await.unwrap().unwrap();
    assert_eq!(to.calls(), [vec!["s before", "r next"]]);
    // with no reservation to come, a settlement goes alone after the linger
    let t = tokio::time::Instant::now();
    call(&lines, &to, TAG, vec![settle("alone", 1)])
        .await
        .unwrap();
    assert!(t.elapsed() >= SETTLE_LINGER, "{:?}", t.elapsed());
    assert_eq!(to.calls().last().unwrap(), &["s alone"]);
    until(|| lines.lock().is_empty()).await;
}

#[tokio::test(start_paused = true)]
async fn a_reservation_does_not_wait_for_a_call_of_settlements_only() {
    let (lines, to) = (Arc::new(Lines::default()), Arc::new(Gated::default()));
    // the previous request's settlement is in flight
    let settling = spawn_call(&lines, &to, vec![settle("before", 5)]);
    until(|| to.calls().len() == 1).await;
    // the next request's reservation goes at once, beside it
    let reserving = spawn_call(&lines, &to, reserve("next", 10));
    until(|| to.calls().len() == 2).await;
    // a settlement waits for both, then goes alone
    let later = spawn_call(&lines, &to, vec![settle("later", 1)]);
    until(|| waiting(&lines) == 1).await;
    to.gate.add_permits(3);
    settling.await.unwrap().unwrap();
    reserving.await.unwrap().unwrap();
    later.await.unwrap().unwrap();
    assert_eq!(
        to.calls(),
        [vec!["s before"], vec!["r next"], vec!["s later"]]
    );
    assert!(lines.lock().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_call_holds_at_most_max_ops_and_reservations_are_not_held_back() {
    let (lines, to) = (Arc::new(Lines::default()), Arc::new(Gated::default()));
    let mut tasks = Vec::new();
    tasks.push(spawn_call(&lines, &to, reserve("first", 0)));
    until(|| to.calls().len() == 1).await;
    // settle queue workers' groups, then reservations
    for g in 0..4 {
        tasks.push(spawn_call(
            &lines,
            &to,
            (0..SETTLE_SHARE)
                .map(|i| settle(&format!("s{g}-{i}"), 0))
                .collect(),
        ));
    }
    for i in 0..MAX_OPS {
        tasks.push(spawn_call(&lines, &to, reserve(&format!("r{i}"), 0)));
    }
    until(|| waiting(&lines) == 4 * SETTLE_SHARE + MAX_OPS).await;
    to.gate.add_permits(100);
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let calls = to.calls();
    assert!(calls.iter().all(|c| c.len() <= MAX_OPS), "{calls:?}");
    // the second call: the first settlement group, then reservations
    let second = &calls[1];
    assert_eq!(second.len(), MAX_OPS, "{second:?}");
    assert!(second[0].starts_with("s s0-"), "{second:?}");
    assert!(second[SETTLE_SHARE].starts_with("r r0"), "{second:?}");
    assert_eq!(
        calls.iter().map(Vec::len).sum::<usize>(),
        1 + 4 * SETTLE_SHARE + MAX_OPS
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_call_fails_each_of_its_operations() {
    let (lines, to) = (Arc::new(Lines::default()), Arc::new(Gated::default()));
    to.fail.store(true, Ordering::Relaxed);
    let first = spawn_call(&lines, &to, reserve("a", 1));
    until(|| to.calls().len() == 1).await;
    let second = spawn_call(&lines, &to, vec![settle("s", 1), settle("t", 1)]);
    until(|| waiting(&lines) == 2).await;
    to.gate.add_permits(2);
    for r in [first.await.unwrap(), second.await.unwrap()] {
        assert!(matches!(r, Err(StateError::Unavailable(_))), "{r:?}");
    }
    assert_eq!(to.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_reservation_whose_caller_went_away_is_given_back() {
    let (lines, to) = (Arc::new(Lines::default()), Arc::new(Gated::default()));
    let gone = spawn_call(&lines, &to, reserve("gone", 30));
    until(|| to.calls().len() == 1).await;
    gone.abort();
    let _ = gone.await;
    to.gate.add_permits(10);
    until(|| lines.lock().is_empty()).await;
    assert_eq!(to.calls(), [vec!["r gone"], vec!["s gone"]]);
    let r = call(&lines, &to, TAG, reserve("next", 0)).await.unwrap();
    assert_eq!(used(&r[0]), 0, "the 30 went back");
}
