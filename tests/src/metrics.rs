//! Reading a gateway's Prometheus `/metrics`: one scrape parsed into samples
//! ([`Scrape`]), a series read by name and labels, and waiting for a value.
//!
//! A series that is not on the page is an error, never 0.0: a test that reads a
//! counter its workload should have moved must fail when the counter is missing.

use crate::client::TestClient;
use crate::harness::Gateway;
use std::time::{Duration, Instant};

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the sample carries every `(label, value)` of `want`.
    pub fn has(&self, want: &[(&str, &str)]) -> bool {
        want.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// One scrape of `/metrics`, parsed.
#[derive(Debug, Clone)]
pub struct Scrape {
    text: String,
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the Prometheus text format (comments and blank lines skipped);
    /// panics on a sample line it cannot read.
    pub fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse_line(l).unwrap_or_else(|e| panic!("/metrics line {l:?}: {e}")))
            .collect();
        Scrape {
            text: text.to_string(),
            samples,
        }
    }

    /// `GET /metrics` of `gw`'s admin listener; panics unless it answers 200.
    pub async fn of(gw: &Gateway) -> Scrape {
        match Self::try_of(gw).await {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    /// As [`Scrape::of`], but a failed request or a status other than 200 is an
    /// error (for a gateway that may be starting, stopping or degraded).
    pub async fn try_of(gw: &Gateway) -> Result<Scrape, String> {
        Self::try_from_url(&gw.admin_url()).await
    }

    /// `GET {admin_url}/metrics`.
    pub async fn try_from_url(admin_url: &str) -> Result<Scrape, String> {
        let url = format!("{admin_url}/metrics");
        let r = TestClient::new()
            .try_request(http::Method::GET, &url, &[], bytes::Bytes::new())
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if r.status != 200 {
            return Err(format!("GET {url}: {} {}", r.status, r.text()));
        }
        Ok(Scrape::parse(&r.text()))
    }

    /// The page as served.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Every sample of metric `name` (exact name: `x_count` is its own name).
    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The one sample of `name` carrying all of `labels` (others may be present):
    /// an error when there is none, or more than one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
        let found: Vec<&Sample> = self.series(name).filter(|s| s.has(labels)).collect();
        match found.as_slice() {
            [one] => Ok(one.value),
            [] => Err(format!("no series {name} with {labels:?} on /metrics")),
            many => Err(format!(
                "{} series {name} with {labels:?} on /metrics: {many:?}",
                many.len()
            )),
        }
    }

    /// The sum of every sample of `name` carrying all of `labels`: an error when
    /// there is none.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64, String> {
        let mut n = 0;
        let mut sum = 0.0;
        for s in self.series(name).filter(|s| s.has(labels)) {
            n += 1;
            sum += s.value;
        }
        if n == 0 {
            Err(format!("no series {name} with {labels:?} on /metrics"))
        } else {
            Ok(sum)
        }
    }

    /// [`Scrape::value`], panicking with the page when it is an error.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|e| panic!("{e}:\n{}", self.text))
    }

    /// [`Scrape::sum`], panicking with the page when it is an error.
    pub fn total(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.sum(name, labels)
            .unwrap_or_else(|e| panic!("{e}:\n{}", self.text))
    }
}

/// The value of the unlabelled series `name` on `gw`'s `/metrics`; panics when
/// it is missing.
pub async fn metric(gw: &Gateway, name: &str) -> f64 {
    Scrape::of(gw).await.get(name, &[])
}

/// The unlabelled counter (or integer gauge) `name` on `gw`'s `/metrics`;
/// panics when it is missing or not a whole number.
pub async fn counter(gw: &Gateway, name: &str) -> u64 {
    let v = metric(gw, name).await;
    if v < 0.0 || v.fract() != 0.0 || v > u64::MAX as f64 {
        panic!("{name} is {v}, not a count");
    }
    v as u64
}

/// The unlabelled series `name` of `gw`, or `None` when the scrape fails or the
/// series is missing (for polling a gateway whose state changes under it).
pub async fn try_metric(gw: &Gateway, name: &str) -> Option<f64> {
    Scrape::try_of(gw).await.ok()?.value(name, &[]).ok()
}

/// Polls `gw`'s series `name` with `labels` every 25 ms until `ok` holds for
/// it; returns that value. Panics after `within`, naming `what` was expected,
/// with the last value (or why there was none) and the gateway's stderr.
pub async fn wait_metric(
    gw: &Gateway,
    name: &str,
    labels: &[(&str, &str)],
    ok: impl Fn(f64) -> bool,
    what: &str,
    within: Duration,
) -> f64 {
    let t = Instant::now();
    loop {
        let got = Scrape::try_of(gw).await.and_then(|s| s.value(name, labels));
        if let Ok(v) = got {
            if ok(v) {
                return v;
            }
        }
        if t.elapsed() > within {
            panic!(
                "{name} {labels:?} is {got:?} after {within:?}, expected {what}; stderr:\n{}",
                gw.stderr()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(body)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse::<f64>().map_err(|e| format!("value {v:?}: {e}"))?,
    };
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A sample's labels, in the order written.
pub type Labels = Vec<(String, String)>;

/// `a="x",b="y\"z"} rest` -> the labels and `rest`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without =")?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        labels.push((key, value));
        s = &s[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# HELP x_total a counter\n# TYPE x_total counter\n\
        x_total{route=\"chat\",status=\"200\"} 8\n\
        x_total{route=\"chat\",status=\"404\"} 1\n\
        x_total{route=\"q\\\"uote\",status=\"200\"} 2\n\
        plain 3.5\n\
        h_bucket{le=\"+Inf\"} 4\n";

    #[test]
    fn reads_series_by_name_and_labels() {
        let s = Scrape::parse(PAGE);
        assert_eq!(s.get("x_total", &[("status", "404")]), 1.0);
        assert_eq!(s.get("x_total", &[("route", "q\"uote")]), 2.0);
        assert_eq!(s.get("plain", &[]), 3.5);
        assert_eq!(s.total("x_total", &[("status", "200")]), 10.0);
        assert_eq!(s.get("h_bucket", &[("le", "+Inf")]), 4.0);
    }

    #[test]
    fn a_missing_series_is_an_error_not_zero() {
        let s = Scrape::parse(PAGE);
        assert!(s.value("x_total", &[("status", "500")]).is_err());
        assert!(s.sum("nope", &[]).is_err());
        assert!(s.value("x", &[]).is_err(), "a prefix is not a name");
        // two series match: ambiguous
        assert!(s.value("x_total", &[("route", "chat")]).is_err());
    }
}
