//! The JSON access log: one line per request, written by a dedicated thread from a
//! bounded queue. The request path never waits on it: when the queue is full the
//! line is dropped and counted. Flushed when the queue runs empty and on shutdown.

use crate::config::validate::AccessLogRt;
use shared::ai_log::AccessLogLine;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Mutex;
use std::time::Duration;

enum Msg {
    Line(std::sync::Arc<AccessLogLine>),
    Reopen(Option<PathBuf>),
    Flush(SyncSender<()>),
}

pub struct AccessLog {
    sender: SyncSender<Msg>,
    enabled: AtomicBool,
    dropped: AtomicU64,
    written: AtomicU64,
    target: Mutex<Option<PathBuf>>,
}

impl AccessLog {
    /// Starts the writer thread for `cfg` (the file is opened, appending, up front so a
    /// bad path fails at start).
    pub fn start(cfg: &AccessLogRt) -> std::io::Result<std::sync::Arc<AccessLog>> {
        let out = open(cfg.path.as_ref())?;
        let (tx, rx) = sync_channel(cfg.queue_size);
        let log = std::sync::Arc::new(AccessLog {
            sender: tx,
            enabled: AtomicBool::new(cfg.enabled),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            target: Mutex::new(cfg.path.clone()),
        });
        let weak = std::sync::Arc::downgrade(&log);
        let path = cfg.path.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer(rx, out, path, weak))?;
        Ok(log)
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Queues a line (shared with the OTLP exporter when that is on); never waits.
    pub fn send(&self, line: std::sync::Arc<AccessLogLine>) {
        match self.sender.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Applies a reloaded `telemetry.access_log`.
    pub fn apply(&self, cfg: &AccessLogRt) {
        self.enabled.store(cfg.enabled, Ordering::Relaxed);
        let mut target = match self.target.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        if *target != cfg.path {
            // Never block the caller (a runtime worker): with the queue full the new
            // path is not taken now, and the next reload tries again.
            match self.sender.try_send(Msg::Reopen(cfg.path.clone())) {
                Ok(()) => *target = cfg.path.clone(),
                Err(_) => tracing::warn!(
                    "access log queue full; the new access-log path applies at the next reload"
                ),
            }
        }
    }

    /// Waits until everything queued so far is written and flushed.
    pub fn flush(&self) {
        let (tx, rx) = sync_channel(1);
        if self.sender.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(10));
        }
    }
}

fn open(path: Option<&PathBuf>) -> std::io::Result<Box<dyn Write + Send>> {
    Ok(match path {
        None => Box::new(std::io::stdout()),
        Some(p) => Box::new(OpenOptions::new().create(true).append(true).open(p)?),
    })
}

/// After writing a batch the writer pauses this long, so lines queue up without
/// waking it once per request; a line waits at most about this long to be written.
const BATCH_PAUSE: Duration = Duration::from_millis(20);

fn writer(
    rx: Receiver<Msg>,
    out: Box<dyn Write + Send>,
    current: Option<PathBuf>,
    log: std::sync::Weak<AccessLog>,
) {
    let mut w = Writer {
        out: BufWriter::with_capacity(64 * 1024, out),
        current,
        log,
        buf: Vec::with_capacity(1024),
        written: 0,
        dropped: 0,
    };
    while let Ok(first) = rx.recv() {
        w.handle(first);
        loop {
            match rx.try_recv() {
                Ok(m) => w.handle(m),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = w.out.flush();
                    return;
                }
            }
        }
        let _ = w.out.flush();
        w.publish();
        std::thread::sleep(BATCH_PAUSE);
    }
    let _ = w.out.flush();
}

struct Writer {
    out: BufWriter<Box<dyn Write + Send>>,
    /// the path being written (None = stdout)
    current: Option<PathBuf>,
    log: std::sync::Weak<AccessLog>,
    buf: Vec<u8>,
    written: u64,
    dropped: u64,
}

impl Writer {
    /// Adds the lines counted since the last call to the shared counters.
    fn publish(&mut self) {
        if let Some(l) = self.log.upgrade() {
            l.written
                .fetch_add(std::mem::take(&mut self.written), Ordering::Relaxed);
            l.dropped
                .fetch_add(std::mem::take(&mut self.dropped), Ordering::Relaxed);
        }
    }

    fn handle(&mut self, m: Msg) {
        match m {
            Msg::Line(line) => {
                self.buf.clear();
                super::line_json::write(&mut self.buf, &line);
                self.buf.push(b'\n');
                if self.out.write_all(&self.buf).is_ok() {
                    self.written += 1;
                } else {
                    self.dropped += 1;
                }
            }
            Msg::Reopen(path) => {
                let _ = self.out.flush();
                match open(path.as_ref()) {
                    Ok(w) => {
                        self.out = BufWriter::with_capacity(64 * 1024, w);
                        self.current = path;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot open the new access log; keeping the old one");
                        // so that the next reload tries the new path again
                        if let Some(l) = self.log.upgrade() {
                            let mut t = l.target.lock().unwrap_or_else(|p| p.into_inner());
                            *t = self.current.clone();
                        }
                    }
                }
            }
            Msg::Flush(done) => {
                let _ = self.out.flush();
                self.publish();
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(path: &std::path::Path) -> AccessLogRt {
        AccessLogRt {
            enabled: true,
            path: Some(path.to_path_buf()),
            queue_size: 16,
        }
    }

    fn line(id: &str) -> std::sync::Arc<AccessLogLine> {
        std::sync::Arc::new(AccessLogLine {
            request_id: id.to_string(),
            ..AccessLogLine::default()
        })
    }

    #[test]
    fn reload_moves_the_log_and_a_bad_path_keeps_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        let log = AccessLog::start(&rt(&a)).unwrap();
        log.send(line("one"));
        log.apply(&rt(&b));
        log.send(line("two"));
        log.apply(&rt(&dir.path().join("missing-dir/c.log")));
        log.send(line("three"));
        log.flush();
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
        assert!(read(&a).contains("\"one\"") && !read(&a).contains("\"two\""));
        assert!(read(&b).contains("\"two\"") && read(&b).contains("\"three\""));
        assert_eq!(log.written(), 3);
        // the failed path is not remembered as current: the next reload tries it again
        assert_eq!(*log.target.lock().unwrap(), Some(b));
    }
}
