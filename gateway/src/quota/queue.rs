//! Settlements bound for Redis: queued without waiting (they are made from
//! `Drop` and from the end of streams), sent by a few worker tasks (each
//! takes the oldest settlement and the others of its hash tag that are
//! ready, up to a call's worth, and sends them in one call: `coalesce`), and
//! kept (bounded, oldest dropped and counted) while Redis cannot be reached, so
//! usage from a short outage is still charged when it returns. A settlement
//! whose node (the server, or its cluster master) is known to be unreachable is
//! set aside until that node is back, while the others' are sent; when a node
//! comes back the workers send at once. The queue also counts, by hash tag, the
//! settlements it holds of usage admitted without Redis (`unlanded`): admission
//! keeps the outage policy for a tag until they have landed.

use super::alerts::Alerts;
use super::coalesce::{MAX_BYTES, MAX_OPS, SETTLE_SHARE};
use super::held::Windows;
use super::ledger::day_number;
use super::store::{QuotaStore, SettleMode, SettleOp};
use crate::redis_conn::reach::tag_slot;
use dashmap::DashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// One settlement of one hash tag.
#[derive(Debug, Clone)]
pub struct Job {
    pub tag: String,
    /// what the store is asked (kept until it answered)
    pub op: Arc<SettleOp>,
    /// the quotas of `op.actual` when one has a calendar window (its period
    /// is taken when the job is sent; alerts need them), else empty
    pub items: Windows,
    /// usage admitted while its node was unreachable: counted in `unlanded`
    /// (usage admitted while earlier usage was landing is not, or admission
    /// under a steady load would wait for itself)
    pub gates: bool,
}

/// A job with the hash slot of its tag.
struct Queued {
    job: Job,
    slot: u16,
}

/// How far past the oldest ready job a worker looks for others of its tag.
const LOOK_AHEAD: usize = 4 * MAX_OPS;

#[derive(Default)]
struct Jobs {
    ready: VecDeque<Queued>,
    /// jobs whose node is known to be unreachable, oldest first
    parked: VecDeque<Queued>,
}

impl Jobs {
    fn len(&self) -> usize {
        self.ready.len() + self.parked.len()
    }

    /// Parked jobs whose node is reachable again (all of them when
    /// `everyone`) go back before the ready ones (they are older), in order,
    /// those that hold a tag's admission (usage served without Redis) first;
    /// the others stay parked.
    fn unpark(&mut self, everyone: bool, down: impl Fn(u16) -> bool) {
        if self.parked.is_empty() {
            return;
        }
        let mut still = VecDeque::new();
        let mut back = Vec::new();
        for q in self.parked.drain(..) {
            if everyone || !down(q.slot) {
                back.push(q);
            } else {
                still.push_back(q);
            }
        }
        self.parked = still;
        // usage served without Redis first (admission on its tag waits for
        // it), then the rest (the ledger's entries among them), each in order
        let (gating, rest): (Vec<Queued>, Vec<Queued>) = back
            .into_iter()
            .partition(|q| q.job.op.mode == SettleMode::Unreserved && q.job.gates);
        for q in gating.into_iter().chain(rest).rev() {
            self.ready.push_front(q);
        }
    }
}

pub struct SettleQueue {
    jobs: Mutex<Jobs>,
    cap: usize,
    wake: Notify,
    /// jobs taken by a worker and not finished
    busy: AtomicUsize,
    /// shutting down: workers try Redis even for nodes marked unreachable
    /// (nothing else will clear the mark any more)
    draining: AtomicBool,
    /// settlements of usage admitted without Redis (`Unreserved`) queued or
    /// being sent, by hash tag, and their sum
    unlanded: DashMap<String, usize>,
    unlanded_total: AtomicUsize,
    pub dropped: AtomicU64,
    pub retried: AtomicU64,
    pub settled: AtomicU64,
    /// the last ledger day (days since 1970) each hash tag was registered
    /// for in the store's list of ledger tags, by this replica
    ledger_tags: DashMap<String, u64>,
}

/// Worker tasks sending settlements concurrently.
const WORKERS: usize = 16;
/// Pause before retrying a failed settlement, and between looks at the set-aside
/// ones (a node coming back wakes the workers sooner).
const RETRY_PAUSE: Duration = Duration::from_millis(250);

impl SettleQueue {
    pub fn new(cap: usize) -> SettleQueue {
        SettleQueue {
            jobs: Mutex::new(Jobs::default()),
            cap: cap.max(1),
            wake: Notify::new(),
            busy: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            unlanded: DashMap::new(),
            unlanded_total: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            ledger_tags: DashMap::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Settlements of usage admitted without Redis that this replica still
    /// holds for hash tag `tag` (queued, set aside or being sent).
    pub fn unlanded(&self, tag: &str) -> usize {
        if self.unlanded_total.load(Ordering::Relaxed) == 0 {
            return 0;
        }
        self.unlanded.get(tag).map_or(0, |n| *n)
    }

    fn count_unlanded(&self, job: &Job, add: bool) {
        if job.op.mode != SettleMode::Unreserved || !job.gates {
            return;
        }
        if add {
            *self.unlanded.entry(job.tag.clone()).or_insert(0) += 1;
            self.unlanded_total.fetch_add(1, Ordering::Relaxed);
        } else {
            let gone = match self.unlanded.get_mut(&job.tag) {
                Some(mut n) => {
                    *n = n.saturating_sub(1);
                    *n == 0
                }
                None => false,
            };
            if gone {
                self.unlanded.remove_if(&job.tag, |_, n| *n == 0);
            }
            let _ = self
                .unlanded_total
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_sub(1))
                });
        }
    }

    /// Queues a settlement; never waits.
    pub fn push(&self, job: Job) {
        self.count_unlanded(&job, true);
        let slot = tag_slot(&job.tag);
        let dropped = {
            let mut q = self.lock();
            let dropped = if q.len() >= self.cap {
                q.parked.pop_front().or_else(|| q.ready.pop_front())
            } else {
                None
            };
            q.ready.push_back(Queued { job, slot });
            dropped
        };
        if let Some(d) = dropped {
            self.count_unlanded(&d.job, false);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("quota settle queue full: the oldest settlement was dropped");
        }
        self.wake.notify_one();
    }

    /// The oldest job whose node is not known to be unreachable (the others
    /// met on the way are set aside), with the ready jobs of its tag behind
    /// it, in order, up to [`SETTLE_SHARE`] (what a call leaves
    /// settlements when reservations wait too).
    fn pop(&self, store: &QuotaStore) -> Option<Vec<Queued>> {
        let draining = self.draining.load(Ordering::Relaxed);
        let mut q = self.lock();
        while let Some(j) = q.ready.pop_front() {
            if !draining && store.is_slot_down(j.slot) {
                q.parked.push_back(j);
                continue;
            }
            let mut bytes = j.job.op.size();
            let mut group = vec![j];
            let mut i = 0;
            while i < q.ready.len().min(LOOK_AHEAD) && group.len() < SETTLE_SHARE {
                let same = q.ready[i].job.tag == group[0].job.tag;
                let size = q.ready[i].job.op.size();
                if same && bytes + size <= MAX_BYTES {
                    bytes += size;
                    if let Some(x) = q.ready.remove(i) {
                        group.push(x);
                    }
                } else {
                    i += 1;
                }
            }
            self.busy.fetch_add(group.len(), Ordering::Relaxed);
            return Some(group);
        }
        None
    }

    /// Starts the workers on the current runtime.
    pub fn spawn(self: &Arc<Self>, store: Arc<QuotaStore>, alerts: Arc<Alerts>) {
        for _ in 0..WORKERS {
            let q = self.clone();
            let store = store.clone();
            let alerts = alerts.clone();
            tokio::spawn(async move { q.work(&store, &alerts).await });
        }
    }

    /// Sends the jobs of one tag in one call: the tag in the list of ledger
    /// tags first when this replica has not put it there for a job's day yet
    /// (once a tag and day), then the settlements. Each one's alerts crossed,
    /// or its own error; or the call's failure.
    async fn send(
        &self,
        store: &QuotaStore,
        jobs: &[Queued],
    ) -> crate::redis_conn::Result<Vec<crate::redis_conn::Result<Vec<super::store::Crossed>>>> {
        let Some(tag) = jobs.first().map(|q| q.job.tag.as_str()) else {
            return Ok(Vec::new());
        };
        for q in jobs {
            let Some((l, day)) = q
                .job
                .op
                .ledger
                .as_ref()
                .and_then(|l| Some((l, day_number(&l.dims.day)?)))
            else {
                continue;
            };
            let known = self.ledger_tags.get(tag).is_some_and(|d| *d >= day);
            if !known {
                let keep_days = l
                    .expire_at_s
                    .saturating_sub(super::now_ms() / 1000)
                    .div_ceil(86_400);
                store
                    .register_ledger_tag(tag, day, keep_days, l.expire_at_s)
                    .await?;
                self.ledger_tags.insert(tag.to_string(), day);
            }
        }
        let ops: Vec<Arc<SettleOp>> = jobs.iter().map(|q| current(&q.job)).collect();
        let answers = store.settle_ops(tag, ops).await?;
        Ok(answers.into_iter().map(|a| a.map(|s| s.crossed)).collect())
    }

    /// Waits for a new job, a node coming back, or (while jobs are set aside)
    /// the retry pause; then puts the set-aside jobs back in line.
    async fn idle(&self, store: &QuotaStore) {
        let parked = !self.lock().parked.is_empty();
        let back = async {
            match store.back() {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = back => {}
            _ = tokio::time::sleep(RETRY_PAUSE), if parked => {}
        }
        // only the jobs whose node answers again leave the parked line: the
        // rest is not walked through again by every worker
        let everyone = self.draining.load(Ordering::Relaxed);
        self.lock()
            .unpark(everyone, |slot| store.is_slot_down(slot));
    }

    async fn work(&self, store: &QuotaStore, alerts: &Alerts) {
        loop {
            let Some(group) = self.pop(store) else {
                self.idle(store).await;
                continue;
            };
            let answers = match self.send(store, &group).await {
                Ok(a) if a.len() == group.len() => a,
                Ok(_) => {
                    let e = crate::redis_conn::StateError::Rejected(
                        "another number of answers than settlements".into(),
                    );
                    group.iter().map(|_| Err(e.clone())).collect()
                }
                Err(e) => group.iter().map(|_| Err(e.clone())).collect(),
            };
            let mut again = Vec::new();
            for (q, answer) in group.into_iter().zip(answers) {
                match answer {
                    Ok(crossed) => {
                        if !crossed.is_empty() {
                            alerts.crossed(&q.job.items, &q.job.op.actual, &crossed);
                        }
                        self.count_unlanded(&q.job, false);
                        self.settled.fetch_add(1, Ordering::Relaxed);
                        self.busy.fetch_sub(1, Ordering::Relaxed);
                    }
                    Err(crate::redis_conn::StateError::Rejected(e)) => {
                        // sending it again would fail again: dropped, and counted
                        tracing::warn!(error = %e, tag = %q.job.tag, "quota settle refused by Redis; dropped");
                        self.count_unlanded(&q.job, false);
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        self.busy.fetch_sub(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "quota settle failed; kept for retry");
                        self.retried.fetch_add(1, Ordering::Relaxed);
                        again.push(q);
                    }
                }
            }
            if !again.is_empty() {
                {
                    // back in the queue, in order, and no longer busy in one
                    // step, so `drain` never sees them in neither place; their
                    // node is marked unreachable now, so they are set aside at once
                    let mut q = self.lock();
                    self.busy.fetch_sub(again.len(), Ordering::Relaxed);
                    for j in again.into_iter().rev() {
                        q.ready.push_front(j);
                    }
                }
                tokio::time::sleep(RETRY_PAUSE).await;
                self.wake.notify_one();
            }
        }
    }

    /// Waits (at most `limit`) until every queued settlement reached the store.
    pub async fn drain(&self, limit: Duration) -> bool {
        let end = tokio::time::Instant::now() + limit;
        self.draining.store(true, Ordering::Relaxed);
        self.lock().unpark(true, |_| false);
        loop {
            let idle = {
                let q = self.lock();
                q.len() == 0 && self.busy.load(Ordering::Relaxed) == 0
            };
            if idle {
                return true;
            }
            if tokio::time::Instant::now() >= end {
                return false;
            }
            self.wake.notify_waiters();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The job's settlement with its calendar windows as they stand now: a
/// settlement that waited out a Redis outage past a period's end counts in
/// the period it lands in.
fn current(job: &Job) -> Arc<SettleOp> {
    if !job.items.iter().any(|(q, _)| q.calendar.is_some()) {
        return job.op.clone();
    }
    let now = super::now_ms();
    let mut fresh = (*job.op).clone();
    for (a, (q, _)) in fresh.actual.iter_mut().zip(&job.items) {
        a.span = q.span(now);
    }
    Arc::new(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis_conn::reach::tag_slot;
    use crate::redis_conn::{ConnSettings, RedisConn, Target};

    fn job(tag: &str, mode: SettleMode) -> Job {
        job_id(tag, mode, "r1")
    }

    fn job_id(tag: &str, mode: SettleMode, id: &str) -> Job {
        Job {
            tag: tag.into(),
            op: Arc::new(SettleOp {
                id: id.into(),
                member: String::new(),
                mode,
                actual: Vec::new(),
                tomb_ms: 1,
                ledger: None,
            }),
            gates: true,
            items: Vec::new(),
        }
    }

    /// A cluster store (nothing listens) whose master "a:1" serves the slot of
    /// `t:a` and "b:1" every other slot.
    fn cluster() -> (Arc<RedisConn>, QuotaStore) {
        let conn = RedisConn::new(ConnSettings {
            target: Target::Cluster(vec!["redis://127.0.0.1:1".into()]),
            pool_size: 1,
            timeout: Duration::from_millis(50),
            prefix: "gw:".into(),
        })
        .expect("a pool");
        let a = tag_slot("t:a");
        let mut ranges = vec![(a, a, "a:1".to_string())];
        if a > 0 {
            ranges.push((0, a - 1, "b:1".into()));
        }
        if a < 16383 {
            ranges.push((a + 1, 16383, "b:1".into()));
        }
        conn.reach.set_slots(&ranges);
        let conn = Arc::new(conn);
        (conn.clone(), QuotaStore::redis(conn))
    }

    #[test]
    fn an_unreachable_nodes_settlements_wait_and_the_others_go() {
        let (conn, store) = cluster();
        let q = SettleQueue::new(10);
        q.push(job("t:a", SettleMode::Unreserved));
        q.push(job("t:b", SettleMode::Reserved));
        q.push(job("t:a", SettleMode::Reserved));
        assert_eq!((q.unlanded("t:a"), q.unlanded("t:b")), (1, 0));
        conn.reach.report_node("a:1", false, &"test");
        let first = q.pop(&store).expect("t:b's node answers");
        assert_eq!(tags(&first), ["t:b"]);
        assert!(q.pop(&store).is_none(), "t:a's are set aside");
        assert_eq!(q.len(), 2);
        // still down: they stay aside
        q.lock().unpark(false, |slot| store.is_slot_down(slot));
        assert!(q.pop(&store).is_none());
        // back: the set-aside ones go, oldest first, in one call
        conn.reach.report_node("a:1", true, &"");
        q.lock().unpark(false, |slot| store.is_slot_down(slot));
        let next = q.pop(&store).expect("t:a's node is back");
        let modes: Vec<_> = next
            .iter()
            .map(|j| (j.job.tag.as_str(), j.job.op.mode))
            .collect();
        assert_eq!(
            modes,
            [
                ("t:a", SettleMode::Unreserved),
                ("t:a", SettleMode::Reserved)
            ]
        );
        q.count_unlanded(&next[0].job, false);
        assert_eq!(q.unlanded("t:a"), 0);
    }

    fn tags(group: &[Queued]) -> Vec<&str> {
        group.iter().map(|j| j.job.tag.as_str()).collect()
    }

    fn ids(group: &[Queued]) -> Vec<&str> {
        group.iter().map(|j| j.job.op.id.as_str()).collect()
    }

    #[test]
    fn a_worker_takes_the_ready_settlements_of_the_oldest_ones_tag_in_order() {
        let q = SettleQueue::new(1000);
        let store = QuotaStore::Memory(Default::default());
        for (tag, id) in [
            ("t:a", "1"),
            ("t:b", "2"),
            ("t:a", "3"),
            ("t:c", "4"),
            ("t:a", "5"),
        ] {
            q.push(job_id(tag, SettleMode::Reserved, id));
        }
        let a = q.pop(&store).expect("ready");
        assert_eq!((tags(&a), ids(&a)), (vec!["t:a"; 3], vec!["1", "3", "5"]));
        assert_eq!(ids(&q.pop(&store).expect("then t:b")), ["2"]);
        assert_eq!(ids(&q.pop(&store).expect("then t:c")), ["4"]);
        assert_eq!(q.busy.load(Ordering::Relaxed), 5);
        // a call's share of settlements at most
        for i in 0..SETTLE_SHARE + 3 {
            q.push(job_id("t:a", SettleMode::Reserved, &i.to_string()));
        }
        assert_eq!(q.pop(&store).expect("ready").len(), SETTLE_SHARE);
        assert_eq!(q.pop(&store).expect("the rest").len(), 3);
    }

    #[test]
    fn usage_admitted_while_earlier_usage_lands_does_not_hold_the_gate() {
        let q = SettleQueue::new(10);
        let mut meanwhile = job("t:a", SettleMode::Unreserved);
        meanwhile.gates = false;
        q.push(meanwhile);
        assert_eq!(q.unlanded("t:a"), 0);
        q.push(job("t:a", SettleMode::Unreserved));
        assert_eq!(q.unlanded("t:a"), 1);
    }

    #[test]
    fn usage_served_without_redis_lands_before_the_rest_when_its_node_is_back() {
        let (conn, store) = cluster();
        let q = SettleQueue::new(10);
        let mut ledger = job_id("t:a", SettleMode::Unreserved, "ledger");
        ledger.gates = false;
        q.push(ledger);
        q.push(job_id("t:a", SettleMode::Unreserved, "served"));
        conn.reach.report_node("a:1", false, &"test");
        assert!(q.pop(&store).is_none(), "both set aside");
        conn.reach.report_node("a:1", true, &"");
        q.lock().unpark(false, |slot| store.is_slot_down(slot));
        assert_eq!(ids(&q.pop(&store).expect("back")), ["served", "ledger"]);
    }

    #[test]
    fn a_dropped_settlement_is_no_longer_unlanded() {
        let q = SettleQueue::new(1);
        q.push(job("t:a", SettleMode::Unreserved));
        q.push(job("t:b", SettleMode::Unreserved));
        assert_eq!((q.unlanded("t:a"), q.unlanded("t:b")), (0, 1));
        assert_eq!(q.dropped.load(Ordering::Relaxed), 1);
    }
}
