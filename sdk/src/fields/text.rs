//! Timestamps and dates from their text, and epoch seconds from a double:
//! the readers behind the `timestamp` and `date` field types. A value that
//! does not parse gives a sentence quoting it, for a rejected row's reason.

use super::spec::TimestampFormat;
use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Microseconds since the epoch; `Err(None)` when a string is the wrong kind of
/// value for `format` (an epoch format), `Err(Some(reason))` when the text
/// does not parse. The common ISO 8601 shape is read inline
/// ([`super::rfc3339::parse_micros`]); the rest goes to chrono.
///
/// ```
/// use weir_sdk::fields::{TimestampFormat, timestamp};
///
/// assert_eq!(timestamp("1970-01-01T00:00:01.5Z", &TimestampFormat::Iso8601), Ok(1_500_000));
/// assert_eq!(
///     timestamp("yesterday", &TimestampFormat::Iso8601),
///     Err(Some("`yesterday` is not an ISO 8601 timestamp".into()))
/// );
/// ```
#[inline]
pub fn timestamp(text: &str, format: &TimestampFormat) -> Result<i64, Option<String>> {
    if let TimestampFormat::Iso8601 = format
        && let Some(micros) = super::rfc3339::parse_micros(text)
    {
        return Ok(micros);
    }
    timestamp_by_chrono(text, format)
}

/// [`timestamp`] for the shapes its inline reader leaves to chrono.
#[inline(never)]
fn timestamp_by_chrono(text: &str, format: &TimestampFormat) -> Result<i64, Option<String>> {
    match format {
        TimestampFormat::Iso8601 => {
            if let Ok(zoned) = DateTime::parse_from_rfc3339(text) {
                return Ok(zoned.timestamp_micros());
            }
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|pattern| NaiveDateTime::parse_from_str(text, pattern).ok())
                .map(|naive| naive.and_utc().timestamp_micros())
                .ok_or_else(|| Some(format!("`{text}` is not an ISO 8601 timestamp")))
        }
        TimestampFormat::Pattern { pattern, zoned } => {
            let parsed = if *zoned {
                DateTime::parse_from_str(text, pattern).map(|t| t.timestamp_micros())
            } else {
                NaiveDateTime::parse_from_str(text, pattern).map(|t| t.and_utc().timestamp_micros())
            };
            parsed.map_err(|e| Some(format!("`{text}` does not match format `{pattern}` ({e})")))
        }
        TimestampFormat::EpochSeconds
        | TimestampFormat::EpochMillis
        | TimestampFormat::EpochMicros => Err(None),
    }
}

/// Days since 1970-01-01 of the date `text` written in strftime `pattern`,
/// or the reason it is not one.
///
/// ```
/// assert_eq!(weir_sdk::fields::date_days("02/01/1970", "%d/%m/%Y"), Ok(1));
/// ```
pub fn date_days(text: &str, pattern: &str) -> Result<i32, String> {
    NaiveDate::parse_from_str(text, pattern)
        .map(|date| date.signed_duration_since(NaiveDate::default()).num_days() as i32)
        .map_err(|e| format!("`{text}` is not a date in format `{pattern}` ({e})"))
}

/// Microseconds since the epoch of `seconds` since the epoch (fractions
/// allowed, rounded to the nearest microsecond); `None` when out of range.
#[inline]
pub fn seconds_to_micros(seconds: f64) -> Option<i64> {
    let micros = (seconds * 1e6).round();
    (micros.is_finite() && micros.abs() < 9.2e18).then_some(micros as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds_round_to_the_microsecond_and_stay_in_range() {
        assert_eq!(seconds_to_micros(1.25), Some(1_250_000));
        assert_eq!(seconds_to_micros(-0.0000004), Some(0));
        assert_eq!(seconds_to_micros(1e13), None);
        assert_eq!(seconds_to_micros(f64::NAN), None);
    }

    #[test]
    fn dates_and_patterns() {
        assert_eq!(date_days("1969-12-31", "%Y-%m-%d"), Ok(-1));
        assert!(
            date_days("31/12/2023", "%Y-%m-%d")
                .unwrap_err()
                .starts_with("`31/12/2023` is not a date in format `%Y-%m-%d` (")
        );
        let pattern = TimestampFormat::Pattern {
            pattern: "%d/%m/%Y %H:%M".into(),
            zoned: false,
        };
        assert_eq!(timestamp("02/01/1970 00:00", &pattern), Ok(86_400_000_000));
        assert_eq!(timestamp("1", &TimestampFormat::EpochMillis), Err(None));
    }
}
