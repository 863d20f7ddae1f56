//! Budget alerts: when a settlement takes a calendar window past one of its
//! quota's `alerts` percentages for the first time in the period (the store
//! says so, once for the whole fleet), a log line, the
//! `gateway_budget_alerts_total` counter (each quota's percentages at 0 from
//! the config's load or the quota's first use on, so that `increase()` counts
//! the first alert) and, when `budget_alerts.webhook` is
//! set, a JSON POST to it. Posts go through a bounded queue and one sender
//! task with bounded retries, off the request path: a slow receiver never
//! delays a request (alerts beyond the queue are dropped and counted).

use super::held::Windows;
use super::store::{Actual, Crossed};
use crate::upstream::HttpClient;
use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http_body_util::Full;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Alerts waiting for the webhook.
const QUEUE: usize = 1024;
/// The first pause between attempts (doubling).
const FIRST_PAUSE: Duration = Duration::from_millis(500);

/// Where alerts are posted (`budget_alerts.webhook`).
pub use crate::config::budget::WebhookRt as Webhook;

/// One alert, as posted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Alert {
    /// `budget_alert`
    pub kind: &'static str,
    pub quota: String,
    /// `t:<tenant>`, `c:<tenant>/<consumer>` or `r:<route>`
    pub owner: String,
    /// what the window counts (a tenant, `tenant/consumer`, ...)
    pub subject: String,
    pub window: String,
    pub percent: u8,
    /// decimal text: an amount of `currency` for `strategy: cost`, else a count
    pub used: String,
    pub limit: String,
    /// the quota's strategy (`cost`, `total_tokens`, ...)
    pub strategy: String,
}

pub struct Alerts {
    webhook: ArcSwapOption<Webhook>,
    tx: mpsc::Sender<Alert>,
    rx: Mutex<Option<mpsc::Receiver<Alert>>>,
    /// quota -> percent -> alerts sent
    counts: Mutex<BTreeMap<String, BTreeMap<u8, u64>>>,
    pub posted: AtomicU64,
    /// posts that failed every attempt, or found the queue full
    pub failed: AtomicU64,
}

impl Default for Alerts {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Alerts {
            webhook: ArcSwapOption::empty(),
            tx,
            rx: Mutex::new(Some(rx)),
            counts: Mutex::new(BTreeMap::new()),
            posted: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }
}

impl Alerts {
    /// The webhook of the config now in force (None: no posts).
    pub fn set_webhook(&self, w: Option<Webhook>) {
        self.webhook.store(w.map(Arc::new));
    }

    /// Starts the sender task on the current runtime (once).
    pub fn start(self: &Arc<Self>, client: HttpClient) {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rx) = rx {
            tokio::spawn(send_all(Arc::downgrade(self), rx, client));
        }
    }

    /// Makes the counter of each of `percents` of `quota` exist (at 0) before
    /// its first alert: Prometheus sees a series from its first sample on, so
    /// an alert that created its series would be missed by `increase()`.
    /// No allocation once they exist (it runs for each reservation).
    pub fn follow(&self, quota: &str, percents: &[u8]) {
        if percents.is_empty() {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let full = counts.len() >= MAX_GAUGES;
        match counts.get_mut(quota) {
            Some(by_percent) => {
                for p in percents {
                    by_percent.entry(*p).or_insert(0);
                }
            }
            None if !full => {
                counts.insert(
                    quota.to_string(),
                    percents.iter().map(|p| (*p, 0)).collect(),
                );
            }
            None => {}
        }
    }

    /// ((quota, percent), alerts sent) of every percentage followed or alerted.
    pub fn counts(&self) -> Vec<((String, u8), u64)> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts
            .iter()
            .flat_map(|(q, by_percent)| by_percent.iter().map(|(p, n)| ((q.clone(), *p), *n)))
            .collect()
    }

    /// The alerts a settlement crossed (`items` and `actual` in its order).
    pub fn crossed(&self, items: &Windows, actual: &[Actual], crossed: &[Crossed]) {
        for c in crossed {
            let (Some((q, key)), Some(a)) = (items.get(c.index), actual.get(c.index)) else {
                continue;
            };
            let money = |n: u64| q.show_amount(n);
            let alert = Alert {
                kind: "budget_alert",
                quota: q.name.clone(),
                owner: q.owner_label(),
                subject: q.subject_in(key).to_string(),
                window: q.window.clone(),
                percent: c.percent,
                used: money(c.used),
                limit: money(a.limit),
                strategy: serde_json::to_value(q.strategy)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
            };
            tracing::warn!(
                quota = %alert.quota,
                owner = %alert.owner,
                subject = %alert.subject,
                window = %alert.window,
                percent = alert.percent,
                used = %alert.used,
                limit = %alert.limit,
                "budget alert: {}% of the limit reached",
                alert.percent
            );
            *self
                .counts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(alert.quota.clone())
                .or_default()
                .entry(alert.percent)
                .or_default() += 1;
            if self.webhook.load().is_some() && self.tx.try_send(alert).is_err() {
                self.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("budget alert webhook queue full: an alert was not posted");
            }
        }
    }
}

/// What this replica last saw of each budget of one fixed subject (a tenant,
/// consumer or route budget): the window's sum (reservations in flight
/// included) at its latest reservation, for `gateway_budget_used`.
#[derive(Default)]
pub struct BudgetGauges {
    /// (owner label, quota) -> (used, limit), nano-units
    seen: Mutex<BTreeMap<(String, String), (u64, u64)>>,
}

/// Budgets followed at most (each one a pair of series on /metrics).
const MAX_GAUGES: usize = 10_000;

impl BudgetGauges {
    pub fn observe(&self, q: &super::spec::Quota, used: u64) {
        // a budget counted by client values (IPs, headers) has no one series
        if q.fixed_subject().is_none() {
            return;
        }
        let mut g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let k = (q.owner_label(), q.name.clone());
        if g.len() >= MAX_GAUGES && !g.contains_key(&k) {
            return;
        }
        g.insert(k, (used, q.limit));
    }

    /// ((owner, quota), (used, limit)) of every budget seen.
    pub fn list(&self) -> Vec<((String, String), (u64, u64))> {
        let g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        g.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// Posts queued alerts, one at a time, each with its retries; ends with the
/// alerts engine.
async fn send_all(
    alerts: std::sync::Weak<Alerts>,
    mut rx: mpsc::Receiver<Alert>,
    client: HttpClient,
) {
    while let Some(alert) = rx.recv().await {
        let Some(a) = alerts.upgrade() else {
            return;
        };
        let Some(hook) = a.webhook.load_full() else {
            continue;
        };
        let body = match serde_json::to_vec(&alert) {
            Ok(b) => Bytes::from(b),
            Err(_) => continue,
        };
        let mut pause = FIRST_PAUSE;
        let mut ok = false;
        for attempt in 0..=hook.max_retries {
            if attempt > 0 {
                tokio::time::sleep(pause).await;
                pause = pause.saturating_mul(2);
            }
            match post(&client, &hook, body.clone()).await {
                Ok(()) => {
                    ok = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!(error = %e, attempt, "budget alert webhook failed")
                }
            }
        }
        if ok {
            a.posted.fetch_add(1, Ordering::Relaxed);
        } else {
            a.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                quota = %alert.quota,
                "budget alert webhook: not delivered after {} attempts",
                hook.max_retries + 1
            );
        }
    }
}

async fn post(client: &HttpClient, hook: &Webhook, body: Bytes) -> Result<(), String> {
    let mut req = http::Request::post(hook.url.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    for (k, v) in &hook.headers {
        req.headers_mut().insert(k.clone(), v.clone());
    }
    let resp = tokio::time::timeout(hook.timeout, client.request(req))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| format!("{e}"))?;
    // the answer is not read: a receiver's body never holds the sender up
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followed_percentages_are_counted_at_zero_and_never_reset() {
        let a = Alerts::default();
        a.follow("no-alerts", &[]);
        a.follow("monthly", &[50, 80]);
        assert_eq!(
            a.counts(),
            [
                (("monthly".to_string(), 50), 0),
                (("monthly".to_string(), 80), 0)
            ]
        );
        // an alert sent, then the quota followed again (a reload adds 100)
        *a.counts
            .lock()
            .unwrap()
            .get_mut("monthly")
            .unwrap()
            .get_mut(&50)
            .unwrap() += 1;
        a.follow("monthly", &[50, 80, 100]);
        let want = [(50, 1), (80, 0), (100, 0)].map(|(p, n)| (("monthly".to_string(), p), n));
        assert_eq!(a.counts(), want);
    }
}
