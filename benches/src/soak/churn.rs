//! The soak's operator: config reloads that swap every replica between the two
//! config files, and key churn on the churn consumer through the admin API
//! (create, rotate with a short grace, revoke; now and then the consumer is
//! deleted and made again), each call counted in a [`Tally`].

use super::fleet::{Fleet, CHURN_CONSUMER, CHURN_TENANT};
use super::traffic::KeyPool;
use super::Tally;
use http::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// Grace of a rotation: the old key works this long, then answers 401.
pub const ROTATE_GRACE_S: u64 = 5;
/// Every this many key cycles the churn consumer is deleted (its keys with it)
/// and made again.
pub const CYCLES_PER_CONSUMER: u64 = 10;

/// Every `every` until `end`: each replica in turn gets the other config file
/// and `POST /admin/config/reload`.
pub async fn reloads(fleet: &Fleet, tally: &Tally, every: Duration, end: Instant) {
    let mut variant = 0;
    let mut next = Instant::now() + every;
    while next < end {
        tokio::time::sleep_until(next).await;
        next += every;
        variant ^= 1;
        for replica in 0..fleet.gateways.len() {
            let outcome = match fleet.reload(replica, variant).await {
                Ok(status) => status.to_string(),
                Err(e) => format!("transport error: {e}"),
            };
            tally.add("config reload", &outcome);
        }
    }
}

/// Every `every` until `end`, one key cycle on the churn consumer, through the
/// replicas in turn (so the other replica learns of each change by pub/sub):
/// create a key, rotate the one made a cycle before with a [`ROTATE_GRACE_S`]
/// grace, revoke the oldest the pool holds; every
/// [`CYCLES_PER_CONSUMER`] cycles the consumer is deleted and made again.
pub async fn keys(fleet: &Fleet, pool: &KeyPool, tally: &Tally, every: Duration, end: Instant) {
    let base = format!("/admin/tenants/{CHURN_TENANT}/consumers/{CHURN_CONSUMER}");
    let mut cycle: u64 = 0;
    let mut next = Instant::now();
    while next < end {
        tokio::time::sleep_until(next).await;
        next += every;
        let replica = (cycle as usize) % fleet.gateways.len().max(1);
        cycle += 1;
        if cycle.is_multiple_of(CYCLES_PER_CONSUMER) {
            let (outcome, _) = call(fleet, replica, Method::DELETE, &base, None).await;
            tally.add("consumer delete", &outcome);
            pool.clear();
            let outcome = match fleet.put_churn_consumer(replica).await {
                Ok(()) => "200".to_string(),
                Err(e) => e.to_string(),
            };
            tally.add("consumer put", &outcome);
        }
        let body = json!({"name": format!("soak-{cycle}")});
        let (outcome, answer) = call(
            fleet,
            replica,
            Method::POST,
            &format!("{base}/keys"),
            Some(&body),
        )
        .await;
        tally.add("key create", &outcome);
        add_key(pool, &answer);
        // the key made one cycle ago: live until this rotation's grace ends
        if let Some(id) = pool.id_from_newest(1) {
            let grace = json!({"grace_s": ROTATE_GRACE_S});
            let path = format!("{base}/keys/{id}/rotate");
            let (outcome, answer) = call(fleet, replica, Method::POST, &path, Some(&grace)).await;
            tally.add("key rotate", &outcome);
            add_key(pool, &answer);
        }
        // the oldest the pool holds (requests keep trying it: 401)
        if pool.count() > 4 {
            if let Some(id) = pool.id_at(0) {
                let path = format!("{base}/keys/{id}");
                let (outcome, _) = call(fleet, replica, Method::DELETE, &path, None).await;
                tally.add("key revoke", &outcome);
            }
        }
    }
}

/// Puts a created or rotated key (`{"id", "key"}`) into the pool.
fn add_key(pool: &KeyPool, answer: &Value) {
    if let (Some(id), Some(key)) = (answer["id"].as_str(), answer["key"].as_str()) {
        pool.add(id.to_string(), key.to_string());
    }
}

/// An admin call: (its status or transport error as text, the answer).
async fn call(
    fleet: &Fleet,
    replica: usize,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (String, Value) {
    match fleet.admin(replica, method, path, body).await {
        Ok((status, answer)) => (status.to_string(), answer),
        Err(e) => (format!("transport error: {e}"), Value::Null),
    }
}
