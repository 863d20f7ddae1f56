//! `GET /admin/usage/report?from=&to=&group_by=&tenant=&format=json|csv`: the
//! usage ledger's days summed by the columns asked for, with totals (the same
//! bytes `gateway bill` writes for the same requests; see `crate::report`).
//!
//! Defaults: `to` today (UTC), `from` the first day of `to`'s month, `group_by`
//! every column (tenant,consumer,model,provider,day), every tenant, JSON. A
//! report covers at most [`MAX_DAYS`] days (what one ledger read takes).

use super::usage::{bad_query, unknown_parameter};
use crate::app::App;
use crate::error::GatewayError;
use crate::quota::ledger::MAX_DAYS;
use crate::redis_conn::StateError;
use crate::report::{parse_day, Format, GroupBy, Query, Report};
use bytes::Bytes;
use http::{header, HeaderValue, Response};
use http_body_util::Full;
use jiff::civil::Date;
use shared::ledger::{Dims, Totals};

/// Reads `?from=&to=&group_by=&tenant=&format=`; an empty value counts as
/// absent, `today` is the default `to`.
pub fn parse(query: Option<&str>, today: Date) -> Result<Query, GatewayError> {
    let (mut from, mut to, mut group_by, mut tenant, mut format) = (None, None, None, None, None);
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let slot = match k.as_ref() {
            "from" => &mut from,
            "to" => &mut to,
            "group_by" => &mut group_by,
            "tenant" => &mut tenant,
            "format" => &mut format,
            other => {
                return Err(unknown_parameter(
                    other,
                    "from, to, group_by, tenant, format",
                ))
            }
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(bad_query(format!("{k} is given twice")));
        }
    }
    let given = |v: Option<String>| v.filter(|v| !v.is_empty());
    let day = |name: &str, v: &str| parse_day(v).map_err(|e| bad_query(format!("{name} {e}")));
    let to = match given(to) {
        Some(v) => day("to", &v)?,
        None => today,
    };
    let from = match given(from) {
        Some(v) => day("from", &v)?,
        None => to.first_of_month(),
    };
    if from > to {
        return Err(bad_query("from is after to"));
    }
    let days = to
        .since(from)
        .ok()
        .and_then(|s| u64::try_from(s.get_days()).ok())
        .map_or(u64::MAX, |d| d.saturating_add(1));
    if days > MAX_DAYS {
        return Err(bad_query(format!(
            "from..to covers {days} days; a report covers at most {MAX_DAYS}"
        )));
    }
    let group_by = match given(group_by) {
        Some(v) => GroupBy::parse(&v).map_err(bad_query)?,
        None => GroupBy::default(),
    };
    let tenant = given(tenant);
    if let Some(t) = &tenant {
        crate::config::check_name("tenant id", t).map_err(|e| bad_query(format!("tenant: {e}")))?;
    }
    let format = match given(format) {
        Some(v) => Format::parse(&v).map_err(bad_query)?,
        None => Format::Json,
    };
    Ok(Query {
        from,
        to,
        group_by,
        tenant,
        format,
    })
}

/// The report of `rows` for `q`, in its format.
pub fn render(q: &Query, rows: Vec<(Dims, Totals)>, currency: &str) -> Response<Full<Bytes>> {
    let (content_type, text) = Report::build(q.clone(), currency, rows).render();
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub async fn get(app: &App, query: Option<&str>) -> Result<Response<Full<Bytes>>, GatewayError> {
    let q = parse(query, crate::report::today_utc())?;
    if !app.config().budget.ledger {
        return Err(GatewayError::not_found(
            "ledger.enabled is false: no usage ledger is kept (`gateway bill` reports from the access logs)",
        ));
    }
    let rows = ledger_rows(app, &q).await.map_err(|e| {
        GatewayError::state_unavailable(format!("the usage ledger cannot be read: {e}"))
    })?;
    Ok(render(&q, rows, &app.currency()))
}

/// The ledger's rows of the query's days (and tenant).
async fn ledger_rows(app: &App, q: &Query) -> Result<Vec<(Dims, Totals)>, StateError> {
    let (from, to) = (q.from.to_string(), q.to.to_string());
    app.quotas
        .store
        .ledger_read(&from, &to, q.tenant.as_deref())
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use http_body_util::BodyExt;
    use shared::ledger::Totals;

    fn today() -> Date {
        parse_day("2026-03-17").unwrap()
    }

    fn fails(q: &str) -> String {
        let e = parse(Some(q), today()).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(e.code, "invalid_query", "{q}");
        e.message
    }

    #[test]
    fn defaults_are_this_month_every_column_json() {
        let q = parse(None, today()).unwrap();
        assert_eq!(
            (q.from.to_string(), q.to.to_string()),
            ("2026-03-01".into(), "2026-03-17".into())
        );
        assert_eq!(q.group_by, GroupBy::default());
        assert_eq!((q.tenant, q.format), (None, Format::Json));
        // empty values count as absent; `to` alone starts its month
        let q = parse(
            Some("from=&to=2025-12-05&group_by=&tenant=&format="),
            today(),
        )
        .unwrap();
        assert_eq!(
            (q.from.to_string(), q.to.to_string()),
            ("2025-12-01".into(), "2025-12-05".into())
        );
        let q = parse(
            Some("from=2026-01-01&to=2026-01-31&group_by=model,tenant&tenant=acme&format=csv"),
            today(),
        )
        .unwrap();
        assert_eq!(q.group_by, GroupBy::parse("tenant,model").unwrap());
        assert_eq!((q.tenant.as_deref(), q.format), (Some("acme"), Format::Csv));
    }

    #[test]
    fn bad_queries_get_400_with_the_reason() {
        assert!(fails("from=2026-3-01").contains("from is not a date YYYY-MM-DD"));
        assert!(fails("to=2026-02-30").contains("to is not a date"));
        assert!(fails("from=2026-03-02&to=2026-03-01").contains("from is after to"));
        assert!(fails("from=2025-01-01&to=2026-03-01").contains("at most 400"));
        // 400 days is the most
        assert!(parse(Some("from=2025-02-05&to=2026-03-11"), today()).is_ok());
        assert!(fails("from=2025-02-05&to=2026-03-12").contains("covers 401 days"));
        assert!(fails("group_by=tenant,user").contains("unknown column \"user\""));
        assert!(fails("group_by=day,day").contains("day is named twice"));
        assert!(fails("tenant=a%2Fb").contains("tenant: a tenant id is 1 to 64"));
        assert!(fails("format=xml").contains("json or csv"));
        assert!(fails("page=2").contains("unknown parameter \"page\""));
        assert!(fails("tenant=a&tenant=b").contains("tenant is given twice"));
    }

    #[tokio::test]
    async fn render_answers_the_report_in_its_format() {
        let q = parse(Some("group_by=tenant&format=csv"), today()).unwrap();
        let rows = vec![(
            Dims {
                tenant: "acme".into(),
                day: "2026-03-02".into(),
                ..Dims::default()
            },
            Totals {
                requests: 2,
                cost: 1_250_000,
                ..Totals::default()
            },
        )];
        let resp = render(&q, rows.clone(), "USD");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE],
            "text/csv; charset=utf-8"
        );
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, Report::build(q, "USD", rows).csv().as_bytes());
        assert!(std::str::from_utf8(&body)
            .unwrap()
            .contains("\nacme,2,0,0,0,0,0,0.00125,0,0\n"));
    }
}
