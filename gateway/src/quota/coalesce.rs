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
#[path = "coalesce_tests.rs"]
mod tests;
