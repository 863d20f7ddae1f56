//! A multi-tenant, OpenAI-compatible LLM gateway. `run` starts it: config, access
//! log, listeners, config watcher; SIGTERM/SIGINT drains and flushes before exit.
//! The request path is in `pipeline.rs`.

pub mod admin;
pub mod app;
pub mod attempt;
pub mod auth;
pub mod balance;
pub mod bill;
pub mod body_read;
pub mod calendar;
pub mod client_addr;
pub mod config;
pub mod cost;
pub mod ctx;
pub mod endpoint;
pub mod error;
pub mod finish;
pub mod glob;
pub mod headers;
pub mod health;
pub mod json;
pub mod keys;
pub mod meter;
pub mod models;
pub mod pipeline;
#[cfg(test)]
pub(crate) mod prop;
pub mod protocol;
pub mod providers;
pub mod quota;
pub mod redact;
pub mod redis_conn;
pub mod reload;
pub mod report;
pub mod request_body;
pub mod response;
pub mod route;
pub mod runtime;
pub mod seed;
pub mod server;
pub mod shutdown;
pub mod stall;
pub mod state;
pub mod stream;
pub mod telemetry;
pub mod text;
pub mod tls;
pub mod upstream;

use app::App;
use config::ConfigError;
use runtime::Runtime;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use telemetry::access_log::AccessLog;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Reads and validates a config file (or the embedded default) as version 1.
pub fn load(
    path: Option<&Path>,
    clients: &providers::ClientCache,
) -> Result<(Runtime, String), ConfigError> {
    let (text, name) = match path {
        Some(p) => (runtime::read_text(p)?, p.display().to_string()),
        None => (
            config::EMBEDDED_DEFAULT.to_string(),
            config::EMBEDDED_NAME.to_string(),
        ),
    };
    Ok((runtime::load_text(&name, &text, 1, clients)?, text))
}

/// What still holds records when [`run`] returns: the caller flushes both once more
/// after the runtime is shut down (requests cut off at the end of the grace period
/// are recorded when their tasks are dropped).
pub struct Sinks {
    pub access_log: Arc<AccessLog>,
    pub otlp: Option<Arc<telemetry::otlp::Otlp>>,
}

impl Sinks {
    /// Writes and exports what is queued (blocks; off the runtime's workers).
    /// `otlp_limit`: how long the OTLP export may take.
    pub fn flush(&self, otlp_limit: std::time::Duration) {
        self.access_log.flush();
        if let Some(o) = &self.otlp {
            if !o.flush(otlp_limit) {
                tracing::warn!(
                    left = o.queued(),
                    "OTLP records could not all be exported before exit"
                );
            }
        }
    }
}

/// Runs the gateway until SIGTERM/SIGINT.
pub async fn run(config_path: Option<PathBuf>) -> Result<Sinks, String> {
    calendar::check_test_hook()?;
    let clients = providers::ClientCache::default();
    let (rt, text) =
        load(config_path.as_deref(), &clients).map_err(|e| format!("invalid config:\n{e}"))?;
    for w in &rt.warnings {
        tracing::warn!("{w}");
    }
    let access_log =
        AccessLog::start(&rt.access_log).map_err(|e| format!("cannot open the access log: {e}"))?;
    let listen = rt.server.listen;
    let admin_listen = rt.server.admin_listen;
    let data = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let admin = TcpListener::bind(admin_listen)
        .await
        .map_err(|e| format!("cannot listen on {admin_listen} (admin): {e}"))?;
    let source = rt.source.clone();
    let auth = Arc::new(build_auth(&rt.state)?);
    let quota_store = match &*auth.store {
        state::Store::Memory(_) => quota::store::QuotaStore::Memory(Default::default()),
        state::Store::Redis(r) => quota::store::QuotaStore::redis(r.conn.clone()),
    };
    let quotas = quota::Quotas::new(quota_store, rt.state.quotas.settle_queue);
    quotas.start();
    quotas.alerts.set_webhook(rt.budget.webhook.clone());
    quotas
        .alerts
        .start(clients.get(std::time::Duration::from_secs(5)));
    let health = match &*auth.store {
        state::Store::Memory(_) => health::Health::new(health::Backend::Memory, String::new()),
        state::Store::Redis(r) => {
            health::Health::new(health::Backend::Redis(r.conn.clone()), r.channel())
        }
    };
    let otlp = match &rt.otlp {
        Some(o) => Some(telemetry::otlp::Otlp::start(o)?),
        None => None,
    };
    let app = Arc::new(App::new(
        rt,
        text,
        config_path,
        clients,
        access_log.clone(),
        app::Shared {
            auth,
            quotas: quotas.clone(),
            health: health.clone(),
            otlp: otlp.clone(),
        },
    ));
    // scripts and seed now when Redis is there; otherwise the monitor does it later
    auth::sync::prepare(&app.sync_handle()).await;

    let (stop_tx, stop_rx) = watch::channel(false);
    let data_task = tokio::spawn(server::serve_data(app.clone(), data, stop_rx.clone()));
    // the admin listener (probes, /metrics) stays until the data plane has drained
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
    // (answers in flight are watched until the data plane has drained)
    tokio::spawn(app.stalls.clone().run(admin_stop_rx.clone()));
    let admin_task = tokio::spawn(server::serve_admin(app.clone(), admin, admin_stop_rx));
    auth::sync::spawn(app.sync_handle(), stop_rx.clone());
    health.start(stop_rx.clone());
    tokio::spawn(reload::watch_file(app.clone(), stop_rx));
    let mut signals = shutdown::Signals::install();
    app.set_ready(true);
    tracing::info!(%listen, %admin_listen, config = %source, "gateway ready");

    let first = signals.recv().await;
    stop_gracefully(&app, first, signals).await;
    let _ = stop_tx.send(true);
    let _ = data_task.await;
    if !app
        .shutdown
        .requests_done(std::time::Duration::from_secs(2))
        .await
    {
        tracing::warn!("requests still running after their connections closed");
    }
    let _ = admin_stop_tx.send(true);
    // what the requests used reaches the store before the process goes (the
    // ledger's buffer too)
    quotas.flush_ledger();
    if !quotas.queue.drain(std::time::Duration::from_secs(5)).await {
        tracing::warn!(
            left = quotas.queue.len(),
            "quota settlements could not all be sent before exit"
        );
    }
    admin_task.abort();
    let sinks = Sinks { access_log, otlp };
    let sinks = tokio::task::spawn_blocking(move || {
        sinks.flush(std::time::Duration::from_secs(5));
        sinks
    })
    .await
    .map_err(|e| format!("flushing the logs at exit failed: {e}"))?;
    tracing::info!("stopped");
    Ok(sinks)
}

/// The state backend and the key cache, as `state:` says.
fn build_auth(st: &config::StateRt) -> Result<auth::Auth, String> {
    let store = match &st.backend {
        config::BackendRt::Memory => state::Store::memory(),
        config::BackendRt::Redis {
            target,
            pool_size,
            timeout,
            key_prefix,
        } => state::Store::Redis(
            state::redis::RedisStore::new(redis_conn::ConnSettings {
                target: target.clone(),
                pool_size: *pool_size,
                timeout: *timeout,
                prefix: key_prefix.clone(),
            })
            .map_err(|e| format!("cannot set up the Redis state backend: {e}"))?,
        ),
    };
    Ok(auth::Auth::new(
        Arc::new(store),
        keys::KeyHasher::from_env(),
        auth::cache::KeyCache::new(st.cache_ttl, st.stale_if_error),
    ))
}

/// After the first signal: not ready at once; new connections still accepted for
/// `shutdown_delay_ms` (SIGTERM only), then the caller stops the listeners. The answers
/// still running are cut when the grace (counted from the signal) is over or a second
/// signal comes.
async fn stop_gracefully(app: &Arc<App>, first: shutdown::Signal, mut signals: shutdown::Signals) {
    let at = tokio::time::Instant::now();
    app.set_ready(false);
    app.shutdown.start_draining();
    let cfg = app.config();
    let grace = cfg.server.shutdown_grace;
    let delay = match first {
        shutdown::Signal::Term => cfg.server.shutdown_delay,
        shutdown::Signal::Int => std::time::Duration::ZERO,
    };
    drop(cfg);
    tracing::info!(
        signal = ?first,
        accept_ms = delay.as_millis() as u64,
        grace_s = grace.as_secs(),
        "shutting down: not ready; accepting a while longer, then draining"
    );
    let cutter = app.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep_until(at + grace) => {
                tracing::warn!("grace period over: ending the answers still running");
            }
            s = signals.recv() => {
                tracing::warn!(signal = ?s, "second signal: ending the answers still running");
            }
        }
        cutter.cut();
    });
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = app.shutdown.cut_done() => {}
    }
    tracing::info!("not accepting any more; draining");
}
