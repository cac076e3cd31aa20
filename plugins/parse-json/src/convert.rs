//! Checks one parsed JSON document against the declared fields and turns it
//! into typed cells, or says which field is wrong and why.

use crate::spec::{FieldSpec, TimestampFormat, ValueType};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Map, Value};

/// One typed value, ready to append to a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Str(&'a str),
    I32(i32),
    I64(i64),
    F64(f64),
    Bool(bool),
    /// Microseconds since the epoch, UTC.
    Micros(i64),
    /// Days since the epoch.
    Days(i32),
    Struct(Vec<Cell<'a>>),
    List(Vec<Cell<'a>>),
}

/// Why a row was rejected: the dotted path of the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub field: Option<String>,
    pub reason: String,
}

/// Converts the top-level object of a document into one cell per field.
pub fn convert_row<'a>(doc: &'a Value, fields: &[FieldSpec], strict: bool) -> Result<Vec<Cell<'a>>, Rejection> {
    let object = doc.as_object().ok_or_else(|| Rejection {
        field: None,
        reason: format!("expected a JSON object, found {}", kind(doc)),
    })?;
    convert_object(object, fields, "", strict)
}

fn convert_object<'a>(
    object: &'a Map<String, Value>,
    fields: &[FieldSpec],
    prefix: &str,
    strict: bool,
) -> Result<Vec<Cell<'a>>, Rejection> {
    if strict
        && let Some(extra) = object.keys().find(|k| !fields.iter().any(|f| &f.name == *k))
    {
        return Err(Rejection { field: Some(join(prefix, extra)), reason: format!("unexpected field `{}`", join(prefix, extra)) });
    }
    fields
        .iter()
        .map(|field| {
            let path = join(prefix, &field.name);
            match object.get(&field.name) {
                None | Some(Value::Null) if field.required => {
                    let what = if object.contains_key(&field.name) { "is null" } else { "is missing" };
                    Err(Rejection { reason: format!("required field `{path}` {what}"), field: Some(path) })
                }
                None | Some(Value::Null) => Ok(Cell::Null),
                Some(value) => convert_value(value, &field.ty, &path, strict),
            }
        })
        .collect()
}

fn convert_value<'a>(value: &'a Value, ty: &ValueType, path: &str, strict: bool) -> Result<Cell<'a>, Rejection> {
    let mismatch = |expected: &str| Rejection {
        field: Some(path.to_string()),
        reason: format!("field `{path}`: expected {expected}, found {}", kind(value)),
    };
    let invalid = |reason: String| Rejection { field: Some(path.to_string()), reason: format!("field `{path}`: {reason}") };
    match ty {
        ValueType::String => value.as_str().map(Cell::Str).ok_or_else(|| mismatch("a string")),
        ValueType::Int64 => value.as_i64().map(Cell::I64).ok_or_else(|| integer_problem(value, "a 64-bit integer", &mismatch, &invalid)),
        ValueType::Int32 => match value.as_i64() {
            Some(n) => i32::try_from(n).map(Cell::I32).map_err(|_| invalid(format!("{n} does not fit a 32-bit integer"))),
            None => Err(integer_problem(value, "a 32-bit integer", &mismatch, &invalid)),
        },
        ValueType::Float64 => value.as_f64().map(Cell::F64).ok_or_else(|| mismatch("a number")),
        ValueType::Boolean => value.as_bool().map(Cell::Bool).ok_or_else(|| mismatch("true or false")),
        ValueType::Timestamp(format) => timestamp(value, format).map(Cell::Micros).map_err(|reason| match reason {
            TimestampProblem::Kind(expected) => mismatch(expected),
            TimestampProblem::Text(reason) => invalid(reason),
        }),
        ValueType::Date(pattern) => {
            let text = value.as_str().ok_or_else(|| mismatch("a date string"))?;
            let date = NaiveDate::parse_from_str(text, pattern)
                .map_err(|e| invalid(format!("`{text}` is not a date in format `{pattern}` ({e})")))?;
            Ok(Cell::Days((date - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32))
        }
        ValueType::Struct(fields) => {
            let object = value.as_object().ok_or_else(|| mismatch("an object"))?;
            convert_object(object, fields, path, strict).map(Cell::Struct)
        }
        ValueType::List(item, nullable) => {
            let array = value.as_array().ok_or_else(|| mismatch("an array"))?;
            array
                .iter()
                .enumerate()
                .map(|(i, element)| {
                    let at = format!("{path}[{i}]");
                    match element {
                        Value::Null if *nullable => Ok(Cell::Null),
                        Value::Null => Err(Rejection { reason: format!("required field `{at}` is null"), field: Some(at) }),
                        element => convert_value(element, item, &at, strict),
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Cell::List)
        }
    }
}

fn integer_problem(
    value: &Value,
    expected: &str,
    mismatch: &dyn Fn(&str) -> Rejection,
    invalid: &dyn Fn(String) -> Rejection,
) -> Rejection {
    match value {
        Value::Number(n) => invalid(format!("{n} is not {expected}")),
        _ => mismatch(expected),
    }
}

enum TimestampProblem {
    Kind(&'static str),
    Text(String),
}

fn timestamp(value: &Value, format: &TimestampFormat) -> Result<i64, TimestampProblem> {
    let text = || value.as_str().ok_or(TimestampProblem::Kind("a timestamp string"));
    let whole = |scale: i64| match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| TimestampProblem::Text(format!("{n} is not a whole number")))?
            .checked_mul(scale)
            .ok_or_else(|| TimestampProblem::Text(format!("{value} is out of range"))),
        _ => Err(TimestampProblem::Kind("a whole number")),
    };
    match format {
        TimestampFormat::EpochMicros => whole(1),
        TimestampFormat::EpochMillis => whole(1_000),
        TimestampFormat::EpochSeconds => {
            let seconds = value.as_f64().ok_or(TimestampProblem::Kind("a number of seconds"))?;
            let micros = (seconds * 1e6).round();
            if micros.is_finite() && micros.abs() < 9.2e18 {
                Ok(micros as i64)
            } else {
                Err(TimestampProblem::Text(format!("{value} is out of range")))
            }
        }
        TimestampFormat::Iso8601 => {
            let text = text()?;
            if let Ok(zoned) = DateTime::parse_from_rfc3339(text) {
                return Ok(zoned.timestamp_micros());
            }
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|pattern| NaiveDateTime::parse_from_str(text, pattern).ok())
                .map(|naive| naive.and_utc().timestamp_micros())
                .ok_or_else(|| TimestampProblem::Text(format!("`{text}` is not an ISO 8601 timestamp")))
        }
        TimestampFormat::Pattern { pattern, zoned } => {
            let text = text()?;
            let parsed = if *zoned {
                DateTime::parse_from_str(text, pattern).map(|t| t.timestamp_micros())
            } else {
                NaiveDateTime::parse_from_str(text, pattern).map(|t| t.and_utc().timestamp_micros())
            };
            parsed.map_err(|e| TimestampProblem::Text(format!("`{text}` does not match format `{pattern}` ({e})")))
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
