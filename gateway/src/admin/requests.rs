//! `GET /admin/requests`: the last requests this replica finished, as their
//! access-log records (payloads only when `log_payloads` put them there),
//! newest first, filtered by `tenant`, `consumer`, `model` and `status`.

use super::usage::{bad_query, unknown_parameter};
use crate::app::App;
use crate::error::GatewayError;
use crate::telemetry::recent::{Filter, CAPACITY};
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

/// Records answered when `limit` is not given.
const DEFAULT_LIMIT: usize = 100;

/// Reads `?limit=&tenant=&consumer=&model=&status=` (an empty value counts
/// as absent).
pub fn parse(query: Option<&str>) -> Result<(Filter, usize), GatewayError> {
    let mut f = Filter::default();
    let mut limit = DEFAULT_LIMIT;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if v.is_empty() {
            continue;
        }
        match k.as_ref() {
            "tenant" => f.tenant = Some(v.into_owned()),
            "consumer" => f.consumer = Some(v.into_owned()),
            "model" => f.model = Some(v.into_owned()),
            "status" => {
                f.status = Some(
                    v.parse::<u16>()
                        .ok()
                        .filter(|s| (100..=599).contains(s))
                        .ok_or_else(|| bad_query("status is an HTTP status, 100 to 599"))?,
                )
            }
            "limit" => {
                limit = v
                    .parse::<usize>()
                    .ok()
                    .filter(|l| (1..=CAPACITY).contains(l))
                    .ok_or_else(|| bad_query(format!("limit is 1 to {CAPACITY}")))?
            }
            other => {
                return Err(unknown_parameter(
                    other,
                    "limit, tenant, consumer, model, status",
                ))
            }
        }
    }
    Ok((f, limit))
}

/// `{"replica": "this", "capacity": N, "records": [...]}`.
pub fn get(app: &App, query: Option<&str>) -> Result<Response<Full<Bytes>>, GatewayError> {
    let (filter, limit) = parse(query)?;
    let records = app.views.recent.query(&filter, limit);
    let body = serde_json::json!({
        "replica": "this",
        "capacity": CAPACITY,
        "records": records.iter().map(|r| &**r).collect::<Vec<_>>(),
    });
    Ok(super::json(StatusCode::OK, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_read_and_bounded() {
        let (f, limit) = parse(Some("tenant=acme&status=429&limit=5&model=")).unwrap();
        assert_eq!(f.tenant.as_deref(), Some("acme"));
        assert_eq!(f.status, Some(429));
        assert_eq!(f.model, None);
        assert_eq!(limit, 5);
        assert_eq!(parse(None).unwrap().1, DEFAULT_LIMIT);
        for bad in [
            "limit=0",
            "limit=100000",
            "status=99",
            "status=x",
            "bogus=1",
        ] {
            assert!(parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
