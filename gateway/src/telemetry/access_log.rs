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
    Line(Box<AccessLogLine>),
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
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer(rx, out, weak))?;
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

    pub fn send(&self, line: AccessLogLine) {
        match self.sender.try_send(Msg::Line(Box::new(line))) {
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
            *target = cfg.path.clone();
            // Blocking send: a reopen must not be lost to a full queue.
            let _ = self.sender.send(Msg::Reopen(cfg.path.clone()));
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

fn writer(rx: Receiver<Msg>, out: Box<dyn Write + Send>, log: std::sync::Weak<AccessLog>) {
    let mut w = Writer {
        out: BufWriter::with_capacity(64 * 1024, out),
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
        if let Some(l) = log.upgrade() {
            l.written
                .fetch_add(std::mem::take(&mut w.written), Ordering::Relaxed);
            l.dropped
                .fetch_add(std::mem::take(&mut w.dropped), Ordering::Relaxed);
        }
        std::thread::sleep(BATCH_PAUSE);
    }
    let _ = w.out.flush();
}

struct Writer {
    out: BufWriter<Box<dyn Write + Send>>,
    buf: Vec<u8>,
    written: u64,
    dropped: u64,
}

impl Writer {
    fn handle(&mut self, m: Msg) {
        match m {
            Msg::Line(line) => {
                self.buf.clear();
                if serde_json::to_writer(&mut self.buf, &line).is_ok() {
                    self.buf.push(b'\n');
                    if self.out.write_all(&self.buf).is_ok() {
                        self.written += 1;
                    } else {
                        self.dropped += 1;
                    }
                }
            }
            Msg::Reopen(path) => {
                let _ = self.out.flush();
                match open(path.as_ref()) {
                    Ok(w) => self.out = BufWriter::with_capacity(64 * 1024, w),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot open the new access log; keeping the old one")
                    }
                }
            }
            Msg::Flush(done) => {
                let _ = self.out.flush();
                let _ = done.send(());
            }
        }
    }
}
