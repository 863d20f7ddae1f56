//! The admin listener: `/healthz`, `/readyz`, `/metrics`, the web console
//! (`/ui/`, `console.rs`), and the token-protected
//! `/admin/*` API: config reload here, tenants/consumers/keys in `tenants.rs`
//! (quota usage in `usage.rs`, the usage report in `report.rs`, upstream health
//! in `health.rs`). The admin token is compared in constant time.

pub mod console;
mod health;
mod report;
mod requests;
mod stats;
mod tenants;
mod usage;
mod usage_cursor;

use crate::app::App;
use crate::error::GatewayError;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;
use std::sync::Arc;
use subtle::ConstantTimeEq;

pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/healthz") => json(StatusCode::OK, &json!({"status": "ok"})),
        (&Method::GET, "/readyz") if app.is_ready() => {
            json(StatusCode::OK, &json!({"status": "ready"}))
        }
        (&Method::GET, "/readyz") => json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not ready"}),
        ),
        (&Method::GET, "/metrics") => metrics(&app),
        _ if path == "/ui" || path.starts_with(console::PREFIX) => {
            console::serve(req.method(), path).unwrap_or_else(|| {
                error(&GatewayError::no_route(format!("no console file {path}")))
            })
        }
        _ if path.starts_with("/admin/") => {
            if let Err(e) = authorize(&app, &req) {
                return error(&e);
            }
            admin(&app, req).await
        }
        _ => error(&GatewayError::no_route(format!(
            "no admin endpoint {} {path}",
            req.method()
        ))),
    }
}

fn authorize(app: &App, req: &Request<Incoming>) -> Result<(), GatewayError> {
    let cfg = app.config();
    let Some(token) = cfg.server.admin_token.as_deref() else {
        return Err(GatewayError::unauthorized(
            "the admin API is off: server.admin_token is not set",
        ));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // the Bearer scheme is required (any case); a bare token is refused
            let v = v.trim();
            v.get(..7)
                .filter(|p| p.eq_ignore_ascii_case("bearer "))
                .map(|_| v[7..].trim())
        })
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(GatewayError::unauthorized(
            "missing or wrong admin token (Authorization: Bearer <server.admin_token>)",
        ))
    }
}

async fn admin(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == "/admin/tenants" || path.starts_with("/admin/tenants/") {
        return match tenants::handle(app, req).await {
            Ok(resp) => resp,
            Err(e) => error(&e),
        };
    }
    match (req.method(), path) {
        (&Method::GET, "/admin/usage") => {
            return usage::get(app, req.uri().query())
                .await
                .unwrap_or_else(|e| error(&e))
        }
        (&Method::GET, "/admin/usage/report") => {
            return report::get(app, req.uri().query())
                .await
                .unwrap_or_else(|e| error(&e))
        }
        (&Method::GET, "/admin/config") => {
            let cfg = app.config();
            return json(
                StatusCode::OK,
                &json!({"version": cfg.version, "source": cfg.source,
                    "warnings": cfg.warnings, "config": *cfg.masked}),
            );
        }
        (&Method::GET, "/admin/stats") => {
            return stats::get(app, req.uri().query()).unwrap_or_else(|e| error(&e))
        }
        (&Method::GET, "/admin/requests") => {
            return requests::get(app, req.uri().query()).unwrap_or_else(|e| error(&e))
        }
        (&Method::GET, "/admin/health") => {
            return health::get(app).await.unwrap_or_else(|e| error(&e))
        }
        (&Method::POST, "/admin/usage/reset") => {
            return usage::reset(app, req).await.unwrap_or_else(|e| error(&e))
        }
        _ => {}
    }
    match (req.method(), req.uri().path()) {
        (&Method::POST, "/admin/config/reload") => match app.reload(false).await {
            Ok(version) => {
                let cfg = app.config();
                json(
                    StatusCode::OK,
                    &json!({"version": version.unwrap_or(cfg.version), "source": cfg.source, "warnings": cfg.warnings}),
                )
            }
            Err(e) => {
                tracing::error!(
                    "config reload refused; keeping version {}:\n{e}",
                    app.config().version
                );
                let body = json!({
                    "error": {"message": e.to_string(), "type": "invalid_request_error", "code": "invalid_config"},
                    "problems": e.problems,
                    "version": app.config().version,
                });
                json(StatusCode::BAD_REQUEST, &body)
            }
        },
        (m, p) => error(&GatewayError::no_route(format!(
            "no admin endpoint {m} {p}"
        ))),
    }
}

fn metrics(app: &App) -> Response<Full<Bytes>> {
    let cfg = app.config();
    let mut text = format!(
        "# HELP gateway_config_version Version number of the config in use.\n\
         # TYPE gateway_config_version gauge\n\
         gateway_config_version {}\n\
         # HELP gateway_access_log_lines_total Access-log lines written.\n\
         # TYPE gateway_access_log_lines_total counter\n\
         gateway_access_log_lines_total {}\n\
         # HELP gateway_access_log_dropped_total Access-log lines dropped because the queue was full.\n\
         # TYPE gateway_access_log_dropped_total counter\n\
         gateway_access_log_dropped_total {}\n\
         # HELP gateway_state_degraded 1 while the state backend (Redis, or any master of a Redis Cluster) cannot be reached.\n\
         # TYPE gateway_state_degraded gauge\n\
         gateway_state_degraded {}\n\
         # HELP gateway_auth_cache_entries Consumer keys cached by this replica.\n\
         # TYPE gateway_auth_cache_entries gauge\n\
         gateway_auth_cache_entries {}\n",
        cfg.version,
        app.access_log.written(),
        app.access_log.dropped(),
        u8::from(app.auth.store.is_degraded()),
        app.auth.cache.len(),
    );
    // Tasks the runtime holds (requests in flight, connections, background
    // loops): the soak bench (benches/README.md) watches it for leaks.
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        text.push_str(&format!(
            "# HELP gateway_tokio_alive_tasks Tasks alive in the gateway's tokio runtime.\n\
             # TYPE gateway_tokio_alive_tasks gauge\n\
             gateway_tokio_alive_tasks {}\n",
            rt.metrics().num_alive_tasks()
        ));
    }
    let q = &app.quotas;
    let counters = [
        ("gateway_quota_admitted_total", "Requests that passed every quota that applied.", &q.stats.admitted),
        ("gateway_quota_limited_total", "Requests refused with 429 by a quota.", &q.stats.limited),
        ("gateway_quota_bypassed_total", "Requests admitted unchecked while Redis was unreachable (on_redis_error: fail_open).", &q.stats.bypassed),
        ("gateway_quota_local_total", "Requests admitted by this replica's share while Redis was unreachable (on_redis_error: local).", &q.stats.local),
        ("gateway_quota_unavailable_total", "Requests refused with 503 while Redis was unreachable (on_redis_error: fail_closed).", &q.stats.unavailable),
        ("gateway_quota_settle_retries_total", "Quota settlements that failed and were queued again.", &q.queue.retried),
        ("gateway_quota_settle_dropped_total", "Quota settlements dropped because the settle queue was full.", &q.queue.dropped),
        ("gateway_budget_alert_posts_total", "Budget alerts posted to budget_alerts.webhook.", &q.alerts.posted),
        ("gateway_budget_alert_post_failures_total", "Budget alerts not posted: every attempt failed, or the queue was full.", &q.alerts.failed),
    ];
    let h = &app.health.stats;
    let health_counters = [
        (
            "gateway_upstream_ejections_total",
            "Upstream (or api token) ejections this replica's reports or probes started.",
            &h.ejections,
        ),
        (
            "gateway_upstream_recoveries_total",
            "Ejections ended by this replica's probes.",
            &h.recoveries,
        ),
        (
            "gateway_upstream_panic_total",
            "Requests sent to ejected upstreams because every instance of the route was ejected.",
            &h.panics,
        ),
        (
            "gateway_health_probes_total",
            "Active health probes this replica ran.",
            &h.probes,
        ),
        (
            "gateway_health_probe_failures_total",
            "Active health probes that failed.",
            &h.probes_failed,
        ),
        (
            "gateway_health_reports_dropped_total",
            "Health reports dropped because the report queue was full.",
            &h.reports_dropped,
        ),
        (
            "gateway_health_reports_failed_total",
            "Health reports that could not be sent to Redis.",
            &h.reports_failed,
        ),
    ];
    let otlp_counters: Vec<(&str, &str, &std::sync::atomic::AtomicU64)> = match &app.otlp {
        Some(o) => vec![
            (
                "gateway_otlp_spans_exported_total",
                "Spans the OTLP collector accepted.",
                &o.stats.spans_exported,
            ),
            (
                "gateway_otlp_logs_exported_total",
                "Log records the OTLP collector accepted.",
                &o.stats.logs_exported,
            ),
            (
                "gateway_otlp_spans_failed_total",
                "Spans lost because their export failed (collector unreachable or refusing).",
                &o.stats.spans_failed,
            ),
            (
                "gateway_otlp_logs_failed_total",
                "Log records lost because their export failed.",
                &o.stats.logs_failed,
            ),
            (
                "gateway_otlp_dropped_total",
                "Requests whose OTLP record was dropped because the export queue was full.",
                &o.stats.dropped,
            ),
            (
                "gateway_otlp_client_sampling_refused_total",
                "Traces a client asked to sample that sampling_ratio and honor_client_sampling did not.",
                &o.stats.client_sampling_refused,
            ),
        ],
        None => Vec::new(),
    };
    for (name, help, v) in counters
        .into_iter()
        .chain(health_counters)
        .chain(otlp_counters)
    {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
            v.load(std::sync::atomic::Ordering::Relaxed)
        ));
    }
    let nodes = app.auth.store.nodes();
    if !nodes.is_empty() {
        text.push_str("# HELP gateway_state_node_degraded 1 while this Redis node (the server, or a master of the cluster that serves hash slots) cannot be reached.\n# TYPE gateway_state_node_degraded gauge\n");
        for (node, down) in nodes {
            text.push_str(&format!(
                "gateway_state_node_degraded{{node=\"{}\"}} {}\n",
                label(&node),
                u8::from(down)
            ));
        }
    }
    let view = app.health.view();
    let mut cells: Vec<_> = app.health.cells().values().cloned().collect();
    cells.sort_by(|a, b| a.id.cmp(&b.id));
    text.push_str("# HELP gateway_upstream_healthy 1 while the provider is not ejected (as this replica sees it).\n# TYPE gateway_upstream_healthy gauge\n");
    for c in &cells {
        text.push_str(&format!(
            "gateway_upstream_healthy{{provider=\"{}\"}} {}\n",
            label(&c.id),
            u8::from(c.ejected_since(&view).is_none())
        ));
    }
    text.push_str("# HELP gateway_upstream_in_flight Requests in flight at the provider from this replica.\n# TYPE gateway_upstream_in_flight gauge\n");
    for c in &cells {
        text.push_str(&format!(
            "gateway_upstream_in_flight{{provider=\"{}\"}} {}\n",
            label(&c.id),
            c.inflight.load(std::sync::atomic::Ordering::Relaxed)
        ));
    }
    text.push_str(&format!(
        "# HELP gateway_quota_settle_queue Quota settlements waiting for Redis.\n# TYPE gateway_quota_settle_queue gauge\ngateway_quota_settle_queue {}\n",
        q.queue.len()
    ));
    if let Some(c) = q.store.conn() {
        text.push_str(&format!(
            "# HELP gateway_redis_calls_total Calls this replica made to Redis (each one round trip: a command, a pipeline or a script).\n# TYPE gateway_redis_calls_total counter\ngateway_redis_calls_total {}\n",
            c.calls.load(std::sync::atomic::Ordering::Relaxed)
        ));
        let (calls, ops) = q.store.calls();
        text.push_str(&format!(
            "# HELP gateway_quota_calls_total Quota script calls this replica made to Redis (reservations and settlements of one hash tag that are ready together share one).\n# TYPE gateway_quota_calls_total counter\ngateway_quota_calls_total {calls}\n# HELP gateway_quota_operations_total Reservations and settlements those calls carried.\n# TYPE gateway_quota_operations_total counter\ngateway_quota_operations_total {ops}\n"
        ));
    }
    let budgets = q.budgets.list();
    {
        text.push_str("# HELP gateway_budget_used What a budget's window holds (spend and reservations in flight), in units of pricing.currency, as this replica last saw it (take the max over replicas).\n# TYPE gateway_budget_used gauge\n");
        for ((owner, quota), (used, _)) in &budgets {
            text.push_str(&format!(
                "gateway_budget_used{{owner=\"{}\",quota=\"{}\"}} {}\n",
                label(owner),
                label(quota),
                shared::money::format_nanos(*used)
            ));
        }
        text.push_str("# HELP gateway_budget_limit A budget's limit, in units of pricing.currency.\n# TYPE gateway_budget_limit gauge\n");
        for ((owner, quota), (_, limit)) in &budgets {
            text.push_str(&format!(
                "gateway_budget_limit{{owner=\"{}\",quota=\"{}\"}} {}\n",
                label(owner),
                label(quota),
                shared::money::format_nanos(*limit)
            ));
        }
    }
    text.push_str("# HELP gateway_budget_alerts_total Budget alerts this replica sent (a percentage of a quota's limit crossed for the first time in its period, fleet-wide).\n# TYPE gateway_budget_alerts_total counter\n");
    for ((quota, percent), n) in q.alerts.counts() {
        text.push_str(&format!(
            "gateway_budget_alerts_total{{quota=\"{}\",percent=\"{percent}\"}} {n}\n",
            label(&quota)
        ));
    }
    text.push_str(&format!(
        "# HELP gateway_quota_windows Quota windows kept in this process (memory backend, and on_redis_error: local shares).\n# TYPE gateway_quota_windows gauge\ngateway_quota_windows {}\n",
        q.windows_in_memory()
    ));
    if let Some(o) = &app.otlp {
        text.push_str(&format!(
            "# HELP gateway_otlp_queue Requests whose OTLP record waits for export.\n# TYPE gateway_otlp_queue gauge\ngateway_otlp_queue {}\n",
            o.queued()
        ));
    }
    if cfg.prometheus {
        if let Some(m) = &app.metrics {
            text.push_str(&m.render());
        }
    }
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    resp
}

/// A Prometheus label value, escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) fn json(status: StatusCode, v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(v.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(e: &GatewayError) -> Response<Full<Bytes>> {
    e.response().map(Full::new)
}
