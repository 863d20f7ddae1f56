//! Active checks: a GET of `checks.active.http_path` per provider and interval.
//! On Redis one replica probes a provider per interval, whichever replicas come
//! and go: each one tries the lease (`SET NX PX interval`) a few times per
//! interval and only the holder probes. Results update the shared state (and the
//! local rules); ejected providers keep being probed, which is how they come back.
//! While Redis cannot be reached, every replica probes for itself.

use super::{Backend, Health};
use crate::providers::{ActiveCheck, Provider};
use crate::upstream::{self, AttemptError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const TICK: Duration = Duration::from_millis(100);
/// Most of a probe's answer read (so the connection can be reused).
const BODY_MAX: usize = 64 * 1024;

pub async fn run(health: Arc<Health>, mut stop: watch::Receiver<bool>) {
    let mut due: HashMap<Arc<str>, Instant> = HashMap::new();
    // per provider: which token the next probe uses
    let mut rotation: HashMap<Arc<str>, usize> = HashMap::new();
    loop {
        let cfg = health.followed();
        let now = Instant::now();
        due.retain(|id, _| cfg.providers.contains_key(&**id));
        rotation.retain(|id, _| cfg.providers.contains_key(&**id));
        for prov in cfg.providers.values() {
            let Some(check) = prov.active.as_ref() else {
                continue;
            };
            let next = due.entry(prov.id.clone()).or_insert(now);
            if *next > now {
                continue;
            }
            let retry = (check.interval / 4).max(TICK);
            let mine = match &health.backend {
                Backend::Memory => true,
                Backend::Redis(conn) => {
                    let ms = u64::try_from(check.interval.as_millis()).unwrap_or(u64::MAX);
                    // Redis unreachable: nobody can coordinate, probe for this replica alone
                    super::store::lease(conn, &prov.id, &health.replica, ms)
                        .await
                        .unwrap_or(true)
                }
            };
            *next = now + if mine { check.interval } else { retry };
            if mine {
                let turn = rotation.entry(prov.id.clone()).or_insert(0);
                tokio::spawn(probe(health.clone(), prov.clone(), *turn));
                *turn = turn.wrapping_add(1);
            }
        }
        if crate::shutdown::pause(TICK, &mut stop).await {
            return;
        }
    }
}

/// What one probe found.
enum Verdict {
    Healthy,
    Unhealthy(String),
    /// the token was refused (401/403): that token, not the provider
    TokenRefused(String),
    /// a status in neither list
    Neutral,
}

async fn probe(health: Arc<Health>, prov: Arc<Provider>, rotation: usize) {
    let (Some(check), Some(cell)) = (prov.active.as_ref(), health.cell(&prov.id)) else {
        return;
    };
    let tokens = prov.token_count();
    let token = (tokens > 0).then(|| rotation % tokens);
    health.stats.probes.fetch_add(1, Ordering::Relaxed);
    let verdict = run_probe(&prov, check, token).await;
    let token_target = cell.token_target(token);
    match verdict {
        Verdict::Healthy => {
            health.probed(&cell, 0, true, "", &check.rule);
            if token_target != 0 {
                health.probed(&cell, token_target, true, "", &check.rule);
            }
        }
        Verdict::Unhealthy(why) => {
            health.stats.probes_failed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(provider = %prov.id, error = %why, "probe failed");
            health.probed(&cell, 0, false, &why, &check.rule);
        }
        Verdict::TokenRefused(why) => {
            health.stats.probes_failed.fetch_add(1, Ordering::Relaxed);
            // a token is probed once every `tokens` intervals: hold it that much longer
            let mut rule = check.rule;
            rule.hold_ms = rule.hold_ms.saturating_mul(tokens.max(1) as u64);
            health.probed(&cell, token_target, false, &why, &rule);
        }
        Verdict::Neutral => {}
    }
}

async fn run_probe(prov: &Provider, check: &ActiveCheck, token: Option<usize>) -> Verdict {
    let Some(client) = prov.client.as_ref() else {
        return Verdict::Neutral;
    };
    let mut req = match &check.generate {
        Some(model) => match prov.probe_request(model) {
            Ok(r) => r,
            Err(e) => return Verdict::Unhealthy(format!("probe: {e}")),
        },
        None => {
            let mut r = http::Request::new(Bytes::new());
            *r.uri_mut() = check.uri.clone();
            r
        }
    };
    if let Err(e) = prov.authorize(&mut req, token).await {
        return Verdict::Unhealthy(format!("probe: credentials: {e}"));
    }
    let req = req.map(Full::new);
    let started = Instant::now();
    let resp = match upstream::send(client, req, check.timeout).await {
        Ok(r) => r,
        Err(AttemptError::Timeout) => {
            return Verdict::Unhealthy(format!(
                "probe: no answer within {} ms",
                check.timeout.as_millis()
            ))
        }
        Err(AttemptError::Connect(e)) => return Verdict::Unhealthy(format!("probe: connect: {e}")),
        Err(AttemptError::Other(e)) => return Verdict::Unhealthy(format!("probe: {e}")),
        Err(AttemptError::Auth(e)) => {
            return Verdict::Unhealthy(format!("probe: credentials: {e}"))
        }
    };
    let status = resp.status().as_u16();
    // read (and drop) the answer within what is left of the timeout
    let left = check.timeout.saturating_sub(started.elapsed());
    let _ = tokio::time::timeout(left, Limited::new(resp.into_body(), BODY_MAX).collect()).await;
    if check.healthy_statuses.contains(&status) {
        Verdict::Healthy
    } else if matches!(status, 401 | 403) {
        Verdict::TokenRefused(format!("probe: http {status}"))
    } else if check.unhealthy_statuses.contains(&status) {
        Verdict::Unhealthy(format!("probe: http {status}"))
    } else {
        Verdict::Neutral
    }
}
