//! Shutdown phases, shared by the signal handling, the listeners and the answers in
//! flight: draining (not ready, responses close their HTTP/1 connection), then
//! streams cut (the grace is over or a second signal came: answers end now, with a
//! final SSE error event, and are still settled and logged). Background tasks
//! sleep between rounds with [`pause`], which ends at the stop signal.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

/// The last event of an SSE answer cut by shutdown: OpenAI's error shape, which the
/// official SDKs raise as an API error instead of taking the stream as complete.
pub const CUT_EVENT: &[u8] = b"data: {\"error\":{\"message\":\"the gateway is shutting down: the answer was cut\",\"type\":\"server_error\",\"code\":\"gateway_shutdown\"}}\n\n";

/// Set by [`Shutdown::cut`]: process-wide like the signals that lead to it, so that
/// a request context dropped from then on (with no `App` at hand) knows it was cut
/// off by the shutdown, not left by its client.
static CUT: AtomicBool = AtomicBool::new(false);

pub fn cut_happened() -> bool {
    CUT.load(Ordering::SeqCst)
}

/// Waits `d`, or returns true when the gateway stops first (`stop` turns true).
pub async fn pause(d: std::time::Duration, stop: &mut tokio::sync::watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Answers waiting for the cut spread over several wake-up lists (each is a lock).
const CUT_SHARDS: usize = 8;

#[derive(Default)]
pub struct Shutdown {
    draining: AtomicBool,
    on_cut: [Arc<Notify>; CUT_SHARDS],
}

/// Requests of the process not settled yet (one counter, not one per `App`: a
/// request costs two atomic operations, no reference count).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// A request not settled yet (see [`Shutdown::live`]).
pub struct Live(());

impl Drop for Live {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Shutdown {
    /// SIGTERM came: the replica is leaving (responses ask HTTP/1 clients to reconnect).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Ends every answer still running (each wakes and closes itself).
    pub fn cut(&self) {
        CUT.store(true, Ordering::SeqCst);
        for n in &self.on_cut {
            n.notify_waiters();
        }
    }

    /// Counts a request as live until the guard is dropped (with its context, after
    /// its settlement was queued).
    pub fn live(&self) -> Live {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Live(())
    }

    /// Waits (at most `limit`) until every request is settled: HTTP/2 requests run
    /// in tasks of their own, which end a moment after their connection.
    pub async fn requests_done(&self, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while LIVE.load(Ordering::Relaxed) > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        true
    }

    pub fn is_cut(&self) -> bool {
        cut_happened()
    }

    /// Completes once the answers are cut.
    pub async fn cut_done(&self) {
        let signal = self.cut_signal();
        if !self.is_cut() {
            signal.await;
        }
    }

    /// A future that completes at [`Shutdown::cut`], registered now: check
    /// [`Shutdown::is_cut`] after taking it, a cut before is not seen by it.
    pub fn cut_signal(&self) -> Pin<Box<OwnedNotified>> {
        let shard = &self.on_cut[fastrand::usize(..CUT_SHARDS)];
        let mut n = Box::pin(shard.clone().notified_owned());
        n.as_mut().enable();
        n
    }
}

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: an orchestrator stops the replica (the accept delay applies)
    Term,
    /// SIGINT (Ctrl-C): someone at a terminal; no accept delay
    Int,
}

/// SIGTERM and SIGINT, as often as they come.
pub struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Listens from now on (install before the gateway reports ready).
    pub fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let listen = |kind: SignalKind, name: &str| {
                signal(kind)
                    .map_err(|e| tracing::warn!(error = %e, "cannot listen for {name}"))
                    .ok()
            };
            Signals {
                term: listen(SignalKind::terminate(), "SIGTERM"),
                int: listen(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    pub async fn recv(&mut self) -> Signal {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                let got = match s.as_mut() {
                    Some(s) => s.recv().await.is_some(),
                    None => false,
                };
                if !got {
                    std::future::pending::<()>().await;
                }
            }
            tokio::select! {
                _ = next(&mut self.term) => Signal::Term,
                _ = next(&mut self.int) => Signal::Int,
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            Signal::Int
        }
    }
}
