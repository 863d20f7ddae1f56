//! The optional `MONITOR` sample (`BENCH_RT_SAMPLE` > 0): after a row's runs,
//! every command Redis ran over a few hundred requests at 1 connection, each
//! marked as sent by a client or run inside a script (`[0 lua]`). A
//! cross-check of the by-name split of `INFO commandstats`.

use std::collections::BTreeMap;

/// What [`parse_monitor`] calls an `EVALSHA` on a provider's health hash
/// (`{h:<provider>}`: the mirror refresh every `cache_ttl_ms`, a probe's
/// report): background, not one of a request's round trips.
pub const HEALTH_EVALSHA: &str = "evalsha(health)";

/// A `MONITOR` capture: the commands clients sent (name → count, busiest
/// first; `EVALSHA` on a health key counted apart as [`HEALTH_EVALSHA`]) and
/// how many commands the Lua scripts ran inside Redis (`[0 lua]`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Monitor {
    pub clients: Vec<(String, f64)>,
    pub in_scripts: f64,
    /// seconds from the first command to the last
    pub span_s: f64,
}

impl Monitor {
    pub fn client_commands(&self) -> f64 {
        self.clients.iter().map(|(_, c)| c).sum()
    }
}

/// Parses `<time> [<db> <client addr>|lua] "<COMMAND>" ...` lines.
pub fn parse_monitor(text: &str) -> Monitor {
    let mut clients: BTreeMap<String, f64> = BTreeMap::new();
    let mut in_scripts = 0.0;
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    for line in text.lines() {
        let Some((time, rest)) = line.split_once(" [") else {
            continue;
        };
        if let Ok(t) = time.parse::<f64>() {
            first = first.min(t);
            last = last.max(t);
        }
        let Some((source, cmd)) = rest.split_once("] \"") else {
            continue;
        };
        let Some((name, _)) = cmd.split_once('"') else {
            continue;
        };
        if source.split_whitespace().nth(1) == Some("lua") {
            in_scripts += 1.0;
        } else {
            let mut name = name.to_ascii_lowercase();
            if name == "evalsha" && cmd.contains("{h:") {
                name = HEALTH_EVALSHA.to_string();
            }
            *clients.entry(name).or_default() += 1.0;
        }
    }
    let mut clients: Vec<(String, f64)> = clients.into_iter().collect();
    clients.sort_by(|x, y| y.1.total_cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    Monitor {
        clients,
        in_scripts,
        span_s: if last > first { last - first } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_capture() {
        // 2 requests: 4 EVALSHA and a PING from clients, a health refresh
        let mon = "OK\n1795610148.948897 [0 127.0.0.1:50300] \"evalsha\" \"ab\" \"3\"\n\
                   1795610148.948964 [0 lua] \"TIME\"\n1795610148.948983 [0 lua] \"HGETALL\" \"k\"\n\
                   1795610148.95 [0 127.0.0.1:50300] \"evalsha\" \"cd\"\n\
                   1795610148.96 [0 127.0.0.1:50302] \"PING\"\n\
                   1795610148.97 [0 127.0.0.1:50300] \"evalsha\" \"ab\"\n\
                   1795610148.98 [0 127.0.0.1:50300] \"evalsha\" \"cd\"\n\
                   1795610148.99 [0 127.0.0.1:50304] \"evalsha\" \"ef\" \"1\" \"{h:mock}:health\" \"ch\"\n\
                   1795610149.0 [0 lua] \"HGETALL\" \"{h:mock}:health\"\n";
        let m = parse_monitor(mon);
        assert_eq!(
            m.clients,
            vec![
                ("evalsha".to_string(), 4.0),
                (HEALTH_EVALSHA.to_string(), 1.0),
                ("ping".to_string(), 1.0)
            ]
        );
        assert_eq!(m.client_commands(), 6.0);
        assert_eq!(m.in_scripts, 3.0);
        assert!((m.span_s - 0.051103).abs() < 1e-6, "{}", m.span_s);
        assert_eq!(parse_monitor(""), Monitor::default());
    }
}
