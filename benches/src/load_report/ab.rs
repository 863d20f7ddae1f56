//! The quotas / health A/B (`BENCH_AB_ROUNDS`): requests/s of the two rows in
//! alternating rounds, their medians and the ratio of the medians.

use serde_json::{json, Value};

use super::fmt::ratio;

/// Target: the health row keeps ≥ 0.95x the quotas row's requests/s.
pub const HEALTH_VS_QUOTAS: f64 = 0.95;

/// Median (mean of the two middle values for an even count); None if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => v.get(n / 2).copied(),
        _ => Some((v.get(n / 2 - 1)? + v.get(n / 2)?) / 2.0),
    }
}

/// Requests/s @C of the quotas and the health row in one mode, per round of
/// the A/B (round 1 = the table's rows), alternating quotas, health, ...
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthAb {
    /// (quotas, health) per round
    pub rounds: Vec<(Option<f64>, Option<f64>)>,
    /// CPU of processes outside the benchmark during those runs, % of one
    /// core, (quotas, health) per round: a disturbed round shows here
    pub other_cpu: Vec<(Option<f64>, Option<f64>)>,
}

impl HealthAb {
    fn quotas(&self) -> Vec<f64> {
        self.rounds.iter().filter_map(|r| r.0).collect()
    }

    fn health(&self) -> Vec<f64> {
        self.rounds.iter().filter_map(|r| r.1).collect()
    }

    /// Round 1: the table's two rows.
    pub fn table_ratio(&self) -> Option<f64> {
        let (q, h) = self.rounds.first().copied()?;
        ratio(h, q)
    }

    pub fn medians(&self) -> (Option<f64>, Option<f64>) {
        (median(&self.quotas()), median(&self.health()))
    }

    pub fn ratio_of_medians(&self) -> Option<f64> {
        let (q, h) = self.medians();
        ratio(h, q)
    }

    /// The ratio the target is judged on: of the medians with more than one
    /// round, else the table's.
    pub fn judged_ratio(&self) -> Option<f64> {
        if self.rounds.len() > 1 {
            self.ratio_of_medians()
        } else {
            self.table_ratio()
        }
    }

    pub fn to_json(&self) -> Value {
        let (q, h) = self.medians();
        json!({
            "quotas_rps": self.rounds.iter().map(|r| r.0).collect::<Vec<_>>(),
            "health_rps": self.rounds.iter().map(|r| r.1).collect::<Vec<_>>(),
            "ratio_table_rows": self.table_ratio(),
            "quotas_median_rps": q,
            "health_median_rps": h,
            "ratio_of_medians": self.ratio_of_medians(),
            "quotas_other_cpu_pct": self.other_cpu.iter().map(|r| r.0).collect::<Vec<_>>(),
            "health_other_cpu_pct": self.other_cpu.iter().map(|r| r.1).collect::<Vec<_>>(),
            "target": HEALTH_VS_QUOTAS,
            "met": self.judged_ratio().map(|r| r >= HEALTH_VS_QUOTAS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_vs_quotas_medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        // one round: the table's rows are judged
        let one = HealthAb {
            rounds: vec![(Some(10_000.0), Some(9_400.0))],
            ..HealthAb::default()
        };
        assert_eq!(one.table_ratio(), Some(0.94));
        assert_eq!(one.judged_ratio(), Some(0.94));
        // three rounds, one missing health run: medians of what is there
        let three = HealthAb {
            rounds: vec![
                (Some(10_000.0), Some(9_400.0)),
                (Some(12_000.0), None),
                (Some(11_000.0), Some(10_800.0)),
            ],
            other_cpu: vec![
                (Some(1.0), Some(2.0)),
                (None, None),
                (Some(3.0), Some(140.0)),
            ],
        };
        assert_eq!(three.medians(), (Some(11_000.0), Some(10_100.0)));
        let r = three.judged_ratio().unwrap_or_default();
        assert!((r - 10_100.0 / 11_000.0).abs() < 1e-12, "{r}");
        assert_eq!(three.table_ratio(), Some(0.94));
        let j = three.to_json();
        assert_eq!(j["health_rps"], json!([9400.0, null, 10800.0]));
        assert_eq!(j["met"], json!(false));
        assert_eq!(j["health_other_cpu_pct"], json!([2.0, null, 140.0]));
        assert_eq!(HealthAb::default().judged_ratio(), None);
    }
}
