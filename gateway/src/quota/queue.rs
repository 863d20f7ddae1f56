//! Settlements bound for Redis: queued without waiting (they are made from
//! `Drop` and from the end of streams), sent by a few worker tasks, and kept
//! (bounded, oldest dropped and counted) while Redis cannot be reached, so
//! usage from a short outage is still charged when it returns.

use super::store::{QuotaStore, SettleMode};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// One settlement of one hash tag.
#[derive(Debug, Clone)]
pub struct Job {
    pub tag: String,
    pub id: String,
    /// the reservation's lease entry (empty when none was made)
    pub member: String,
    pub mode: SettleMode,
    /// (window key, window ms, amount)
    pub actual: Vec<(String, u64, u64)>,
    pub tomb_ms: u64,
}

pub struct SettleQueue {
    jobs: Mutex<VecDeque<Job>>,
    cap: usize,
    wake: Notify,
    /// jobs taken by a worker and not finished
    busy: AtomicUsize,
    /// shutting down: workers try Redis even while it is marked unreachable
    /// (nothing else will clear the mark any more)
    draining: std::sync::atomic::AtomicBool,
    pub dropped: AtomicU64,
    pub retried: AtomicU64,
    pub settled: AtomicU64,
}

/// Worker tasks sending settlements concurrently.
const WORKERS: usize = 16;
/// Pause before retrying while Redis is unreachable.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

impl SettleQueue {
    pub fn new(cap: usize) -> SettleQueue {
        SettleQueue {
            jobs: Mutex::new(VecDeque::new()),
            cap: cap.max(1),
            wake: Notify::new(),
            busy: AtomicUsize::new(0),
            draining: std::sync::atomic::AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            settled: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues a settlement; never waits.
    pub fn push(&self, job: Job) {
        {
            let mut q = self.lock();
            if q.len() >= self.cap {
                q.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("quota settle queue full: the oldest settlement was dropped");
            }
            q.push_back(job);
        }
        self.wake.notify_one();
    }

    fn pop(&self) -> Option<Job> {
        let mut q = self.lock();
        let j = q.pop_front();
        if j.is_some() {
            self.busy.fetch_add(1, Ordering::Relaxed);
        }
        j
    }

    /// Starts the workers on the current runtime.
    pub fn spawn(self: &Arc<Self>, store: Arc<QuotaStore>) {
        for _ in 0..WORKERS {
            let q = self.clone();
            let store = store.clone();
            tokio::spawn(async move { q.work(&store).await });
        }
    }

    async fn work(&self, store: &QuotaStore) {
        loop {
            // while Redis is known to be down (the state monitor says when it is
            // back), keep the queue instead of failing on every job
            if store.is_degraded() && !self.is_empty() && !self.draining.load(Ordering::Relaxed) {
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
            let Some(job) = self.pop() else {
                self.wake.notified().await;
                continue;
            };
            let r = store
                .settle(
                    &job.tag,
                    &job.id,
                    &job.member,
                    job.tomb_ms,
                    job.mode,
                    &job.actual,
                )
                .await;
            match r {
                Ok(_) => {
                    self.settled.fetch_add(1, Ordering::Relaxed);
                    self.busy.fetch_sub(1, Ordering::Relaxed);
                }
                Err(crate::state::StateError::Rejected(e)) => {
                    // sending it again would fail again: dropped, and counted
                    tracing::warn!(error = %e, tag = %job.tag, "quota settle refused by Redis; dropped");
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    self.busy.fetch_sub(1, Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "quota settle failed; kept for retry");
                    self.retried.fetch_add(1, Ordering::Relaxed);
                    {
                        // back in the queue and no longer busy in one step, so
                        // `drain` never sees it in neither place
                        let mut q = self.lock();
                        q.push_front(job);
                        self.busy.fetch_sub(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(RETRY_PAUSE).await;
                    self.wake.notify_one();
                }
            }
        }
    }

    /// Waits (at most `limit`) until every queued settlement reached the store.
    pub async fn drain(&self, limit: Duration) -> bool {
        let end = tokio::time::Instant::now() + limit;
        self.draining.store(true, Ordering::Relaxed);
        loop {
            let idle = {
                let q = self.lock();
                q.is_empty() && self.busy.load(Ordering::Relaxed) == 0
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
