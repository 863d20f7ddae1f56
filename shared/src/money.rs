//! Money as the gateway stores it: whole nano-units (10^-9) of the deployment's
//! one currency, in a `u64`. No floating point anywhere a sum is kept: prices,
//! costs, budgets and the ledger are integers, and the decimal text in the config,
//! the access log and the reports converts to and from them exactly.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Nano-units of the currency in one unit (one dollar = 10^9 nano-dollars).
pub const NANOS_PER_UNIT: u64 = 1_000_000_000;

/// Decimal places a money amount may have.
pub const DECIMALS: usize = 9;

/// An amount of money in nano-units of the currency.
pub type Nanos = u64;

/// Why a decimal text is not an amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecimalError {
    Empty,
    Negative,
    NotADecimal,
    TooManyDecimals,
    TooLarge,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecimalError::Empty => "is empty",
            DecimalError::Negative => "is negative",
            DecimalError::NotADecimal => "is not a decimal number (digits, one optional point)",
            DecimalError::TooManyDecimals => "has more than 9 decimal places",
            DecimalError::TooLarge => "is too large",
        })
    }
}

/// A non-negative decimal as written (`12`, `0.15`, `"2.50"`), kept exactly:
/// the integer part and the fraction in nano-units. Config values that are
/// either a count (`limit: 1000` tokens) or money (`limit: 12.50` dollars) use it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal {
    pub whole: u64,
    /// 0 ..= 999_999_999
    pub nanos: u32,
}

impl Decimal {
    pub const fn from_whole(whole: u64) -> Decimal {
        Decimal { whole, nanos: 0 }
    }

    pub fn is_whole(&self) -> bool {
        self.nanos == 0
    }

    /// The amount in nano-units; None when it does not fit a `u64`.
    pub fn to_nanos(&self) -> Option<Nanos> {
        self.whole
            .checked_mul(NANOS_PER_UNIT)?
            .checked_add(u64::from(self.nanos))
    }

    pub fn from_nanos(n: Nanos) -> Decimal {
        Decimal {
            whole: n / NANOS_PER_UNIT,
            nanos: (n % NANOS_PER_UNIT) as u32,
        }
    }

    pub fn parse(s: &str) -> Result<Decimal, DecimalError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DecimalError::Empty);
        }
        if s.starts_with('-') {
            return Err(DecimalError::Negative);
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
            return Err(DecimalError::NotADecimal);
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > DECIMALS {
            return Err(DecimalError::TooManyDecimals);
        }
        let whole = match int {
            "" => 0,
            i => i.parse::<u64>().map_err(|_| DecimalError::TooLarge)?,
        };
        let mut nanos = 0u32;
        for (i, b) in frac.bytes().enumerate() {
            nanos += u32::from(b - b'0') * 10u32.pow((DECIMALS - 1 - i) as u32);
        }
        Ok(Decimal { whole, nanos })
    }
}

impl fmt::Display for Decimal {
    /// At least two decimal places, at most nine, no trailing zeros beyond two:
    /// `12.00`, `0.15`, `0.000125`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // (the nine digits in a buffer: every request's cost is written so)
        let mut digits = [b'0'; DECIMALS];
        let mut n = self.nanos;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        let mut end = DECIMALS;
        while end > 2 && digits[end - 1] == b'0' {
            end -= 1;
        }
        let frac = std::str::from_utf8(&digits[..end]).map_err(|_| fmt::Error)?;
        write!(f, "{}.{frac}", self.whole)
    }
}

/// An amount in nano-units as decimal text (`format_nanos(1_500_000_000)` is `1.50`).
pub fn format_nanos(n: Nanos) -> String {
    Decimal::from_nanos(n).to_string()
}

impl Serialize for Decimal {
    /// A whole number as a JSON integer, anything else as its exact decimal text
    /// in a JSON number's place would need a float: a string then.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_whole() {
            s.serialize_u64(self.whole)
        } else {
            s.collect_str(self)
        }
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Decimal;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative decimal number (e.g. 12 or 0.15)")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
                Ok(Decimal::from_whole(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
                u64::try_from(v)
                    .map(Decimal::from_whole)
                    .map_err(|_| E::custom("is negative"))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
                // the shortest text that reads back as `v` is what was written
                // (for up to 15 significant digits), so no float error remains
                if !v.is_finite() {
                    return Err(E::custom("is not a finite number"));
                }
                Decimal::parse(&format!("{v}")).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Decimal, E> {
                Decimal::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for Decimal {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Decimal".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A non-negative decimal number, at most 9 decimal places (a number or its text)",
            "anyOf": [
                { "type": "number", "minimum": 0 },
                { "type": "string", "pattern": "^\\+?[0-9]*(\\.[0-9]*)?$" }
            ]
        })
    }
}

/// Prices per million tokens in nano-units: what `n` tokens cost is
/// `n * price / 10^6` nano-units, summed over a request's token kinds before
/// the one rounding (half up) to a whole nano-unit.
pub fn cost_of(parts: &[(u64, Nanos)]) -> Nanos {
    let sum: u128 = parts
        .iter()
        .map(|&(tokens, per_million)| u128::from(tokens) * u128::from(per_million))
        .sum();
    let n = (sum + 500_000) / 1_000_000;
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_read_exactly() {
        assert_eq!(
            Decimal::parse("12").unwrap().to_nanos(),
            Some(12 * NANOS_PER_UNIT)
        );
        assert_eq!(
            Decimal::parse("0.15").unwrap().to_nanos(),
            Some(150_000_000)
        );
        assert_eq!(Decimal::parse(".5").unwrap().to_nanos(), Some(500_000_000));
        assert_eq!(
            Decimal::parse("2.").unwrap().to_nanos(),
            Some(2 * NANOS_PER_UNIT)
        );
        assert_eq!(Decimal::parse("0.000000001").unwrap().to_nanos(), Some(1));
        assert_eq!(Decimal::parse("1.1000000000").unwrap().nanos, 100_000_000);
        assert_eq!(
            Decimal::parse("0.0000000001"),
            Err(DecimalError::TooManyDecimals)
        );
        assert_eq!(Decimal::parse("-1"), Err(DecimalError::Negative));
        assert_eq!(Decimal::parse("1e3"), Err(DecimalError::NotADecimal));
        assert_eq!(Decimal::parse("."), Err(DecimalError::NotADecimal));
        assert_eq!(Decimal::parse(""), Err(DecimalError::Empty));
        assert_eq!(
            Decimal::parse("99999999999999999999"),
            Err(DecimalError::TooLarge)
        );
        assert_eq!(Decimal::parse("99999999999").unwrap().to_nanos(), None);
    }

    #[test]
    fn decimals_print_with_two_to_nine_places() {
        assert_eq!(format_nanos(0), "0.00");
        assert_eq!(format_nanos(12 * NANOS_PER_UNIT), "12.00");
        assert_eq!(format_nanos(1_500_000_000), "1.50");
        assert_eq!(format_nanos(125_000), "0.000125");
        assert_eq!(format_nanos(1), "0.000000001");
        for s in ["0.15", "12.00", "0.000125", "3.141592653"] {
            assert_eq!(Decimal::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn config_numbers_become_exact_decimals() {
        let d: Decimal = serde_json::from_str("0.1").unwrap();
        assert_eq!(d.to_nanos(), Some(100_000_000));
        let d: Decimal = serde_json::from_str("2.675").unwrap();
        assert_eq!(d.to_nanos(), Some(2_675_000_000));
        let d: Decimal = serde_json::from_str("\"0.000000007\"").unwrap();
        assert_eq!(d.to_nanos(), Some(7));
        assert!(serde_json::from_str::<Decimal>("-3").is_err());
        assert_eq!(serde_json::to_string(&Decimal::from_whole(5)).unwrap(), "5");
        assert_eq!(
            serde_json::to_string(&Decimal::parse("12.5").unwrap()).unwrap(),
            "\"12.50\""
        );
    }

    #[test]
    fn cost_sums_before_rounding_once() {
        // 1000 tokens at 0.15 per million = 150 nano; 1 token at 0.15 = 0.15 nano
        assert_eq!(cost_of(&[(1000, 150_000_000)]), 150_000);
        assert_eq!(cost_of(&[(1, 150_000_000)]), 150);
        assert_eq!(cost_of(&[(1, 400_000)]), 0);
        assert_eq!(cost_of(&[(1, 500_000)]), 1);
        // two parts of half a nano each make one
        assert_eq!(cost_of(&[(1, 250_000), (1, 250_000)]), 1);
        assert_eq!(cost_of(&[(u64::MAX, u64::MAX)]), u64::MAX);
    }
}
