//! `GET /admin/health`: every provider and each of its api tokens (by index), as
//! the whole fleet sees them (read from Redis now, not from this replica's
//! mirror), plus this replica's own outlier detection. Error texts are the
//! gateway's own (`http 503`, `connect: ...`): no token, header or body.

use crate::app::App;
use crate::error::GatewayError;
use crate::health::rules::TargetState;
use crate::health::{store, Backend};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub async fn get(app: &App) -> Result<Response<Full<Bytes>>, GatewayError> {
    let health = &app.health;
    let cfg = app.config();
    let mut cells: Vec<_> = health.cells().values().cloned().collect();
    cells.sort_by(|a, b| a.id.cmp(&b.id));
    let unix_now = crate::quota::now_ms();
    let local_now = health.now();
    // this replica's clock to Unix ms
    let local_to_unix = |t: u64| (unix_now + t).saturating_sub(local_now);
    // every provider read at once: a slow Redis costs one timeout, not one each
    let reads = futures_util::future::join_all(cells.iter().map(|cell| async move {
        match &health.backend {
            Backend::Memory => None,
            Backend::Redis(conn) => {
                Some(store::exchange(conn, &health.channel, &cell.id, &cell.labels, &[]).await)
            }
        }
    }))
    .await;
    let mut rows = Vec::new();
    for (cell, read) in cells.iter().zip(reads) {
        let local = cell.local_states();
        let (fleet, fleet_now, view): (Vec<TargetState>, u64, &str) = match read {
            None => (local.clone(), local_now, "fleet"),
            Some(read) => {
                match read {
                    Ok(s) => (
                        (0..cell.targets())
                            .map(|t| s.targets.get(&t).cloned().unwrap_or_default())
                            .collect(),
                        s.now,
                        "fleet",
                    ),
                    // Redis cannot be reached: what this replica knows alone
                    Err(_) => (local.clone(), local_now, "replica"),
                }
            }
        };
        let to_unix = |t: u64| {
            if view == "fleet" && matches!(health.backend, Backend::Redis(_)) {
                t
            } else {
                local_to_unix(t)
            }
        };
        let prov = cfg.providers.get(&*cell.id);
        let passive = prov.is_some_and(|p| p.passive.is_some());
        let active = prov.is_some_and(|p| p.active.is_some());
        for (t, s) in fleet.iter().enumerate() {
            let ejected = s.until > fleet_now;
            let mine = local.get(t).filter(|l| l.ejected(local_now));
            let mut row = json!({
                "provider": &*cell.id,
                "token_index": if t == 0 { Value::Null } else { json!(t - 1) },
                "healthy": !ejected,
                "ejected_until": if ejected { time_ms(to_unix(s.until)) } else { Value::Null },
                "consecutive_failures": s.fails,
                "last_error": s.last_error,
                "source": s.source.as_str(),
                "ejections_in_a_row": s.ejections,
                "local_ejected_until": mine.map_or(Value::Null, |l| time_ms(local_to_unix(l.until))),
                "view": view,
                "passive": passive,
                "active": active,
            });
            if t == 0 {
                row["in_flight"] = json!(cell.busy());
            }
            rows.push(row);
        }
    }
    Ok(super::json(StatusCode::OK, &Value::Array(rows)))
}

/// Unix ms as RFC 3339 with milliseconds (UTC).
fn time_ms(t: u64) -> Value {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t) * 1_000_000)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}
