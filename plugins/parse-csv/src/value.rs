//! One CSV value, as text, into its declared column: the same readers and
//! the same rules as `parse-json` ([`weir_sdk::fields`]). Numbers must be
//! written as JSON numbers; an integer field takes any whole number in any
//! form (`3`, `3.0`, `1e1`), read exactly from its digits; timestamps and
//! dates follow the field's `format`. A value that does not fit says why,
//! quoting it as written.

use weir_sdk::fields::{
    Column, ColumnFull, Integer, TimestampFormat, ValueType, date_days, integer_literal, is_number,
    seconds_to_micros, timestamp,
};

/// Why a value does not fit its field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The text is not a value of the type at all.
    #[error("`{text}` is not {expected}")]
    NotA {
        /// The value as written.
        text: String,
        /// What the type wants, e.g. `a 32-bit integer`.
        expected: &'static str,
    },
    /// A number of the right kind, too large for the type.
    #[error("`{text}` does not fit {what}")]
    TooLarge {
        /// The value as written.
        text: String,
        /// The type, e.g. `a 32-bit integer`.
        what: &'static str,
    },
    /// A timestamp outside the range a column holds.
    #[error("`{text}` is out of range")]
    OutOfRange {
        /// The value as written.
        text: String,
    },
    /// A timestamp or date that does not parse (the reason quotes it).
    #[error("{0}")]
    Unparsable(String),
    /// The value's bytes are not UTF-8.
    #[error("`{0}` is not valid UTF-8")]
    NotUtf8(String),
    /// The column's text passed what an Arrow column holds.
    #[error(transparent)]
    Full(#[from] ColumnFull),
}

/// Appends the value `text` of type `ty` to `column`.
#[inline]
pub fn push(ty: &ValueType, text: &str, column: &mut Column) -> Result<(), Problem> {
    match ty {
        ValueType::String => column.push_str(text)?,
        ValueType::Int32 => {
            let what = "a 32-bit integer";
            let value = integer(text, what)?;
            column.push_i32(i32::try_from(value).map_err(|_| too_large(text, what))?);
        }
        ValueType::Int64 => {
            let what = "a 64-bit integer";
            let value = integer(text, what)?;
            column.push_i64(i64::try_from(value).map_err(|_| too_large(text, what))?);
        }
        ValueType::Float64 => column.push_f64(float(text)?),
        ValueType::Boolean => column.push_bool(match text {
            "true" => true,
            "false" => false,
            _ => return Err(not_a(text, "true or false")),
        }),
        ValueType::Timestamp(format) => column.push_micros(match format.micros_per_unit() {
            Some(unit) => epoch_micros(text, format, unit)?,
            None => timestamp(text, format).map_err(|problem| {
                Problem::Unparsable(
                    problem.unwrap_or_else(|| format!("`{text}` is not a timestamp")),
                )
            })?,
        }),
        ValueType::Date(pattern) => {
            column.push_days(date_days(text, pattern).map_err(Problem::Unparsable)?)
        }
        ValueType::Struct(_) | ValueType::List(..) => {
            unreachable!("configure refuses struct and list fields")
        }
    }
    Ok(())
}

fn not_a(text: &str, expected: &'static str) -> Problem {
    Problem::NotA {
        text: text.to_string(),
        expected,
    }
}

fn too_large(text: &str, what: &'static str) -> Problem {
    Problem::TooLarge {
        text: text.to_string(),
        what,
    }
}

/// The whole number `text` is, exactly: `3`, `3.0`, `1e1`, `30e-1`.
#[inline]
fn integer(text: &str, what: &'static str) -> Result<i128, Problem> {
    match integer_literal(text) {
        Some(Integer::Exact(value)) => Ok(value),
        Some(Integer::TooLarge) => Err(too_large(text, what)),
        Some(Integer::Fraction) | None => Err(not_a(text, what)),
    }
}

/// The double nearest to the number `text`.
#[inline]
fn float(text: &str) -> Result<f64, Problem> {
    if !is_number(text) {
        return Err(not_a(text, "a number"));
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        _ => Err(too_large(text, "a 64-bit float")),
    }
}

/// Microseconds since the epoch of a number of `unit`s (`epoch_seconds`
/// takes fractions, the others whole numbers only).
fn epoch_micros(text: &str, format: &TimestampFormat, unit: i64) -> Result<i64, Problem> {
    let out_of_range = || Problem::OutOfRange {
        text: text.to_string(),
    };
    let seconds = *format == TimestampFormat::EpochSeconds;
    match integer_literal(text) {
        Some(Integer::Exact(value)) => value
            .checked_mul(i128::from(unit))
            .and_then(|micros| i64::try_from(micros).ok())
            .ok_or_else(out_of_range),
        Some(Integer::TooLarge) => Err(out_of_range()),
        Some(Integer::Fraction) if seconds => text
            .parse::<f64>()
            .ok()
            .and_then(seconds_to_micros)
            .ok_or_else(out_of_range),
        Some(Integer::Fraction) => Err(not_a(text, "a whole number")),
        None if seconds => Err(not_a(text, "a number of seconds")),
        None => Err(not_a(text, "a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_sdk::fields::ValueType;

    /// `text` read as `ty`: the finished one-value column, or the problem.
    fn read(ty: &ValueType, text: &str) -> Result<weir_sdk::arrow_array::ArrayRef, String> {
        let mut column = Column::new(ty, 1);
        push(ty, text, &mut column).map_err(|problem| problem.to_string())?;
        Ok(column.finish())
    }

    #[test]
    fn problems_quote_the_value_as_written() {
        let millis = ValueType::Timestamp(TimestampFormat::EpochMillis);
        let seconds = ValueType::Timestamp(TimestampFormat::EpochSeconds);
        let cases = [
            (ValueType::Int32, "1.5", "`1.5` is not a 32-bit integer"),
            (
                ValueType::Int32,
                "2.50e0",
                "`2.50e0` is not a 32-bit integer",
            ),
            (ValueType::Int32, "+3", "`+3` is not a 32-bit integer"),
            (ValueType::Int32, " 3", "` 3` is not a 32-bit integer"),
            (ValueType::Int32, "007", "`007` is not a 32-bit integer"),
            (
                ValueType::Int32,
                "3000000000.0",
                "`3000000000.0` does not fit a 32-bit integer",
            ),
            (
                ValueType::Int64,
                "9223372036854775808",
                "`9223372036854775808` does not fit a 64-bit integer",
            ),
            (
                ValueType::Int64,
                "123456789012345678901234567890123456789012",
                "`123456789012345678901234567890123456789012` does not fit a 64-bit integer",
            ),
            (ValueType::Float64, "NaN", "`NaN` is not a number"),
            (
                ValueType::Float64,
                "1e400",
                "`1e400` does not fit a 64-bit float",
            ),
            (ValueType::Boolean, "TRUE", "`TRUE` is not true or false"),
            (millis.clone(), "1.5", "`1.5` is not a whole number"),
            (millis, "soon", "`soon` is not a whole number"),
            (seconds.clone(), "soon", "`soon` is not a number of seconds"),
            (seconds, "1e300", "`1e300` is out of range"),
        ];
        for (ty, text, want) in cases {
            assert_eq!(read(&ty, text).unwrap_err(), want, "{ty:?} {text:?}");
        }
    }
}
