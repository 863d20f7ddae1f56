//! Calendar windows (`window: day | week | month`, in `timezone`, UTC by
//! default): the gateway computes the boundaries of the periods around its
//! clock with the time zone's rules (jiff's tz database, bundled), and the
//! store counts the period that holds its own time (Redis `TIME`).
//!
//! Tests move the calendar instead of waiting for a month to end:
//! `GATEWAY_TEST_CLOCK_SHIFT_MS` shifts the clock calendar periods and ledger
//! days are computed from. Only debug builds read it; a release build refuses
//! to start when it is set ([`check_test_hook`]), so it cannot be switched on
//! in production by a stray variable.

use std::sync::{Arc, OnceLock};

/// The test hook's variable.
pub const TEST_SHIFT_VAR: &str = "GATEWAY_TEST_CLOCK_SHIFT_MS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    /// from Monday 00:00
    Week,
    Month,
}

impl Period {
    pub fn parse(window: &str) -> Option<Period> {
        match window.trim() {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }
}

/// One calendar: a period kind in a time zone.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub period: Period,
    tz: jiff::tz::TimeZone,
    /// `month@Europe/Berlin`: what the store keeps to tell calendars apart
    pub name: Arc<str>,
    /// the bounds computed last: reused while now is in their current period
    last: Arc<std::sync::Mutex<Option<[u64; 4]>>>,
}

impl Calendar {
    /// The calendar of a window, None when the window is not a calendar word;
    /// an error names what is wrong with the time zone (never repeats it).
    pub fn of(window: &str, timezone: Option<&str>) -> Result<Option<Calendar>, String> {
        let Some(period) = Period::parse(window) else {
            return Ok(None);
        };
        let zone = timezone.unwrap_or("UTC");
        let tz = jiff::tz::TimeZone::get(zone)
            .map_err(|_| "not a time zone of the IANA database (e.g. Europe/Berlin)".to_string())?;
        Ok(Some(Calendar {
            period,
            tz,
            name: format!("{}@{zone}", period.name()).into(),
            last: Default::default(),
        }))
    }

    /// The time zone's name (`UTC`, `Europe/Berlin`).
    pub fn zone(&self) -> &str {
        self.name.split_once('@').map_or("UTC", |(_, z)| z)
    }

    /// The longest period there is (31 days, 7, 1 plus an hour for a day
    /// with a DST change).
    pub fn longest(&self) -> std::time::Duration {
        let h = match self.period {
            Period::Day => 25,
            Period::Week => 7 * 24 + 1,
            Period::Month => 31 * 24 + 1,
        };
        std::time::Duration::from_secs(h * 3600)
    }

    /// Four consecutive period boundaries (ms, real clock) around `now_ms`:
    /// the previous period's start, this one's, the next's, the one after.
    pub fn bounds(&self, now_ms: u64) -> [u64; 4] {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = *last {
            if b[1] <= now_ms && now_ms < b[2] {
                return b;
            }
        }
        let b = self.compute(now_ms);
        *last = Some(b);
        b
    }

    fn compute(&self, now_ms: u64) -> [u64; 4] {
        let shift = test_shift_ms();
        let at = i64::try_from(now_ms)
            .unwrap_or(i64::MAX)
            .saturating_add(shift);
        let start = jiff::Timestamp::from_millisecond(at)
            .ok()
            .map(|t| t.to_zoned(self.tz.clone()))
            .and_then(|z| self.start_of(&z));
        let Some(start) = start else {
            // outside jiff's range (years -9999..=9999): a far-off period
            return [0, 1, u64::MAX - 1, u64::MAX];
        };
        let step = |n: i64| -> u64 {
            let span = match self.period {
                Period::Day => jiff::Span::new().days(n),
                Period::Week => jiff::Span::new().weeks(n),
                Period::Month => jiff::Span::new().months(n),
            };
            start
                .checked_add(span)
                .ok()
                .map(|z| z.timestamp().as_millisecond().saturating_sub(shift))
                .and_then(|ms| u64::try_from(ms).ok())
                .unwrap_or(0)
        };
        [step(-1), step(0), step(1), step(2)]
    }

    fn start_of(&self, z: &jiff::Zoned) -> Option<jiff::Zoned> {
        let day = z.start_of_day().ok()?;
        match self.period {
            Period::Day => Some(day),
            Period::Week => {
                let back = i64::from(day.weekday().to_monday_zero_offset());
                day.checked_sub(jiff::Span::new().days(back))
                    .ok()?
                    .start_of_day()
                    .ok()
            }
            Period::Month => day.first_of_month().ok()?.start_of_day().ok(),
        }
    }
}

/// The UTC date (`YYYY-MM-DD`) of a moment, as the ledger counts days (on the
/// test hook's shifted clock in tests).
pub fn utc_day(t: std::time::SystemTime) -> String {
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    jiff::Timestamp::from_millisecond(ms.saturating_add(test_shift_ms())).map_or_else(
        |_| "1970-01-01".to_string(),
        |t| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string(),
    )
}

/// The test hook's shift (0 in release builds, which refuse to start with it).
pub fn test_shift_ms() -> i64 {
    static SHIFT: OnceLock<i64> = OnceLock::new();
    *SHIFT.get_or_init(|| {
        if !cfg!(debug_assertions) {
            return 0;
        }
        std::env::var(TEST_SHIFT_VAR)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    })
}

/// At start: a release build with the test hook's variable set refuses to run;
/// a debug build says loudly that its calendar is shifted.
pub fn check_test_hook() -> Result<(), String> {
    let Some(v) = std::env::var_os(TEST_SHIFT_VAR) else {
        return Ok(());
    };
    if !cfg!(debug_assertions) {
        return Err(format!(
            "{TEST_SHIFT_VAR} is set: it is a test hook that only debug builds take; unset it"
        ));
    }
    let shift = v.to_str().and_then(|s| s.trim().parse::<i64>().ok());
    match shift {
        Some(ms) => {
            tracing::warn!(
                shift_ms = ms,
                "TEST HOOK: calendar windows and ledger days use a clock shifted by {TEST_SHIFT_VAR}"
            );
            Ok(())
        }
        None => Err(format!("{TEST_SHIFT_VAR} is not a whole number of ms")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> u64 {
        let t: jiff::Timestamp = s.parse().unwrap();
        u64::try_from(t.as_millisecond()).unwrap()
    }

    #[test]
    fn months_in_utc() {
        let c = Calendar::of("month", None).unwrap().unwrap();
        assert_eq!(&*c.name, "month@UTC");
        assert_eq!(
            c.bounds(ms("2026-03-15T12:00:00Z")),
            [
                ms("2026-02-01T00:00:00Z"),
                ms("2026-03-01T00:00:00Z"),
                ms("2026-04-01T00:00:00Z"),
                ms("2026-05-01T00:00:00Z")
            ]
        );
    }

    #[test]
    fn weeks_start_on_monday_and_days_follow_the_zone() {
        let w = Calendar::of("week", None).unwrap().unwrap();
        // 2026-12-06 is a Sunday
        assert_eq!(
            w.bounds(ms("2026-12-06T23:59:59Z"))[1],
            ms("2026-11-30T00:00:00Z")
        );
        let d = Calendar::of("day", Some("America/New_York"))
            .unwrap()
            .unwrap();
        // 03:00 UTC is still the previous day in New York (UTC-5 in December)
        assert_eq!(
            d.bounds(ms("2026-12-07T03:00:00Z"))[1],
            ms("2026-12-06T05:00:00Z")
        );
        // the day DST starts has 23 hours
        let b = d.bounds(ms("2026-03-08T12:00:00Z"));
        assert_eq!(b[2] - b[1], 23 * 3_600_000);
    }

    #[test]
    fn words_that_are_not_calendars_and_unknown_zones() {
        assert_eq!(Calendar::of("1d", None), Ok(None));
        assert!(Calendar::of("month", Some("Mars/Olympus")).is_err());
        assert_eq!(utc_day(std::time::UNIX_EPOCH), "1970-01-01");
    }
}
