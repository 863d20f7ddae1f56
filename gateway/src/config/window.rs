//! Quota windows written "1s", "60s", "1m", "1h", "1d" (1 second to 30 days).
//! Errors do not repeat the written window.

use std::time::Duration;

pub fn parse_window(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| {
        "a window is a number followed by s, m, h or d (e.g. \"60s\", \"1m\")".to_string()
    })?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err("a window's unit is s, m, h or d".to_string()),
    };
    if secs == 0 || secs > 30 * 86_400 {
        return Err("a window is between 1s and 30d".to_string());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert_eq!(parse_window("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_window("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_window("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_window("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_window("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_window("31d").is_err());
        assert!(parse_window("0s").is_err());
        assert!(parse_window("1w").is_err());
        assert!(parse_window("m").is_err());
        assert!(parse_window("").is_err());
    }
}
