//! Group commit per hash tag, for the Redis store. A reservation of a tag
//! goes out at once when no call of that tag carrying reservations is in
//! flight from this replica; otherwise it waits for that call to answer and
//! leaves with every other operation of the tag that gathered meanwhile, in
//! one call (no timer: a lone request never waits for company, nor for the
//! settlement of the request before it). A settlement is off the request
//! path: it waits for the next call carrying reservations, or, when none
//! comes within [`SETTLE_LINGER`] and no call of the tag is in flight, goes
//! in a call of settlements only. So a client that sends again at once has
//! its previous request's settlement ride with its next reservation, and at
//! most two calls of a tag are in flight: one carrying reservations, one of
//! settlements only. A call holds at most [`MAX_OPS`] operations and about
//! [`MAX_BYTES`] of arguments, all of one tag (one cluster slot); settlements
//! go first, then reservations in the order they came (what the settlements
//! give back counts for them). A call that fails fails each of its
//! operations as a call of its own would. A reservation admitted for a
//! caller that went away meanwhile (its request future was dropped) is given
//! back with the tag's next call.

use super::calls;
use super::ops::{Answer, Op, ReserveAnswer};
use crate::redis_conn::{RedisConn, Result, StateError};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Operations per call at most.
pub const MAX_OPS: usize = 64;
/// Settlements per call at most while reservations wait (so that these
/// always find room); also the most a settle queue worker sends at once.
pub const SETTLE_SHARE: usize = MAX_OPS / 2;
/// Argument bytes per call, about (as [`Op::size`] counts them), at most;
/// a call always takes its first submission.
pub const MAX_BYTES: usize = 64 * 1024;
/// How long settlements wait for a call carrying reservations to ride with
/// before they go on their own (the timer's resolution: 1 ms).
pub const SETTLE_LINGER: std::time::Duration = std::time::Duration::from_millis(1);

/// What a line does next.
enum Step {
    /// send these submissions (`true`: the call carries reservations)
    Call(bool, Vec<Waiting>),
    /// wait [`SETTLE_LINGER`], then see
    Linger,
}

/// Each operation's answer, or the failure of the call that carried them.
pub type Reply = Result<Vec<Result<Answer>>>;

/// One submission: operations answered together.
struct Waiting {
    ops: Vec<Op>,
    bytes: usize,
    /// None: nobody waits for the answer (a give-back)
    tx: Option<oneshot::Sender<Reply>>,
}

impl Waiting {
    fn is_settle(&self) -> bool {
        matches!(self.ops.first(), Some(Op::Settle(_)))
    }
}

/// The calls of one tag in flight, and the submissions waiting for them.
#[derive(Default)]
struct Line {
    settles: VecDeque<Waiting>,
    reserves: VecDeque<Waiting>,
    /// a call carrying reservations is in flight
    reserving: bool,
    /// a call of settlements only is in flight
    settling: bool,
    /// settlements wait a moment for a call carrying reservations
    lingering: bool,
}

impl Line {
    fn push(&mut self, w: Waiting) {
        match w.is_settle() {
            true => self.settles.push_back(w),
            false => self.reserves.push_back(w),
        }
    }

    /// What to do now: send the waiting reservations when none are in
    /// flight (with the waiting settlements first); else let the waiting
    /// settlements linger when no call of the tag is in flight or lingering.
    fn start(&mut self) -> Option<Step> {
        if !self.reserving && !self.reserves.is_empty() {
            self.reserving = true;
            return Some(Step::Call(true, self.take()));
        }
        if !self.reserving && !self.settling && !self.lingering && !self.settles.is_empty() {
            self.lingering = true;
            return Some(Step::Linger);
        }
        None
    }

    /// The linger ended: the settlements still waiting go on their own, when
    /// no call of the tag is in flight (else they wait for it).
    fn lingered(&mut self) -> Option<Step> {
        self.lingering = false;
        if !self.reserving && !self.settling && !self.settles.is_empty() {
            self.settling = true;
            return Some(Step::Call(false, self.take()));
        }
        self.start()
    }

    fn is_idle(&self) -> bool {
        !self.reserving
            && !self.settling
            && !self.lingering
            && self.settles.is_empty()
            && self.reserves.is_empty()
    }

    /// The next call's submissions: settlements first (at most
    /// [`SETTLE_SHARE`] while reservations wait, so these are never held
    /// back), then reservations, each in the order they came.
    fn take(&mut self) -> Vec<Waiting> {
        let mut n = (0, 0);
        let mut settles = Vec::new();
        let mut reserves = Vec::new();
        let half = match self.reserves.is_empty() {
            true => MAX_OPS,
            false => SETTLE_SHARE,
        };
        take_from(&mut self.settles, &mut settles, &mut n, half);
        take_from(&mut self.reserves, &mut reserves, &mut n, MAX_OPS);
        take_from(&mut self.settles, &mut settles, &mut n, MAX_OPS);
        settles.append(&mut reserves);
        settles
    }
}

/// Moves submissions from the front of `queue` to `out` while the call
/// (`n`: operations and bytes so far) stays within `cap` operations and
/// [`MAX_BYTES`]; the first submission of a call always goes.
fn take_from(
    queue: &mut VecDeque<Waiting>,
    out: &mut Vec<Waiting>,
    n: &mut (usize, usize),
    cap: usize,
) {
    while let Some(w) = queue.front() {
        let fits = n.0 == 0 || (n.0 + w.ops.len() <= cap && n.1 + w.bytes <= MAX_BYTES);
        if !fits {
            return;
        }
        n.0 += w.ops.len();
        n.1 += w.bytes;
        if let Some(w) = queue.pop_front() {
            out.push(w);
        }
    }
}

/// The lines of every tag with a call in flight (a tag is here exactly
/// while one is), and what the calls carried.
#[derive(Default)]
pub struct Lines {
    map: Mutex<HashMap<String, Line>>,
    /// calls sent, and the operations they carried
    pub calls: AtomicU64,
    pub ops: AtomicU64,
}

impl Lines {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Line>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `w` for the next call of `tag`: what to start now, if
    /// anything (see [`Line::start`]).
    fn join(&self, tag: &str, w: Waiting) -> Option<Step> {
        let mut map = self.lock();
        let line = match map.get_mut(tag) {
            Some(line) => line,
            None => map.entry(tag.to_string()).or_default(),
        };
        line.push(w);
        line.start()
    }

    /// What `tag`'s driver does after `done`: a call answered (`Some(true)`:
    /// it carried reservations; give-backs to send), or a linger ended
    /// (`None`). The tag leaves the map when nothing is in flight, lingers or
    /// waits any more.
    fn next(&self, tag: &str, done: Option<bool>, give_back: Vec<Op>) -> Option<Step> {
        let mut map = self.lock();
        let line = map.get_mut(tag)?;
        if !give_back.is_empty() {
            line.push(waiting(give_back, None));
        }
        let next = match done {
            Some(true) => {
                line.reserving = false;
                line.start()
            }
            Some(false) => {
                line.settling = false;
                line.start()
            }
            None => line.lingered(),
        };
        if line.is_idle() {
            map.remove(tag);
        }
        next
    }
}

fn waiting(ops: Vec<Op>, tx: Option<oneshot::Sender<Reply>>) -> Waiting {
    Waiting {
        bytes: ops.iter().map(Op::size).sum(),
        ops,
        tx,
    }
}

/// What carries one call of operations of a tag to the store.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, tag: &str, ops: &[Op]) -> impl std::future::Future<Output = Reply> + Send;
}

impl Transport for RedisConn {
    async fn send(&self, tag: &str, ops: &[Op]) -> Reply {
        calls::send(self, tag, ops).await
    }
}

/// Sends `ops` of `tag` (all of one kind: one reservation, or settlements)
/// with the next call of the tag, and waits for their answers.
pub async fn call<S: Transport>(lines: &Arc<Lines>, to: &Arc<S>, tag: &str, ops: Vec<Op>) -> Reply {
    let (tx, rx) = oneshot::channel();
    if let Some(first) = lines.join(tag, waiting(ops, Some(tx))) {
        tokio::spawn(drive(lines.clone(), to.clone(), tag.to_string(), first));
    }
    rx.await.unwrap_or_else(|_| {
        Err(StateError::Unavailable(
            "quota call ended unanswered".into(),
        ))
    })
}

/// Ends the line of a tag whose driver stopped before its end (dropped with
/// the runtime, say): what waited in it fails ("ended unanswered") instead
/// of waiting for a call that will never be sent.
struct Driving<'a> {
    lines: &'a Lines,
    tag: &'a str,
    done: bool,
}

impl Drop for Driving<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.lines.lock().remove(self.tag);
        }
    }
}

/// Sends calls of `tag` one after the other (and lingers before calls of
/// settlements only), each with what gathered meanwhile, until there is
/// nothing to do (nothing waits, or what waits waits for the other call in
/// flight).
async fn drive<S: Transport>(lines: Arc<Lines>, to: Arc<S>, tag: String, first: Step) {
    let mut guard = Driving {
        lines: &lines,
        tag: &tag,
        done: false,
    };
    let mut step = Some(first);
    while let Some(s) = step {
        let (reserving, batch) = match s {
            Step::Linger => {
                tokio::time::sleep(SETTLE_LINGER).await;
                step = guard.lines.next(guard.tag, None, Vec::new());
                continue;
            }
            Step::Call(reserving, batch) => (reserving, batch),
        };
        let mut ops = Vec::with_capacity(batch.iter().map(|w| w.ops.len()).sum());
        let mut waiters = Vec::with_capacity(batch.len());
        for w in batch {
            waiters.push((w.tx, w.ops.len()));
            ops.extend(w.ops);
        }
        guard.lines.calls.fetch_add(1, Ordering::Relaxed);
        guard
            .lines
            .ops
            .fetch_add(ops.len() as u64, Ordering::Relaxed);
        let reply = to.send(guard.tag, &ops).await;
        let give_back = answer(reply, waiters, &ops);
        step = guard.lines.next(guard.tag, Some(reserving), give_back);
    }
    guard.done = true;
}

/// Hands each submission its answers; answers the give-backs of the
/// reservations admitted for callers that went away.
fn answer(
    reply: Reply,
    waiters: Vec<(Option<oneshot::Sender<Reply>>, usize)>,
    ops: &[Op],
) -> Vec<Op> {
    let mut give_back = Vec::new();
    let reply = match reply {
        Ok(a) if a.len() != ops.len() => Err(StateError::Rejected(
            "quota call: another number of answers than operations".into(),
        )),
        r => r,
    };
    let mut answers = match reply {
        Ok(a) => a.into_iter(),
        Err(e) => {
            for tx in waiters.into_iter().filter_map(|(tx, _)| tx) {
                let _ = tx.send(Err(e.clone()));
            }
            return give_back;
        }
    };
    let mut start = 0;
    for (tx, n) in waiters {
        let mine: Vec<Result<Answer>> = answers.by_ref().take(n).collect();
        let lost = match tx {
            Some(tx) => tx.send(Ok(mine)).err().and_then(|r| r.ok()),
            None => None,
        };
        for (op, a) in ops[start..start + n].iter().zip(lost.into_iter().flatten()) {
            if let (Op::Reserve(r), Ok(Answer::Reserve(ReserveAnswer::Admitted { member, .. }))) =
                (op, a)
            {
                give_back.push(Op::Settle(Arc::new(r.refund(member))));
            }
        }
        start += n;
    }
    give_back
}

#[cfg(test)]
mod tests {
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
        let first = tokio::spawn({
            let (lines, to) = (lines.clone(), to.clone());
            async move { call(&lines, &to, TAG, reserve("a", 10)).await }
        });
        until(|| to.calls().len() == 1).await;
        let mut later = Vec::new();
        let mut n = 0;
        for ops in [
            reserve("b", 20),
            vec![settle("s1", 5), settle("s2", 5)],
            reserve("c", 30),
        ] {
            n += ops.len();
            let (l, t) = (lines.clone(), to.clone());
            later.push(tokio::spawn(async move { call(&l, &t, TAG, ops).await }));
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
        let settled = tokio::spawn({
            let (lines, to) = (lines.clone(), to.clone());
            async move { call(&lines, &to, TAG, vec![settle("before", 5)]).await }
        });
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
        let spawn = |ops: Vec<Op>| {
            let (lines, to) = (lines.clone(), to.clone());
            tokio::spawn(async move { call(&lines, &to, TAG, ops).await })
        };
        // the previous request's settlement is in flight
        let settling = spawn(vec![settle("before", 5)]);
        until(|| to.calls().len() == 1).await;
        // the next request's reservation goes at once, beside it
        let reserving = spawn(reserve("next", 10));
        until(|| to.calls().len() == 2).await;
        // a settlement waits for both, then goes alone
        let later = spawn(vec![settle("later", 1)]);
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
        let spawn = |ops: Vec<Op>| {
            let (lines, to) = (lines.clone(), to.clone());
            tokio::spawn(async move { call(&lines, &to, TAG, ops).await })
        };
        tasks.push(spawn(reserve("first", 0)));
        until(|| to.calls().len() == 1).await;
        // settle queue workers' groups, then reservations
        for g in 0..4 {
            tasks.push(spawn(
                (0..SETTLE_SHARE)
                    .map(|i| settle(&format!("s{g}-{i}"), 0))
                    .collect(),
            ));
        }
        for i in 0..MAX_OPS {
            tasks.push(spawn(reserve(&format!("r{i}"), 0)));
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
        let first = tokio::spawn({
            let (lines, to) = (lines.clone(), to.clone());
            async move { call(&lines, &to, TAG, reserve("a", 1)).await }
        });
        until(|| to.calls().len() == 1).await;
        let second = tokio::spawn({
            let (lines, to) = (lines.clone(), to.clone());
            async move { call(&lines, &to, TAG, vec![settle("s", 1), settle("t", 1)]).await }
        });
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
        let gone = tokio::spawn({
            let (lines, to) = (lines.clone(), to.clone());
            async move { call(&lines, &to, TAG, reserve("gone", 30)).await }
        });
        until(|| to.calls().len() == 1).await;
        gone.abort();
        let _ = gone.await;
        to.gate.add_permits(10);
        until(|| lines.lock().is_empty()).await;
        assert_eq!(to.calls(), [vec!["r gone"], vec!["s gone"]]);
        let r = call(&lines, &to, TAG, reserve("next", 0)).await.unwrap();
        assert_eq!(used(&r[0]), 0, "the 30 went back");
    }
}
