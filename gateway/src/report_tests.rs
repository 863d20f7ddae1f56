use super::*;
use serde_json::{json, Value};

fn dims(tenant: &str, consumer: &str, model: &str, provider: &str, day: &str) -> Dims {
    Dims {
        tenant: tenant.into(),
        consumer: consumer.into(),
        model: model.into(),
        provider: provider.into(),
        day: day.into(),
    }
}

/// requests = n, every token figure a multiple of n, cost n x 0.001
fn figures(n: u64) -> Totals {
    Totals {
        requests: n,
        input_tokens: 10 * n,
        output_tokens: 20 * n,
        cached_tokens: 3 * n,
        cache_write_tokens: 2 * n,
        reasoning_tokens: n,
        cost: 1_000_000 * n,
        unpriced_requests: 0,
        estimated_requests: n / 2,
    }
}

fn day(s: &str) -> jiff::civil::Date {
    parse_day(s).unwrap()
}

fn query(group_by: &str) -> Query {
    Query {
        from: day("2026-03-01"),
        to: day("2026-03-31"),
        group_by: GroupBy::parse(group_by).unwrap(),
        tenant: None,
        format: Format::Csv,
    }
}

fn rows() -> Vec<(Dims, Totals)> {
    vec![
        (
            dims("zeta", "", "gpt-4o", "openai", "2026-03-02"),
            figures(1),
        ),
        (
            dims("acme", "bob", "gpt-4o-mini", "openai", "2026-03-02"),
            figures(2),
        ),
        (
            dims("acme", "alice", "gpt-4o", "azure", "2026-03-01"),
            figures(4),
        ),
        (
            dims("acme", "alice", "gpt-4o", "openai", "2026-03-03"),
            figures(8),
        ),
        // outside the days asked for
        (
            dims("acme", "alice", "gpt-4o", "openai", "2026-02-28"),
            figures(100),
        ),
        (
            dims("acme", "alice", "gpt-4o", "openai", "2026-04-01"),
            figures(200),
        ),
    ]
}

#[test]
fn groups_are_summed_sorted_and_totalled_within_the_days() {
    let r = Report::build(query("model,tenant"), "USD", rows());
    let keys: Vec<(&str, &str)> = r
        .rows
        .iter()
        .map(|(d, _)| (d.tenant.as_str(), d.model.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            ("acme", "gpt-4o"),
            ("acme", "gpt-4o-mini"),
            ("zeta", "gpt-4o")
        ]
    );
    // ungrouped columns are empty in the keys
    assert!(r
        .rows
        .iter()
        .all(|(d, _)| d.consumer.is_empty() && d.day.is_empty()));
    assert_eq!(r.rows[0].1, figures(12));
    assert_eq!(r.rows[1].1, figures(2));
    assert_eq!(r.totals, figures(15));
}

#[test]
fn the_tenant_filter_keeps_one_tenant() {
    let mut q = query("tenant,consumer");
    q.tenant = Some("zeta".into());
    let r = Report::build(q, "USD", rows());
    assert_eq!(r.rows, vec![(dims("zeta", "", "", "", ""), figures(1))]);
    assert_eq!(r.totals, figures(1));
}

#[test]
fn csv_has_a_header_a_line_per_group_and_a_totals_line() {
    let r = Report::build(query("tenant,day"), "USD", rows());
    assert_eq!(
        r.csv(),
        "tenant,day,requests,input_tokens,output_tokens,cached_tokens,cache_write_tokens,reasoning_tokens,cost,unpriced_requests,estimated_requests\n\
         acme,2026-03-01,4,40,80,12,8,4,0.004,0,2\n\
         acme,2026-03-02,2,20,40,6,4,2,0.002,0,1\n\
         acme,2026-03-03,8,80,160,24,16,8,0.008,0,4\n\
         zeta,2026-03-02,1,10,20,3,2,1,0.001,0,0\n\
         total,,15,150,300,45,30,15,0.015,0,7\n"
    );
    let empty = Report::build(query("day"), "USD", Vec::new());
    assert!(empty.csv().ends_with("\ntotal,0,0,0,0,0,0,0.00,0,0\n"));
}

#[test]
fn csv_quotes_values_with_commas_quotes_and_line_breaks() {
    let odd = vec![(
        dims("acme", "", "a,b \"c\"\nd", "openai", "2026-03-05"),
        Totals {
            requests: 1,
            cost: 1_500_000_000,
            ..Totals::default()
        },
    )];
    let r = Report::build(query("consumer,model"), "USD", odd);
    let csv = r.csv();
    let lines: Vec<&str> = csv.splitn(2, '\n').collect();
    // the anonymous consumer is an empty field, the model one quoted field
    assert_eq!(
        lines[1],
        ",\"a,b \"\"c\"\"\nd\",1,0,0,0,0,0,1.50,0,0\ntotal,,1,0,0,0,0,0,1.50,0,0\n"
    );
    // read back by a CSV reader: the same values
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    let first = rd.records().next().unwrap().unwrap();
    assert_eq!(&first[1], "a,b \"c\"\nd");
}

#[test]
fn json_has_the_query_the_rows_and_the_totals() {
    let mut q = query("tenant,model");
    q.tenant = Some("zeta".into());
    q.format = Format::Json;
    let r = Report::build(q, "EUR", rows());
    let (ct, text) = r.render();
    assert_eq!(ct, "application/json");
    assert!(text.ends_with("}\n"));
    let v: Value = serde_json::from_str(&text).unwrap();
    let fig = json!({"requests": 1, "input_tokens": 10, "output_tokens": 20, "cached_tokens": 3,
        "cache_write_tokens": 2, "reasoning_tokens": 1, "cost": "0.001",
        "unpriced_requests": 0, "estimated_requests": 0});
    let mut row = fig.clone();
    row["tenant"] = json!("zeta");
    row["model"] = json!("gpt-4o");
    assert_eq!(
        v,
        json!({"currency": "EUR", "from": "2026-03-01", "to": "2026-03-31", "tenant": "zeta",
               "group_by": ["tenant", "model"], "rows": [row], "totals": fig})
    );
    // the group columns come first in a row, in the report's order
    assert!(text.contains("\"rows\":[{\"tenant\":\"zeta\",\"model\":\"gpt-4o\",\"requests\":1,"));
}

#[test]
fn group_by_names_are_checked_and_put_in_the_report_order() {
    let g = GroupBy::parse("day,tenant").unwrap();
    let names: Vec<&str> = g.columns().map(Column::name).collect();
    assert_eq!(names, ["tenant", "day"]);
    assert_eq!(GroupBy::default().columns().count(), 5);
    for bad in ["", "tenant,", "tenant,tenant", "user", "Tenant"] {
        assert!(GroupBy::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn days_are_real_dates_written_in_full() {
    assert_eq!(parse_day("2024-02-29").unwrap().to_string(), "2024-02-29");
    for bad in [
        "2023-02-29",
        "2026-13-01",
        "2026-1-01",
        "20260101",
        "2026-01-01T00:00:00Z",
        "",
        "2026-01-0a",
    ] {
        assert!(parse_day(bad).is_err(), "{bad:?}");
    }
}
