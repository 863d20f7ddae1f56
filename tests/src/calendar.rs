//! Calendar boundaries placed a few seconds from now, through the gateway's
//! test hook: a gateway started with `GATEWAY_TEST_CLOCK_SHIFT_MS=<ms>`
//! (debug builds only) computes calendar periods (`window: day | week |
//! month`) and usage-ledger days from its clock shifted by that many ms.
//! [`Boundary::after`] picks the shift that makes a period of a calendar end
//! a given time from now; give every replica of a test the same
//! [`Boundary::shift_ms`] (`GatewayBuilder::clock_shift_ms`).
//!
//! The boundaries are computed here with jiff's time-zone rules,
//! independently of the gateway's own code.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The gateway's test hook.
pub const CLOCK_SHIFT_VAR: &str = "GATEWAY_TEST_CLOCK_SHIFT_MS";

/// A period boundary of one calendar, placed at [`Boundary::at`] on this
/// process's clock.
#[derive(Debug, Clone)]
pub struct Boundary {
    /// the shift that places it (what every replica gets)
    pub shift_ms: i64,
    /// when it comes, on this process's clock
    pub at: Instant,
    /// the boundary on the shifted clock (a period start of the calendar)
    pub shifted: jiff::Timestamp,
}

impl Boundary {
    /// The first start of a `period` (`day`, `week` from Monday, `month`) in
    /// time zone `zone` after `after` from now, shifted to come `after` from
    /// now. The gateway binary is built first if it has to be: a build
    /// started by the first replica would otherwise eat the wait.
    pub fn after(period: &str, zone: &str, after: Duration) -> Boundary {
        if let Err(e) = crate::harness::gateway_bin() {
            panic!("{e}");
        }
        let tz = match jiff::tz::TimeZone::get(zone) {
            Ok(tz) => tz,
            Err(e) => panic!("time zone {zone}: {e}"),
        };
        let start = Instant::now();
        let now_ms = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).expect("ms since 1970 fit i64"),
            Err(e) => panic!("the clock is before 1970: {e}"),
        };
        let target = now_ms + i64::try_from(after.as_millis()).expect("a short wait");
        let at_target = jiff::Timestamp::from_millisecond(target)
            .expect("a time in jiff's range")
            .to_zoned(tz);
        let next = next_period_start(&at_target, period);
        let shifted = next.timestamp();
        Boundary {
            shift_ms: shifted.as_millisecond() - target,
            at: start + after,
            shifted,
        }
    }

    /// Time until the boundary (zero once it passed).
    pub fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the boundary has come.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// Sleeps until 200 ms past the boundary.
    pub async fn pass(&self) {
        tokio::time::sleep(self.left() + Duration::from_millis(200)).await;
    }

    /// The UTC date (`YYYY-MM-DD`, a ledger day) of the last moment before
    /// the boundary, on the shifted clock.
    pub fn utc_day_before(&self) -> String {
        let before = self
            .shifted
            .checked_sub(jiff::Span::new().milliseconds(1))
            .expect("a time in jiff's range");
        utc_day(before)
    }

    /// The UTC date of the boundary itself, on the shifted clock.
    pub fn utc_day_after(&self) -> String {
        utc_day(self.shifted)
    }
}

fn utc_day(t: jiff::Timestamp) -> String {
    t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
}

/// The start of the period after the one holding `z`.
fn next_period_start(z: &jiff::Zoned, period: &str) -> jiff::Zoned {
    let day = z.start_of_day().expect("a day in jiff's range");
    let (start, step) = match period {
        "day" => (day, jiff::Span::new().days(1)),
        "week" => {
            let back = i64::from(day.weekday().to_monday_zero_offset());
            let monday = day
                .checked_sub(jiff::Span::new().days(back))
                .and_then(|d| d.start_of_day())
                .expect("a Monday in jiff's range");
            (monday, jiff::Span::new().weeks(1))
        }
        "month" => (
            day.first_of_month()
                .and_then(|d| d.start_of_day())
                .expect("a month in jiff's range"),
            jiff::Span::new().months(1),
        ),
        other => panic!("{other} is not a calendar period (day, week, month)"),
    };
    start
        .checked_add(step)
        .and_then(|d| d.start_of_day())
        .expect("the next period in jiff's range")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zoned(s: &str, zone: &str) -> jiff::Zoned {
        s.parse::<jiff::Timestamp>()
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::get(zone).unwrap())
    }

    #[test]
    fn next_starts_in_utc_and_half_hour_zones() {
        let next = |s: &str, zone: &str, p: &str| {
            next_period_start(&zoned(s, zone), p)
                .timestamp()
                .to_string()
        };
        assert_eq!(
            next("2026-03-15T12:00:00Z", "UTC", "month"),
            "2026-04-01T00:00:00Z"
        );
        // Kolkata is UTC+05:30: its April starts at 18:30 UTC on March 31
        assert_eq!(
            next("2026-03-31T18:29:59Z", "Asia/Kolkata", "month"),
            "2026-03-31T18:30:00Z"
        );
        assert_eq!(
            next("2026-03-31T18:30:00Z", "Asia/Kolkata", "month"),
            "2026-04-30T18:30:00Z"
        );
        // 2026-12-06 is a Sunday
        assert_eq!(
            next("2026-12-06T23:59:59Z", "UTC", "week"),
            "2026-12-07T00:00:00Z"
        );
        assert_eq!(
            next("2026-12-06T23:59:59Z", "UTC", "day"),
            "2026-12-07T00:00:00Z"
        );
    }

    #[test]
    fn a_boundary_is_placed_after_the_wait_with_its_ledger_days() {
        let b = Boundary::after("month", "UTC", Duration::from_secs(3));
        assert!(b.shift_ms >= 0);
        assert!(b.left() <= Duration::from_secs(3) && !b.passed());
        let after = b.utc_day_after();
        assert!(after.ends_with("-01"), "{after}");
        assert_ne!(b.utc_day_before(), after);
    }
}
