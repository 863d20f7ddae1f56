//! The usage report: usage-ledger rows (tenant x consumer x model x provider x
//! day) summed by the columns asked for, sorted by them, with totals, as CSV or
//! JSON. Pure, and the one renderer of both `GET /admin/usage/report` and
//! `gateway bill`: the same rows and query give the same bytes.

use serde::Serialize;
use shared::ledger::{Dims, Totals};
use shared::money::format_nanos;
use std::collections::BTreeMap;

/// A column rows are grouped by. The order of the variants is the order of the
/// columns and of the sort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Column {
    Tenant,
    Consumer,
    Model,
    Provider,
    Day,
}

impl Column {
    pub const ALL: [Column; 5] = [
        Column::Tenant,
        Column::Consumer,
        Column::Model,
        Column::Provider,
        Column::Day,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Column::Tenant => "tenant",
            Column::Consumer => "consumer",
            Column::Model => "model",
            Column::Provider => "provider",
            Column::Day => "day",
        }
    }

    fn of(self, d: &Dims) -> &str {
        match self {
            Column::Tenant => &d.tenant,
            Column::Consumer => &d.consumer,
            Column::Model => &d.model,
            Column::Provider => &d.provider,
            Column::Day => &d.day,
        }
    }
}

/// The columns a report groups by: a non-empty subset of [`Column::ALL`],
/// always shown and sorted in that order (tenant, consumer, model, provider,
/// day), whatever order they were named in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy([bool; 5]);

impl Default for GroupBy {
    /// Every column: the ledger's own grain.
    fn default() -> Self {
        GroupBy([true; 5])
    }
}

impl GroupBy {
    /// `tenant,model` (comma-separated, each name at most once).
    pub fn parse(s: &str) -> Result<GroupBy, String> {
        let mut on = [false; 5];
        for name in s.split(',').map(str::trim) {
            let Some(i) = Column::ALL.iter().position(|c| c.name() == name) else {
                let mut shown = name.to_string();
                crate::text::cut(&mut shown, 40);
                return Err(format!(
                    "group_by: unknown column {shown:?}; the columns are tenant, consumer, model, provider, day"
                ));
            };
            if std::mem::replace(&mut on[i], true) {
                return Err(format!("group_by: {name} is named twice"));
            }
        }
        Ok(GroupBy(on))
    }

    pub fn columns(&self) -> impl Iterator<Item = Column> + '_ {
        Column::ALL.into_iter().filter(|c| self.0[*c as usize])
    }

    /// `d` with the columns not grouped by emptied: the key of its group.
    fn key(&self, d: &Dims) -> Dims {
        let keep = |c: Column, v: &String| {
            if self.0[c as usize] {
                v.clone()
            } else {
                String::new()
            }
        };
        Dims {
            tenant: keep(Column::Tenant, &d.tenant),
            consumer: keep(Column::Consumer, &d.consumer),
            model: keep(Column::Model, &d.model),
            provider: keep(Column::Provider, &d.provider),
            day: keep(Column::Day, &d.day),
        }
    }
}

/// `YYYY-MM-DD`, a real date; the text back as the ledger writes days.
pub fn parse_day(s: &str) -> Result<jiff::civil::Date, String> {
    let shape = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    shape
        .then(|| s.parse::<jiff::civil::Date>().ok())
        .flatten()
        .ok_or_else(|| "is not a date YYYY-MM-DD".to_string())
}

/// Today's date in UTC (the ledger's days are UTC dates).
pub fn today_utc() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// How the report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Json,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err("format: json or csv".into()),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// What a report covers and how it is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// first day, inclusive
    pub from: jiff::civil::Date,
    /// last day, inclusive
    pub to: jiff::civil::Date,
    pub group_by: GroupBy,
    /// only this tenant's rows
    pub tenant: Option<String>,
    pub format: Format,
}

/// Rows summed by the query's columns, in order, and their totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub query: Query,
    /// ISO 4217 code of the costs (`pricing.currency`)
    pub currency: String,
    /// group key (ungrouped columns empty) and its figures, sorted by key
    pub rows: Vec<(Dims, Totals)>,
    pub totals: Totals,
}

impl Report {
    /// Keeps the rows of the query's days (and tenant) and sums them by its columns.
    pub fn build(
        query: Query,
        currency: &str,
        rows: impl IntoIterator<Item = (Dims, Totals)>,
    ) -> Report {
        let (from, to) = (query.from.to_string(), query.to.to_string());
        let mut groups: BTreeMap<Dims, Totals> = BTreeMap::new();
        let mut totals = Totals::default();
        for (d, t) in rows {
            let in_days = from.as_str() <= d.day.as_str() && d.day.as_str() <= to.as_str();
            let in_tenant = query.tenant.as_ref().is_none_or(|x| *x == d.tenant);
            if in_days && in_tenant {
                groups.entry(query.group_by.key(&d)).or_default().add(&t);
                totals.add(&t);
            }
        }
        Report {
            query,
            currency: currency.to_string(),
            rows: groups.into_iter().collect(),
            totals,
        }
    }

    /// The report as the query's format asks: (content type, text).
    pub fn render(&self) -> (&'static str, String) {
        let text = match self.query.format {
            Format::Json => self.json(),
            Format::Csv => self.csv(),
        };
        (self.query.format.content_type(), text)
    }

    /// A header line (the group columns, then the figures), one line per group,
    /// and a last line of totals (`total` in the first column, the other group
    /// columns empty). Costs are exact decimals; lines end in `\n`; values with
    /// a comma, quote or line break are quoted as RFC 4180 says.
    pub fn csv(&self) -> String {
        let cols: Vec<Column> = self.query.group_by.columns().collect();
        let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
        let mut record: Vec<String> = cols.iter().map(|c| c.name().to_string()).collect();
        record.extend(FIGURES.iter().map(|f| f.to_string()));
        // writing to a Vec cannot fail; a failure would only lose lines
        let _ = w.write_record(&record);
        let line = |w: &mut csv::Writer<Vec<u8>>, dims: Vec<&str>, t: &Totals| {
            let f = Figures::of(t);
            let mut record: Vec<String> = dims.into_iter().map(str::to_string).collect();
            record.extend([
                f.requests.to_string(),
                f.input_tokens.to_string(),
                f.output_tokens.to_string(),
                f.cached_tokens.to_string(),
                f.cache_write_tokens.to_string(),
                f.reasoning_tokens.to_string(),
                f.cost,
                f.unpriced_requests.to_string(),
                f.estimated_requests.to_string(),
            ]);
            let _ = w.write_record(&record);
        };
        for (d, t) in &self.rows {
            line(&mut w, cols.iter().map(|c| c.of(d)).collect(), t);
        }
        let total: Vec<&str> = (0..cols.len())
            .map(|i| if i == 0 { "total" } else { "" })
            .collect();
        line(&mut w, total, &self.totals);
        let bytes = w.into_inner().unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }

    /// `{"currency", "from", "to", "tenant", "group_by", "rows", "totals"}`;
    /// each row has its group columns and the figures, costs as decimal text.
    pub fn json(&self) -> String {
        let cols: Vec<Column> = self.query.group_by.columns().collect();
        let rows: Vec<JsonRow> = self
            .rows
            .iter()
            .map(|(d, t)| {
                let col = |c: Column| cols.contains(&c).then(|| c.of(d));
                JsonRow {
                    tenant: col(Column::Tenant),
                    consumer: col(Column::Consumer),
                    model: col(Column::Model),
                    provider: col(Column::Provider),
                    day: col(Column::Day),
                    figures: Figures::of(t),
                }
            })
            .collect();
        let doc = JsonReport {
            currency: &self.currency,
            from: self.query.from.to_string(),
            to: self.query.to.to_string(),
            tenant: self.query.tenant.as_deref(),
            group_by: cols.iter().map(|c| c.name()).collect(),
            rows,
            totals: Figures::of(&self.totals),
        };
        let mut text = serde_json::to_string(&doc).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// The figure columns, in order.
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

#[derive(Serialize)]
struct Figures {
    requests: u64,
    input_tokens: u64,
    output_tokens: u64,
    cached_tokens: u64,
    cache_write_tokens: u64,
    reasoning_tokens: u64,
    cost: String,
    unpriced_requests: u64,
    estimated_requests: u64,
}

impl Figures {
    fn of(t: &Totals) -> Figures {
        Figures {
            requests: t.requests,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cached_tokens: t.cached_tokens,
            cache_write_tokens: t.cache_write_tokens,
            reasoning_tokens: t.reasoning_tokens,
            cost: format_nanos(t.cost),
            unpriced_requests: t.unpriced_requests,
            estimated_requests: t.estimated_requests,
        }
    }
}

#[derive(Serialize)]
struct JsonRow<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    day: Option<&'a str>,
    #[serde(flatten)]
    figures: Figures,
}

#[derive(Serialize)]
struct JsonReport<'a> {
    currency: &'a str,
    from: String,
    to: String,
    tenant: Option<&'a str>,
    group_by: Vec<&'static str>,
    rows: Vec<JsonRow<'a>>,
    totals: Figures,
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
