//! A replica's stderr read back after the soak: panics, and its error and
//! warning lines grouped by message.

use std::collections::BTreeMap;

/// Distinct messages kept per level.
const KEEP: usize = 6;

/// What a replica logged.
#[derive(Debug, Default, Clone)]
pub struct ReplicaLog {
    /// lines naming a panic (`panicked at`)
    pub panics: Vec<String>,
    pub errors: u64,
    pub warnings: u64,
    /// the most frequent error and warning messages: (level, message, count)
    pub top: Vec<(String, String, u64)>,
    /// the process still ran at the end
    pub running: bool,
}

impl ReplicaLog {
    /// Reads `stderr` (tracing's format: time, level, target, message) of the
    /// process `pid`.
    pub fn read(stderr: &str, pid: u32) -> ReplicaLog {
        let mut log = ReplicaLog {
            running: crate::rss_kib(pid).is_some(),
            ..ReplicaLog::default()
        };
        let mut groups: BTreeMap<(String, String), u64> = BTreeMap::new();
        for line in stderr.lines() {
            if line.contains("panicked at") {
                log.panics.push(line.chars().take(200).collect());
            }
            let mut words = line.split_whitespace();
            let (Some(_time), Some(level)) = (words.next(), words.next()) else {
                continue;
            };
            match level {
                "ERROR" => log.errors += 1,
                "WARN" => log.warnings += 1,
                _ => continue,
            }
            // the message without numbers, so that one kind is one group
            let message: String = words
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .take(160)
                .collect();
            *groups.entry((level.to_string(), message)).or_insert(0) += 1;
        }
        let mut top: Vec<(String, String, u64)> =
            groups.into_iter().map(|((l, m), n)| (l, m, n)).collect();
        top.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.1.cmp(&b.1)));
        top.truncate(KEEP);
        log.top = top;
        log
    }
}

#[cfg(test)]
mod tests {
    use super::ReplicaLog;

    #[test]
    fn counts_levels_and_panics() {
        let text = "\
2026-12-07T10:28:35.457665Z  INFO gateway: gateway ready listen=127.0.0.1:1
2026-12-07T10:28:36.000000Z  WARN gateway::x: upstream slow after 12 ms
2026-12-07T10:28:37.000000Z  WARN gateway::x: upstream slow after 15 ms
2026-12-07T10:28:38.000000Z ERROR gateway::y: config reload refused
thread 'tokio-runtime-worker' panicked at gateway/src/x.rs:1:2:
";
        let log = ReplicaLog::read(text, u32::MAX);
        assert_eq!((log.errors, log.warnings), (1, 2));
        assert_eq!(log.panics.len(), 1);
        assert!(!log.running);
        assert_eq!(log.top[0].0, "WARN");
        assert_eq!(log.top[0].2, 2, "{:?}", log.top);
    }
}
