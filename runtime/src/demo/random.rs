//! Deterministic randomness and timestamps for the demo generators: the same
//! seed gives the same events on every platform, so tests can recompute
//! expected tables from them.

/// SplitMix64: small, fast, and the same on every platform.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Skewed towards small indices (roughly Zipf with s = 1.1).
    pub fn skewed(&mut self, n: u64) -> u64 {
        let u = self.unit();
        (((n as f64 + 1.0).powf(u) - 1.0) as u64).min(n - 1)
    }
}

/// `2024-05-01T10:00:00.250Z` from milliseconds since the Unix epoch (UTC).
pub fn chrono_like_rfc3339(millis: i64) -> String {
    let seconds = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let rem = seconds.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z")
}

/// The generators' stream clock starts here: 2024-05-01T10:00:00Z.
pub const START_MILLIS: i64 = 1_714_557_600_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(
            chrono_like_rfc3339(START_MILLIS),
            "2024-05-01T10:00:00.000Z"
        );
        assert_eq!(
            chrono_like_rfc3339(951_782_400_000 + 1),
            "2000-02-29T00:00:00.001Z"
        );
    }
}
