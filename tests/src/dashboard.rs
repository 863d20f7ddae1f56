//! The Grafana dashboard `deploy/grafana/gateway-dashboard.json` read for the
//! tests: its panels (the rows' nested panels included), each panel target's
//! query with the data source it goes to, the template variables, and
//! Grafana's variable syntax (`$name`, `${name}`, `${name:format}`,
//! `[[name]]`) replaced by fixed values, so a real Prometheus can run an
//! expression as Grafana would send it.

use crate::harness::workspace_dir;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The dashboard's path in the repository.
pub const DASHBOARD: &str = "deploy/grafana/gateway-dashboard.json";

/// What Grafana's own variables stand for when a test runs an expression:
/// windows long enough to hold a test's whole traffic (Prometheus started
/// seconds before it), as a dashboard showing the last minutes would.
pub const GRAFANA_BUILTINS: [(&str, &str); 5] = [
    ("__rate_interval", "1m"),
    ("__interval", "15s"),
    ("__range", "5m"),
    ("__range_s", "300"),
    ("__range_ms", "300000"),
];

/// The dashboard, parsed.
pub struct Dashboard {
    json: Value,
}

/// One panel target's query.
#[derive(Debug, Clone)]
pub struct Query {
    /// the panel's title
    pub panel: String,
    pub ref_id: String,
    /// the data source type (`prometheus`, `tempo`, ...): the target's, else its panel's
    pub datasource: String,
    /// PromQL for a Prometheus target, else the target's `query` (TraceQL, ...)
    pub expr: String,
}

impl Dashboard {
    /// Reads and parses [`DASHBOARD`]; panics when it cannot.
    pub fn load() -> Dashboard {
        let path = workspace_dir().join(DASHBOARD);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        let json =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?} is not JSON: {e}"));
        Dashboard { json }
    }

    pub fn json(&self) -> &Value {
        &self.json
    }

    /// Every panel, rows' nested panels included.
    pub fn panels(&self) -> Vec<&Value> {
        fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
            for p in list.as_array().into_iter().flatten() {
                out.push(p);
                if let Some(inner) = p.get("panels") {
                    walk(inner, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.json["panels"], &mut out);
        out
    }

    /// Every panel target's query, in the dashboard's order.
    pub fn queries(&self) -> Vec<Query> {
        let mut out = Vec::new();
        for p in self.panels() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let datasource = t["datasource"]["type"]
                    .as_str()
                    .or_else(|| p["datasource"]["type"].as_str())
                    .unwrap_or("")
                    .to_string();
                let expr = t["expr"].as_str().or_else(|| t["query"].as_str());
                out.push(Query {
                    panel: p["title"].as_str().unwrap_or("(untitled)").to_string(),
                    ref_id: t["refId"].as_str().unwrap_or("").to_string(),
                    datasource,
                    expr: expr.unwrap_or("").to_string(),
                });
            }
        }
        out
    }

    /// The PromQL expressions of the panels' targets.
    pub fn exprs(&self) -> Vec<String> {
        self.panels()
            .into_iter()
            .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["expr"].as_str().map(str::to_string))
            .collect()
    }

    /// `templating.list`.
    pub fn variables(&self) -> Vec<&Value> {
        self.json["templating"]["list"]
            .as_array()
            .map(|l| l.iter().collect())
            .unwrap_or_default()
    }

    /// The value of every variable when "All" is selected (a query variable's
    /// `allValue`, `.*` when it has none; a data source variable its type),
    /// and [`GRAFANA_BUILTINS`].
    pub fn all_values(&self) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = GRAFANA_BUILTINS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for v in self.variables() {
            let Some(name) = v["name"].as_str() else {
                continue;
            };
            let value = match v["type"].as_str() {
                Some("datasource") => v["query"].as_str().unwrap_or(""),
                _ => v["allValue"].as_str().unwrap_or(".*"),
            };
            out.insert(name.to_string(), value.to_string());
        }
        out
    }
}

/// `text` with every Grafana variable reference (`$name`, `${name}`,
/// `${name:format}`, `[[name]]`) replaced by its value in `values`; an
/// error naming the first variable `values` lacks.
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let (name, len) = if let Some(braced) = tail.strip_prefix("${") {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {text}"))?;
            let inner = &braced[..end];
            (inner.split(':').next().unwrap_or(inner), end + 3)
        } else if let Some(bracketed) = tail.strip_prefix("[[") {
            let end = bracketed
                .find("]]")
                .ok_or_else(|| format!("unclosed [[ in {text}"))?;
            (&bracketed[..end], end + 4)
        } else if let Some(plain) = tail.strip_prefix('$') {
            let end = plain.find(|c: char| !ident(c)).unwrap_or(plain.len());
            (&plain[..end], end + 1)
        } else {
            // a `[` that opens a range selector
            out.push('[');
            rest = &tail[1..];
            continue;
        };
        if name.is_empty() {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
            continue;
        }
        let value = values
            .get(name)
            .ok_or_else(|| format!("unknown variable ${name} in {text}"))?;
        out.push_str(value);
        rest = &tail[len..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A template variable's `label_values(<selector>, <label>)` query as PromQL
/// that returns one series per value (`count by (<label>) (<selector>)`);
/// None for another kind of variable query.
pub fn label_values_promql(definition: &str) -> Option<String> {
    let inner = definition
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some(format!("count by ({}) ({})", label.trim(), selector.trim()))
}

/// The prefixes of the metric names the gateway exposes.
pub const PREFIXES: [&str; 3] = [
    "route_upstream_model_consumer_metric_",
    "gen_ai_",
    "gateway_",
];

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The vector selectors of one PromQL expression: each metric name with one
/// of [`PREFIXES`] and its label matchers when it has them
/// (`name{a=~"x"}`), found outside label matchers (`{...}`), range
/// selectors (`[...]`), strings and label lists (`by (...)`, `without (...)`,
/// `on (...)`, ...).
pub fn selectors(expr: &str) -> Vec<String> {
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    let skip_to = |from: usize, close: char| -> usize {
        let mut j = from;
        let mut quote = None;
        while j < chars.len() {
            let c = chars[j];
            match quote {
                Some(_) if c == '\\' => j += 1,
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == close => return j + 1,
                None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
                None => {}
            }
            j += 1;
        }
        j
    };
    let next_non_space = |from: usize| {
        let mut j = from;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' => i = skip_to(i + 1, '}'),
            '[' => i = skip_to(i + 1, ']'),
            '"' | '\'' | '`' => i = skip_to(i + 1, c),
            c if ident_char(c) => {
                let start = i;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let j = next_non_space(i);
                if LABEL_LISTS.contains(&word.as_str()) {
                    if chars.get(j) == Some(&'(') {
                        i = skip_to(j + 1, ')');
                    }
                } else if PREFIXES.iter().any(|p| word.starts_with(p)) {
                    let mut selector = word;
                    if chars.get(j) == Some(&'{') {
                        let end = skip_to(j + 1, '}');
                        selector.extend(&chars[j..end]);
                        i = end;
                    }
                    found.push(selector);
                }
            }
            _ => i += 1,
        }
    }
    found
}

/// The metric names of one PromQL expression (see [`selectors`]).
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    selectors(expr)
        .into_iter()
        .map(|s| match s.split_once('{') {
            Some((name, _)) => name.to_string(),
            None => s,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<String, String> {
        [
            ("route", ".*"),
            ("__rate_interval", "1m"),
            ("__range", "5m"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn selectors_skip_labels_ranges_and_strings() {
        let expr = r#"histogram_quantile(0.95, sum by (le, gen_ai_provider_name) (rate(gen_ai_client_operation_duration_seconds_bucket{gen_ai_provider_name=~"$provider", x="gateway_nope"}[$__rate_interval]))) / on (route) group_left(gen_ai_token_type) gateway_requests_total"#;
        assert_eq!(
            selectors(expr),
            [
                r#"gen_ai_client_operation_duration_seconds_bucket{gen_ai_provider_name=~"$provider", x="gateway_nope"}"#,
                "gateway_requests_total",
            ]
        );
        let want: BTreeSet<String> = [
            "gen_ai_client_operation_duration_seconds_bucket",
            "gateway_requests_total",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        assert_eq!(metric_names(expr), want);
    }

    #[test]
    fn variables_are_replaced_in_every_syntax() {
        let got = substitute(
            r#"sum(rate(x{route=~"$route", a=~"${route}", b=~"${route:regex}", c=~"[[route]]"}[$__rate_interval])) + increase(y[$__range])"#,
            &values(),
        );
        assert_eq!(
            got.as_deref(),
            Ok(r#"sum(rate(x{route=~".*", a=~".*", b=~".*", c=~".*"}[1m])) + increase(y[5m])"#)
        );
    }

    #[test]
    fn an_unknown_variable_is_named() {
        let got = substitute("rate(x[$__nope])", &values());
        assert!(got.is_err_and(|e| e.contains("$__nope")));
    }

    #[test]
    fn label_values_become_a_count_by_the_label() {
        assert_eq!(
            label_values_promql(r#"label_values(m{ai_route=~"$route"}, ai_cluster)"#).as_deref(),
            Some(r#"count by (ai_cluster) (m{ai_route=~"$route"})"#)
        );
        assert_eq!(label_values_promql("query_result(up)"), None);
    }
}
