//! The process-wide state every connection shares: the current config version
//! (swapped atomically on reload), upstream client pools, the access log and the
//! readiness flags.

use crate::auth::Auth;
use crate::config::validate::OtlpRt;
use crate::config::{self, ConfigError};
use crate::providers::ClientCache;
use crate::runtime::Runtime;
use crate::state::change::Change;
use crate::telemetry::access_log::AccessLog;
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The engines over the state backend.
pub struct Shared {
    pub auth: Arc<Auth>,
    pub quotas: Arc<crate::quota::Quotas>,
    pub health: Arc<crate::health::Health>,
    pub otlp: Option<Arc<crate::telemetry::otlp::Otlp>>,
}

pub struct App {
    config: ArcSwap<Runtime>,
    /// consumer keys: state backend, digest, replica cache
    pub auth: Arc<Auth>,
    /// the seed of the config version in use
    pub seed: Arc<crate::seed::Current>,
    /// token and request quotas (same backend as `auth`)
    pub quotas: Arc<crate::quota::Quotas>,
    /// upstream health and in-flight counts (same backend as `auth`)
    pub health: Arc<crate::health::Health>,
    /// None: running on the embedded default
    pub config_path: Option<PathBuf>,
    pub clients: ClientCache,
    pub access_log: Arc<AccessLog>,
    /// request metrics for `/metrics` (None: could not be set up, logged)
    pub metrics: Option<Arc<crate::telemetry::metrics::Metrics>>,
    /// the OTLP exporter, when `telemetry.otlp` was set at start
    pub otlp: Option<Arc<crate::telemetry::otlp::Otlp>>,
    /// draining and cutting at shutdown (answers in flight watch it)
    pub shutdown: Arc<crate::shutdown::Shutdown>,
    /// request bodies buffered by the requests in flight
    pub bodies: Arc<crate::body_read::Budget>,
    /// HTTP/2 answers, ended when their client stops reading
    pub stalls: Arc<crate::stall::Stalls>,
    /// the last requests this replica finished and its last hour
    /// (`GET /admin/requests`, `GET /admin/stats`)
    pub views: Arc<crate::telemetry::Views>,
    ready: AtomicBool,
    next_version: AtomicU64,
    /// the text of the last file we tried, so a bad file is reported once
    last_text: Mutex<String>,
    reload_lock: tokio::sync::Mutex<()>,
}

impl App {
    pub fn new(
        first: Runtime,
        text: String,
        config_path: Option<PathBuf>,
        clients: ClientCache,
        access_log: Arc<AccessLog>,
        shared: Shared,
    ) -> App {
        let Shared {
            auth,
            quotas,
            health,
            otlp,
        } = shared;
        health.ensure(first.followed());
        follow_alerts(&quotas.alerts, &first);
        App {
            auth,
            seed: Arc::new(crate::seed::Current::new(first.seed.clone())),
            quotas,
            health,
            next_version: AtomicU64::new(first.version + 1),
            config: ArcSwap::from_pointee(first),
            config_path,
            clients,
            access_log,
            metrics: crate::telemetry::metrics::Metrics::new().map(Arc::new),
            otlp,
            shutdown: Arc::default(),
            bodies: Arc::default(),
            stalls: Arc::default(),
            views: Arc::default(),
            ready: AtomicBool::new(false),
            last_text: Mutex::new(text),
            reload_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// What the state backend's background tasks work with.
    pub fn sync_handle(&self) -> crate::auth::sync::Handle {
        crate::auth::sync::Handle {
            auth: self.auth.clone(),
            health: self.health.clone(),
            seed: self.seed.clone(),
        }
    }

    /// The config version new requests start on.
    /// `pricing.currency` of the config in force.
    pub fn currency(&self) -> String {
        self.config().pricing.currency().to_string()
    }

    pub fn config(&self) -> Arc<Runtime> {
        self.config.load_full()
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Re-reads the config file. `only_if_changed`: skip when the text is the one
    /// last tried (the file watcher). Errors leave the running config in place.
    pub async fn reload(&self, only_if_changed: bool) -> Result<Option<u64>, ConfigError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let Some(path) = self.config_path.clone() else {
            return Err(ConfigError::one(format!(
                "{}: the gateway runs on its embedded default config; start it with --config PATH to reload",
                config::EMBEDDED_NAME
            )));
        };
        let text = tokio::fs::read_to_string(&path).await.map_err(|e| {
            ConfigError::one(format!(
                "{}: cannot read the config file: {e}",
                path.display()
            ))
        })?;
        {
            let mut last = match self.last_text.lock() {
                Ok(l) => l,
                Err(p) => p.into_inner(),
            };
            if only_if_changed && *last == text {
                return Ok(None);
            }
            *last = text.clone();
        }
        let name = path.display().to_string();
        let version = self.next_version.fetch_add(1, Ordering::Relaxed);
        let rt = crate::runtime::load_text(&name, &text, version, &self.clients)?;
        let old = self.config();
        for (what, changed) in [
            ("server.listen", rt.server.listen != old.server.listen),
            (
                "server.admin_listen",
                rt.server.admin_listen != old.server.admin_listen,
            ),
            ("state", rt.state != old.state),
            (
                "telemetry.otlp (endpoint, protocol, headers, queue and batch)",
                rt.otlp.as_ref().map(OtlpRt::exporter)
                    != self.otlp.as_ref().map(|o| o.started.exporter()),
            ),
        ] {
            if changed {
                tracing::warn!(
                    key = what,
                    "changed in the config file; takes effect after a restart"
                );
            }
        }
        for w in &rt.warnings {
            tracing::warn!("{w}");
        }
        self.access_log.apply(&rt.access_log);
        self.health.ensure(rt.followed());
        self.seed.set(rt.seed.clone());
        self.quotas.alerts.set_webhook(rt.budget.webhook.clone());
        follow_alerts(&self.quotas.alerts, &rt);
        self.config.store(Arc::new(rt));
        tracing::info!(version, "config reloaded");
        // the seed goes into the backend again; a backend that cannot be reached gets
        // it from the state monitor when it returns
        let cfg = self.config();
        match crate::seed::apply(&self.auth.store, &cfg.seed).await {
            Ok(()) => {
                for t in cfg.seed.iter() {
                    self.auth
                        .changed(&Change::Tenant(t.tenant.id.clone()))
                        .await;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "config reloaded, but the tenants seed could not be written yet")
            }
        }
        Ok(Some(version))
    }
}

/// The alert percentages of the config's quotas (routes' and the seeded
/// tenants' and consumers'), counted at 0 before any alert fires.
fn follow_alerts(alerts: &crate::quota::alerts::Alerts, rt: &Runtime) {
    for q in rt.routes.iter().flat_map(|r| r.quotas.iter()) {
        alerts.follow(&q.name, &q.alerts);
    }
    for t in rt.seed.iter() {
        let consumers = t.consumers.iter().flat_map(|c| c.consumer.quotas.iter());
        for q in t.tenant.quotas.iter().chain(consumers) {
            alerts.follow(&q.name, &q.alerts);
        }
    }
}
