//! The exact value of a JSON number literal (RFC 8259 §6:
//! `-? int frac? exp?`) when it is a whole number, computed from its decimal
//! digits, never through a double: `3.0`, `1e1`, `30e-1` and `-0` are the
//! integers 3, 10, 3 and 0; `1.5` and `1e-1` are not integers.
//!
//! ```
//! use weir_sdk::fields::{Integer, integer_literal};
//!
//! assert_eq!(integer_literal("30e-1"), Some(Integer::Exact(3)));
//! assert_eq!(integer_literal("9007199254740993.0"), Some(Integer::Exact(9_007_199_254_740_993)));
//! assert_eq!(integer_literal("1.5"), Some(Integer::Fraction));
//! assert_eq!(integer_literal("1e40"), Some(Integer::TooLarge));
//! assert_eq!(integer_literal("+3"), None); // not a JSON number
//! ```

/// What a literal is, as an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integer {
    /// A whole number, exactly.
    Exact(i128),
    /// A whole number too large for 128 bits (so for any integer column).
    TooLarge,
    /// Not a whole number (or not a number at all).
    Fraction,
}

/// The most decimal digits an `i128` magnitude is tried with (it holds 38 in full).
const MAX_DIGITS: usize = 39;

/// Whether `text` is a JSON number literal, `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`,
/// with nothing around it (no sign `+`, no leading zeros, no spaces).
#[inline]
pub fn is_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    let digits = |at: &mut usize| {
        let start = *at;
        while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
            *at += 1;
        }
        *at - start
    };
    let whole_start = at;
    match digits(&mut at) {
        0 => return false,
        1 => {}
        _ if bytes[whole_start] == b'0' => return false,
        _ => {}
    }
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        if digits(&mut at) == 0 {
            return false;
        }
    }
    if let Some(b'e' | b'E') = bytes.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = bytes.get(at) {
            at += 1;
        }
        if digits(&mut at) == 0 {
            return false;
        }
    }
    at == bytes.len()
}

/// Classifies `text` as [`integer_value`] does when it is a JSON number
/// literal ([`is_number`]); `None` when it is not one. Plain integers of up
/// to 18 digits, the common case, are read without the general path.
#[inline]
pub fn integer_literal(text: &str) -> Option<Integer> {
    if let Some(n) = plain_integer(text.as_bytes()) {
        return Some(Integer::Exact(i128::from(n)));
    }
    is_number(text).then(|| integer_value(text))
}

/// `-?[1-9][0-9]{0,17}` or `0`, which always fits an `i64`; `None` for any
/// other text.
#[inline]
fn plain_integer(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, bytes),
    };
    match digits {
        [] => return None,
        [b'0'] => return Some(0),
        [b'0', ..] => return None,
        _ if digits.len() > 18 => return None,
        _ => {}
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(d - b'0');
    }
    Some(if negative { -value } else { value })
}

/// Classifies `literal`, which must be a JSON number (serde_json checked it,
/// or [`is_number`] did).
pub fn integer_value(literal: &str) -> Integer {
    let (negative, rest) = match literal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, literal),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, ""),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Integer::Fraction;
    }
    // The value is digits × 10^scale, with digits = whole ++ fraction.
    let Some(exponent) = parse_exponent(exponent) else {
        return Integer::Fraction;
    };
    let digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).collect();
    let first = digits.iter().position(|&d| d != b'0');
    let Some(first) = first else {
        return Integer::Exact(0); // all zeros, whatever the sign or exponent
    };
    let last = digits
        .iter()
        .rposition(|&d| d != b'0')
        .expect("a non-zero digit exists");
    let significant = &digits[first..=last];
    // Trailing zeros dropped from the digits raise the scale by as many.
    let trailing = (digits.len() - 1 - last) as i64;
    let scale = exponent
        .saturating_sub(fraction.len() as i64)
        .saturating_add(trailing);
    if scale < 0 {
        return Integer::Fraction;
    }
    if (significant.len() as i64).saturating_add(scale) > MAX_DIGITS as i64 {
        return Integer::TooLarge;
    }
    let mut value: i128 = 0;
    for &d in significant {
        value = match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(d - b'0')))
        {
            Some(v) => v,
            None => return Integer::TooLarge,
        };
    }
    for _ in 0..scale {
        value = match value.checked_mul(10) {
            Some(v) => v,
            None => return Integer::TooLarge,
        };
    }
    Integer::Exact(if negative { -value } else { value })
}

/// The exponent after `e`/`E` (empty: 0), saturated far beyond any integer's
/// reach; `None` if malformed.
fn parse_exponent(text: &str) -> Option<i64> {
    if text.is_empty() {
        return Some(0);
    }
    let (negative, digits) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: i64 = 0;
    for d in digits.bytes() {
        value = value.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_number_grammar() {
        for good in [
            "0",
            "-0",
            "7",
            "-12",
            "10",
            "0.5",
            "-0.0",
            "1e2",
            "1E+2",
            "1e-2",
            "2.50e0",
            "123456789012345678901234567890",
        ] {
            assert!(is_number(good), "{good}");
        }
        for bad in [
            "", "-", "+1", "01", "-01", "1.", ".5", "1e", "1e+", "--1", " 1", "1 ", "1,0", "0x10",
            "inf", "NaN", "1.5.2", "1e5e5", "١",
        ] {
            assert!(!is_number(bad), "{bad}");
            assert_eq!(integer_literal(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_plain_integer_path_agrees_with_the_general_one() {
        for text in [
            "0",
            "-0",
            "7",
            "-12",
            "999999999999999999",
            "-999999999999999999",
            "1000000000000000000",
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
            "3.0",
            "1e1",
        ] {
            assert_eq!(integer_literal(text), Some(integer_value(text)), "{text}");
        }
    }

    #[test]
    fn table_of_literals() {
        let cases: &[(&str, Integer)] = &[
            ("3", Integer::Exact(3)),
            ("3.0", Integer::Exact(3)),
            ("3.000", Integer::Exact(3)),
            ("1e1", Integer::Exact(10)),
            ("1E+1", Integer::Exact(10)),
            ("30e-1", Integer::Exact(3)),
            ("0.5e1", Integer::Exact(5)),
            ("-0", Integer::Exact(0)),
            ("-0.0e5", Integer::Exact(0)),
            ("0e-999999999999999999999", Integer::Exact(0)),
            ("-2147483648", Integer::Exact(-2_147_483_648)),
            ("9223372036854775807", Integer::Exact(i64::MAX as i128)),
            ("9223372036854775807.0", Integer::Exact(i64::MAX as i128)),
            ("92233720368547758070e-1", Integer::Exact(i64::MAX as i128)),
            ("1e38", Integer::Exact(10i128.pow(38))),
            ("1e39", Integer::TooLarge),
            ("1e999999999999999999999", Integer::TooLarge),
            (
                "123456789012345678901234567890123456789012",
                Integer::TooLarge,
            ),
            ("1.5", Integer::Fraction),
            ("1e-1", Integer::Fraction),
            ("10e-2", Integer::Fraction),
            ("0.1", Integer::Fraction),
            ("1.0000000000000000000000001", Integer::Fraction),
        ];
        for (literal, expected) in cases {
            assert_eq!(integer_value(literal), *expected, "{literal}");
        }
    }

    /// Every whole number written in many forms reads back as itself.
    #[test]
    fn whole_numbers_in_every_form_are_exact() {
        for n in [
            0i128,
            1,
            7,
            42,
            1000,
            65_535,
            2_147_483_647,
            9_007_199_254_740_993,
        ] {
            for literal in [
                format!("{n}"),
                format!("{n}.0"),
                format!("{n}.000e0"),
                format!("{n}0e-1"),
                format!("{n}00E-2"),
                format!("-{n}"),
            ] {
                let want = if literal.starts_with('-') { -n } else { n };
                assert_eq!(integer_value(&literal), Integer::Exact(want), "{literal}");
            }
        }
    }
}
