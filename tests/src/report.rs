//! The usage report read back — `GET /admin/usage/report` and `gateway bill`,
//! as JSON or CSV — and the report the access-log lines of the same requests
//! add up to, both as [`Report`]: rows keyed by the values of the group
//! columns, figures as `shared::ledger::Totals` (costs in nano-units, parsed
//! from decimal text with `shared::money::Decimal`, never as floats).

use serde_json::Value;
use shared::ai_log::AccessLogLine;
use shared::ledger::Totals;
use shared::money::{Decimal, Nanos};
use std::collections::{BTreeMap, BTreeSet};

/// The columns a report can group by, in the order reports show them.
pub const COLUMNS: [&str; 5] = ["tenant", "consumer", "model", "provider", "day"];

/// The figure columns, in the order reports show them.
pub const FIGURES: [&str; 9] = [
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost",
    "unpriced_requests",
    "estimated_requests",
];

/// Decimal text of the currency (`0.000125`) in nano-units; panics on
/// anything else.
pub fn amount(text: &str) -> Nanos {
    Decimal::parse(text)
        .ok()
        .and_then(|d| d.to_nanos())
        .unwrap_or_else(|| panic!("{text:?} is not an amount"))
}

/// A report: its group columns, one row per group (keyed by the columns'
/// values, in the columns' order), and the totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub columns: Vec<String>,
    pub rows: BTreeMap<Vec<String>, Totals>,
    pub totals: Totals,
}

impl Report {
    /// The report the access-log lines add up to, grouped by `columns`: the
    /// requests an upstream answered (their line has `ai_log.cost`), under
    /// tenant, consumer (empty when anonymous), `ai_log.cost_model`,
    /// `ai_log.provider` and the UTC day `start_time` begins with.
    pub fn of_log_lines<'a>(
        lines: impl IntoIterator<Item = &'a AccessLogLine>,
        columns: &[&str],
    ) -> Report {
        let mut r = Report::empty(columns);
        for l in lines {
            let a = &l.ai_log;
            let Some(cost) = &a.cost else { continue };
            let value = |c: &str| match c {
                "tenant" => a.tenant.clone(),
                "consumer" => a.consumer.clone(),
                "model" => a.cost_model.clone(),
                "provider" => a.provider.clone(),
                "day" => l.start_time.get(..10).map(str::to_string),
                other => panic!("no report column {other:?}"),
            };
            let key = columns
                .iter()
                .map(|c| value(c).unwrap_or_default())
                .collect();
            let t = Totals {
                requests: 1,
                input_tokens: a.input_token,
                output_tokens: a.output_token,
                cached_tokens: a.cached_tokens,
                cache_write_tokens: a.cache_creation_tokens,
                reasoning_tokens: a.reasoning_tokens,
                cost: amount(cost),
                unpriced_requests: u64::from(a.cost_unpriced),
                estimated_requests: u64::from(a.cost_estimated),
            };
            r.rows.entry(key).or_default().add(&t);
            r.totals.add(&t);
        }
        r
    }

    /// A JSON report (`{"group_by", "rows", "totals", ...}`).
    pub fn from_json(v: &Value) -> Report {
        let columns: Vec<&str> = v["group_by"]
            .as_array()
            .unwrap_or_else(|| panic!("no group_by: {v}"))
            .iter()
            .map(|c| c.as_str().unwrap_or_default())
            .collect();
        let mut r = Report::empty(&columns);
        for row in v["rows"].as_array().into_iter().flatten() {
            let key = columns
                .iter()
                .map(|c| match row[*c].as_str() {
                    Some(s) => s.to_string(),
                    None => panic!("row without {c}: {row}"),
                })
                .collect();
            let dup = r.rows.insert(key, json_figures(row));
            assert!(dup.is_none(), "a group twice: {v}");
        }
        r.totals = json_figures(&v["totals"]);
        r
    }

    /// A CSV report: a header line (the group columns, then [`FIGURES`]), a
    /// line per group and a last line of totals (`total` in the first column).
    /// Values are taken as written: the test's names hold no comma or quote.
    pub fn from_csv(text: &str) -> Report {
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        let n = header.len().saturating_sub(FIGURES.len());
        assert!(
            n > 0 && header[n..] == FIGURES && header[..n].iter().all(|c| COLUMNS.contains(c)),
            "not a report's header: {text}"
        );
        let mut r = Report::empty(&header[..n]);
        let lines: Vec<Vec<&str>> = lines
            .map(|line| {
                assert!(!line.contains('"'), "a quoted value: {line}");
                let f: Vec<&str> = line.split(',').collect();
                assert_eq!(f.len(), header.len(), "{line}");
                f
            })
            .collect();
        let figures = |f: &[&str]| {
            let a: Vec<u64> = f[n..]
                .iter()
                .zip(FIGURES)
                .map(|(v, name)| match name {
                    "cost" => amount(v),
                    _ => v.parse().unwrap_or_else(|e| panic!("{name} {v:?}: {e}")),
                })
                .collect();
            Totals::from_array(a.try_into().unwrap_or_else(|_| unreachable!()))
        };
        let Some((last, groups)) = lines.split_last() else {
            panic!("no totals line: {text}")
        };
        assert!(
            last[0] == "total" && last[1..n].iter().all(|v| v.is_empty()),
            "the last line is not the totals: {text}"
        );
        r.totals = figures(last);
        for f in groups {
            let key = f[..n].iter().map(|v| v.to_string()).collect();
            assert!(
                r.rows.insert(key, figures(f)).is_none(),
                "a group twice: {text}"
            );
        }
        r
    }

    /// What differs from `want`, a line per group (empty when nothing does).
    pub fn diff(&self, want: &Report) -> String {
        let mut out = String::new();
        if self.columns != want.columns {
            out += &format!("columns {:?}, want {:?}\n", self.columns, want.columns);
        }
        let keys: BTreeSet<_> = self.rows.keys().chain(want.rows.keys()).collect();
        for k in keys {
            let (got, w) = (self.rows.get(k), want.rows.get(k));
            if got != w {
                out += &format!("{k:?}:\n  got  {got:?}\n  want {w:?}\n");
            }
        }
        if self.totals != want.totals {
            out += &format!(
                "totals:\n  got  {:?}\n  want {:?}\n",
                self.totals, want.totals
            );
        }
        out
    }

    fn empty(columns: &[&str]) -> Report {
        Report {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: BTreeMap::new(),
            totals: Totals::default(),
        }
    }
}

/// A JSON row's (or the totals') figures.
fn json_figures(v: &Value) -> Totals {
    let n = |k: &str| match v[k].as_u64() {
        Some(n) => n,
        None => panic!("{k} is not a count: {v}"),
    };
    Totals {
        requests: n("requests"),
        input_tokens: n("input_tokens"),
        output_tokens: n("output_tokens"),
        cached_tokens: n("cached_tokens"),
        cache_write_tokens: n("cache_write_tokens"),
        reasoning_tokens: n("reasoning_tokens"),
        cost: amount(v["cost"].as_str().unwrap_or_default()),
        unpriced_requests: n("unpriced_requests"),
        estimated_requests: n("estimated_requests"),
    }
}

/// The `used` figure of window `quota` in a `GET /admin/usage` answer.
pub fn used_in(v: &Value, quota: &str) -> Option<u64> {
    match v {
        Value::Object(o) if o.get("quota").and_then(Value::as_str) == Some(quota) => {
            o.get("used").and_then(Value::as_u64)
        }
        Value::Object(o) => o.values().find_map(|x| used_in(x, quota)),
        Value::Array(a) => a.iter().find_map(|x| used_in(x, quota)),
        _ => None,
    }
}
