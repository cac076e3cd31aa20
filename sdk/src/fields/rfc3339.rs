//! A fast path for the timestamp shape almost every event carries,
//! `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (`T` or a space): plain integer
//! arithmetic instead of a general format parser. Anything else returns `None`
//! and goes to chrono, which decides what is valid.

/// Microseconds since the Unix epoch, UTC, or `None` when `text` is not in the
/// fast-path shape (or names an impossible date or time).
#[inline]
pub fn parse_micros(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = digits(&b[0..4])?;
    let (month, day) = (digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut micros_of_second = 0;
    if b[at] == b'.' {
        let start = at + 1;
        at = start;
        while at < b.len() && b[at].is_ascii_digit() {
            at += 1;
        }
        let fraction = &b[start..at];
        if fraction.is_empty() || fraction.len() > 9 {
            return None;
        }
        let scale = 10i64.pow(6u32.saturating_sub(fraction.len() as u32));
        let micros = digits(&fraction[..fraction.len().min(6)])?;
        micros_of_second = micros * scale;
    }
    let offset_seconds = match &b[at..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (hours, minutes) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = hours * 3600 + minutes * 60;
            if *sign == b'+' { seconds } else { -seconds }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Some(seconds * 1_000_000 + micros_of_second)
}

#[inline]
fn digits(bytes: &[u8]) -> Option<i64> {
    bytes.iter().try_fold(0i64, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
    })
}

#[inline]
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
#[inline]
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn agrees_with_chrono_wherever_it_answers() {
        let samples = [
            "2024-05-01T10:15:00Z",
            "2024-05-01 10:15:00Z",
            "2024-02-29T23:59:59.999999Z",
            "2024-02-29T23:59:59.5+02:00",
            "1969-12-31T23:59:59.123456789-05:30",
            "1970-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2000-03-01T00:00:00.1z",
            "2100-02-28t12:00:00+00:00",
        ];
        for text in samples {
            let expected = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .timestamp_micros();
            assert_eq!(parse_micros(text), Some(expected), "{text}");
        }
    }

    #[test]
    fn leaves_everything_else_to_the_general_parser() {
        for text in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T10:15:00",
            "2024-05-01T10:15:00.Z",
            "2024-05-01T10:15:00+0200",
            "2024-05-01T10:15:60Z",
            "2024-5-01T10:15:00Z",
            "yesterday at noon, roughly",
            "2024-05-01T10:15:00Z trailing",
        ] {
            assert_eq!(parse_micros(text), None, "{text}");
        }
    }
}
