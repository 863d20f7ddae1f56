//! Whether a series stayed flat after the warm-up: its level (the median of
//! the samples of the last two minutes, so that the connections and tasks in
//! flight at one sample's instant do not decide) at its highest after the warm-up,
//! against its level at the end of the warm-up.

/// How much above its level at the end of the warm-up a flat series may go, %.
pub const FLAT_LIMIT_PCT: f64 = 10.0;
/// A series' level at a time is the median of its samples of this many
/// seconds up to it.
pub const LEVEL_WINDOW_S: f64 = 120.0;

/// The verdict on one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// the level at the end of the warm-up
    pub baseline: f64,
    /// the highest level after the warm-up
    pub peak_level: f64,
    /// the highest sample after the warm-up
    pub peak_sample: f64,
    /// the level at the last sample
    pub end: f64,
    /// `peak_level` over `baseline`, % above it
    pub growth_pct: f64,
    /// least-squares slope of the samples after the warm-up, % of `baseline`
    /// per hour
    pub trend_pct_per_h: f64,
    /// `growth_pct` within [`FLAT_LIMIT_PCT`]
    pub flat: bool,
}

/// The median of the values of `points` in `(t - LEVEL_WINDOW_S, t]`.
fn level(points: &[(f64, f64)], t: f64) -> Option<f64> {
    let mut v: Vec<f64> = points
        .iter()
        .filter(|p| p.0 <= t && p.0 > t - LEVEL_WINDOW_S)
        .map(|p| p.1)
        .collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

impl Verdict {
    /// Judges `points` ((seconds, value), in time order); `None` without a
    /// sample both in the warm-up and after it.
    pub fn of(points: &[(f64, f64)], warmup_s: f64) -> Option<Verdict> {
        let last_warm = points.iter().rfind(|p| p.0 <= warmup_s)?.0;
        let baseline = level(points, last_warm)?;
        let after: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.0 > warmup_s).collect();
        let end_t = after.last()?.0;
        let peak_level = after
            .iter()
            .filter_map(|p| level(points, p.0))
            .fold(f64::MIN, f64::max);
        let peak_sample = after.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let growth_pct = if baseline > 0.0 {
            (peak_level - baseline) / baseline * 100.0
        } else if peak_level > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
        let trend_pct_per_h = if baseline > 0.0 {
            slope(&after) * 3600.0 / baseline * 100.0
        } else {
            0.0
        };
        Some(Verdict {
            baseline,
            peak_level,
            peak_sample,
            end: level(points, end_t)?,
            growth_pct,
            trend_pct_per_h,
            flat: growth_pct <= FLAT_LIMIT_PCT,
        })
    }

    /// The highest level a flat series may reach.
    pub fn limit(&self) -> f64 {
        self.baseline * (1.0 + FLAT_LIMIT_PCT / 100.0)
    }
}

/// Least-squares slope of `points`, value per second (0 for fewer than two).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample every 10 s for 15 minutes.
    fn series(f: impl Fn(f64) -> f64) -> Vec<(f64, f64)> {
        (0..=90)
            .map(|i| (i as f64 * 10.0, f(i as f64 * 10.0)))
            .collect()
    }

    #[test]
    fn a_plateau_is_flat() {
        // fills up in the first 60 s of the warm-up (180 s), then stays
        // within 2 units of 161
        let v = Verdict::of(&series(|t| 100.0 + t.min(60.0) + (t / 10.0) % 3.0), 180.0)
            .expect("a verdict");
        assert!(v.flat, "{v:?}");
        assert_eq!(v.baseline, 161.0, "{v:?}");
        assert_eq!(v.growth_pct, 0.0, "{v:?}");
        assert_eq!(v.peak_sample, 162.0, "{v:?}");
    }

    #[test]
    fn a_leak_is_not_flat() {
        // 1 unit per 10 s on 100: +72% over the 720 s after the warm-up
        let v = Verdict::of(&series(|t| 100.0 + t / 10.0), 180.0).expect("a verdict");
        assert!(!v.flat, "{v:?}");
        assert!(v.growth_pct > 50.0, "{v:?}");
        assert!(v.trend_pct_per_h > 100.0, "{v:?}");
        assert_eq!(v.peak_sample, 190.0);
    }

    #[test]
    fn a_lasting_step_counts_and_a_spike_does_not() {
        // one sample a minute 30% up: the level stays, the sample is reported
        let spikes = Verdict::of(
            &series(|t| {
                if (t as u64).is_multiple_of(60) {
                    130.0
                } else {
                    100.0
                }
            }),
            180.0,
        )
        .expect("a verdict");
        assert!(spikes.flat, "{spikes:?}");
        assert_eq!(spikes.peak_sample, 130.0);
        // the last three minutes 12% up
        let step = Verdict::of(&series(|t| if t > 720.0 { 112.0 } else { 100.0 }), 180.0)
            .expect("a verdict");
        assert!(!step.flat, "{step:?}");
        let within = Verdict::of(&series(|t| if t > 720.0 { 110.0 } else { 100.0 }), 180.0)
            .expect("a verdict");
        assert!(within.flat, "{within:?}");
    }

    #[test]
    fn needs_samples_on_both_sides() {
        assert!(Verdict::of(&[(0.0, 1.0), (10.0, 1.0)], 180.0).is_none());
        assert!(Verdict::of(&[(200.0, 1.0)], 180.0).is_none());
    }
}
