//! Human-readable durations (`250ms`, `5s`, `15m`, `7d`, read by `humantime`)
//! and byte sizes (`512KiB`, `256MiB`, `1GiB`, `100MB`, `4096`), for the CLI
//! and config files.

use std::time::Duration;

/// Splits `12.5MiB` into `12.5` and `MiB`; `None` when there is no number.
fn number_and_unit(text: &str) -> Option<(f64, &str)> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    Some((number.parse().ok()?, unit.trim()))
}

/// Parses a duration the way `humantime` reads one: `250ms`, `5s`, `15m`,
/// `1h`, `7d`, `2weeks`, `1h 30m` (units `ns`, `us`, `ms`, `s`/`sec`,
/// `m`/`min`, `h`/`hr`, `d`/`days`, `w`/`weeks`, `M`/`months`, `y`/`years`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 500ms, 15m or 7d: {e}"))
}

/// Parses a byte size such as `256MiB`, `1GiB`, `100MB`, `64k` or a plain number of bytes.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (value, unit) = number_and_unit(text)
        .ok_or_else(|| format!("`{text}` is not a size like 256MiB or 1GiB"))?;
    let scale: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "`{other}` in `{text}` is not a size unit (KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    let bytes = value * scale;
    if bytes.is_finite() && bytes >= 0.0 && bytes < usize::MAX as f64 {
        Ok(bytes as usize)
    } else {
        Err(format!("`{text}` is out of range"))
    }
}

/// Serde adapters so config files say `"5s"` and `"256MiB"`.
pub mod serde_human {
    use serde::{Deserialize, Deserializer, de::Error};
    use std::time::Duration;

    /// A size written as `"256MiB"` (or a plain number of bytes).
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(usize),
        Text(String),
    }

    /// Deserializes a duration written as `"250ms"`, `"5s"`, `"2m"`.
    pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(D::Error::custom)
    }

    /// Deserializes a byte size written as `"256MiB"` or a number of bytes.
    pub fn bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
        match Size::deserialize(deserializer)? {
            Size::Bytes(bytes) => Ok(bytes),
            Size::Text(text) => super::parse_bytes(&text).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(
            parse_duration("5")
                .unwrap_err()
                .contains("`5` is not a duration")
        );
        assert!(
            parse_duration("5 fortnights")
                .unwrap_err()
                .contains("fortnights")
        );
        assert!(parse_duration("soon").is_err());
    }

    /// Issue 10: `retention = "7d"` was refused; days and weeks are durations.
    #[test]
    fn regression_days_and_weeks_are_durations() {
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            parse_duration("2weeks").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86_400));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100MB").unwrap(), 100_000_000);
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert!(parse_bytes("12 parsecs").is_err());
    }
}
