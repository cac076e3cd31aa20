//! Parses one JSON document straight into typed cells following the declared
//! fields — no intermediate `serde_json::Value` tree, strings borrowed from the
//! input where possible, undeclared keys skipped without allocating — or says
//! which field is wrong and why.

use crate::spec::{FieldSpec, TimestampFormat, ValueType};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

/// One typed value, ready to append to a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Str(Cow<'a, str>),
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

/// Parses `raw` as one JSON object of `fields`.
pub fn parse_row<'a>(
    raw: &'a [u8],
    fields: &[FieldSpec],
    strict: bool,
) -> Result<Vec<Cell<'a>>, Rejection> {
    let rejection = RefCell::new(None);
    let seed = ObjectSeed {
        fields,
        strict,
        path: &Path::Root,
        rejection: &rejection,
    };
    let mut deserializer = serde_json::Deserializer::from_slice(raw);
    let parsed = seed
        .deserialize(&mut deserializer)
        .and_then(|cells| deserializer.end().map(|()| cells));
    parsed.map_err(|error| {
        rejection.into_inner().unwrap_or_else(|| Rejection {
            field: None,
            reason: format!("invalid JSON: {error}"),
        })
    })
}

/// Where in the document a value sits; rendered only when a row is rejected.
enum Path<'p> {
    Root,
    Field(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(Path::Root, name) => write!(f, "{name}"),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Records the rejection and returns the error that stops the parse.
fn reject<E: de::Error>(slot: &RefCell<Option<Rejection>>, path: &Path<'_>, reason: String) -> E {
    let field = match path {
        Path::Root => None,
        path => Some(path.to_string()),
    };
    slot.borrow_mut().get_or_insert(Rejection { field, reason });
    E::custom("rejected")
}

fn kind_of(unexpected: de::Unexpected<'_>) -> &'static str {
    match unexpected {
        de::Unexpected::Bool(_) => "a boolean",
        de::Unexpected::Unsigned(_) | de::Unexpected::Signed(_) | de::Unexpected::Float(_) => {
            "a number"
        }
        de::Unexpected::Str(_) => "a string",
        de::Unexpected::Unit | de::Unexpected::Option => "null",
        de::Unexpected::Seq => "an array",
        de::Unexpected::Map => "an object",
        _ => "something else",
    }
}

/// Deserializes a JSON object into one cell per declared field.
struct ObjectSeed<'s, 'p> {
    fields: &'s [FieldSpec],
    strict: bool,
    path: &'p Path<'p>,
    rejection: &'p RefCell<Option<Rejection>>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, '_> {
    type Value = Vec<Cell<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, '_> {
    type Value = Vec<Cell<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut cells: Vec<Option<Cell<'de>>> = vec![None; self.fields.len()];
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match self.fields.iter().position(|f| f.name == key) {
                Some(i) => {
                    let field = &self.fields[i];
                    let path = Path::Field(self.path, &field.name);
                    let seed = ValueSeed {
                        ty: &field.ty,
                        strict: self.strict,
                        path: &path,
                        rejection: self.rejection,
                    };
                    cells[i] = Some(map.next_value_seed(seed)?);
                }
                None if self.strict => {
                    let path = Path::Field(self.path, &key);
                    return Err(reject(
                        self.rejection,
                        &path,
                        format!("unexpected field `{path}`"),
                    ));
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.fields
            .iter()
            .zip(cells)
            .map(|(field, cell)| match cell {
                Some(Cell::Null) | None if field.required => {
                    let what = if cell.is_some() {
                        "is null"
                    } else {
                        "is missing"
                    };
                    let path = Path::Field(self.path, &field.name);
                    Err(reject(
                        self.rejection,
                        &path,
                        format!("required field `{path}` {what}"),
                    ))
                }
                cell => Ok(cell.unwrap_or(Cell::Null)),
            })
            .collect()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.mismatch(de::Unexpected::Seq))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Err(self.mismatch(de::Unexpected::Str(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Err(self.mismatch(de::Unexpected::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Err(self.mismatch(de::Unexpected::Signed(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Err(self.mismatch(de::Unexpected::Unsigned(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Err(self.mismatch(de::Unexpected::Float(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(self.mismatch(de::Unexpected::Unit))
    }
}

impl ObjectSeed<'_, '_> {
    fn mismatch<E: de::Error>(&self, got: de::Unexpected<'_>) -> E {
        let reason = match self.path {
            Path::Root => format!("expected a JSON object, found {}", kind_of(got)),
            path => format!("field `{path}`: expected an object, found {}", kind_of(got)),
        };
        reject(self.rejection, self.path, reason)
    }
}

/// Deserializes one value of a declared type.
struct ValueSeed<'s, 'p> {
    ty: &'s ValueType,
    strict: bool,
    path: &'p Path<'p>,
    rejection: &'p RefCell<Option<Rejection>>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Cell<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        match self.ty {
            ValueType::Struct(fields) => {
                let seed = ObjectSeed {
                    fields,
                    strict: self.strict,
                    path: self.path,
                    rejection: self.rejection,
                };
                deserializer.deserialize_option(OptionalStruct(seed))
            }
            _ => deserializer.deserialize_any(self),
        }
    }
}

impl ValueSeed<'_, '_> {
    fn expected(&self) -> &'static str {
        match self.ty {
            ValueType::String => "a string",
            ValueType::Int32 => "a 32-bit integer",
            ValueType::Int64 => "a 64-bit integer",
            ValueType::Float64 => "a number",
            ValueType::Boolean => "true or false",
            ValueType::Timestamp(TimestampFormat::EpochSeconds) => "a number of seconds",
            ValueType::Timestamp(TimestampFormat::EpochMillis | TimestampFormat::EpochMicros) => {
                "a whole number"
            }
            ValueType::Timestamp(_) => "a timestamp string",
            ValueType::Date(_) => "a date string",
            ValueType::Struct(_) => "an object",
            ValueType::List(..) => "an array",
        }
    }

    fn mismatch<E: de::Error>(&self, got: de::Unexpected<'_>) -> E {
        let reason = format!(
            "field `{}`: expected {}, found {}",
            self.path,
            self.expected(),
            kind_of(got)
        );
        reject(self.rejection, self.path, reason)
    }

    fn invalid<E: de::Error>(&self, problem: String) -> E {
        reject(
            self.rejection,
            self.path,
            format!("field `{}`: {problem}", self.path),
        )
    }

    fn integer<E: de::Error>(&self, n: i128, text: &dyn fmt::Display) -> Result<Cell<'static>, E> {
        match self.ty {
            ValueType::Int64 => i64::try_from(n)
                .map(Cell::I64)
                .map_err(|_| self.invalid(format!("{text} does not fit a 64-bit integer"))),
            ValueType::Int32 => i32::try_from(n)
                .map(Cell::I32)
                .map_err(|_| self.invalid(format!("{text} does not fit a 32-bit integer"))),
            ValueType::Float64 => Ok(Cell::F64(n as f64)),
            ValueType::Timestamp(format) => {
                let scale = match format {
                    TimestampFormat::EpochSeconds => 1_000_000,
                    TimestampFormat::EpochMillis => 1_000,
                    TimestampFormat::EpochMicros => 1,
                    _ => return Err(self.mismatch(de::Unexpected::Signed(0))),
                };
                n.checked_mul(scale)
                    .and_then(|micros| i64::try_from(micros).ok())
                    .map(Cell::Micros)
                    .ok_or_else(|| self.invalid(format!("{text} is out of range")))
            }
            _ => Err(self.mismatch(de::Unexpected::Signed(0))),
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = Cell<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Cell::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        match self.ty {
            ValueType::Boolean => Ok(Cell::Bool(v)),
            _ => Err(self.mismatch(de::Unexpected::Bool(v))),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        self.integer(v as i128, &v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        self.integer(v as i128, &v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        match self.ty {
            ValueType::Float64 => Ok(Cell::F64(v)),
            ValueType::Int32 => Err(self.invalid(format!("{v} is not a 32-bit integer"))),
            ValueType::Int64 => Err(self.invalid(format!("{v} is not a 64-bit integer"))),
            ValueType::Timestamp(TimestampFormat::EpochSeconds) => {
                let micros = (v * 1e6).round();
                if micros.is_finite() && micros.abs() < 9.2e18 {
                    Ok(Cell::Micros(micros as i64))
                } else {
                    Err(self.invalid(format!("{v} is out of range")))
                }
            }
            ValueType::Timestamp(TimestampFormat::EpochMillis | TimestampFormat::EpochMicros) => {
                Err(self.invalid(format!("{v} is not a whole number")))
            }
            _ => Err(self.mismatch(de::Unexpected::Float(v))),
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        match self.ty {
            ValueType::String => Ok(Cell::Str(Cow::Borrowed(v))),
            _ => self.visit_str(v),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match self.ty {
            ValueType::String => Ok(Cell::Str(Cow::Owned(v.to_string()))),
            ValueType::Timestamp(format) => {
                timestamp(v, format)
                    .map(Cell::Micros)
                    .map_err(|problem| match problem {
                        Some(problem) => self.invalid(problem),
                        None => self.mismatch(de::Unexpected::Str(v)),
                    })
            }
            ValueType::Date(pattern) => NaiveDate::parse_from_str(v, pattern)
                .map(|date| {
                    Cell::Days(date.signed_duration_since(NaiveDate::default()).num_days() as i32)
                })
                .map_err(|e| {
                    self.invalid(format!("`{v}` is not a date in format `{pattern}` ({e})"))
                }),
            _ => Err(self.mismatch(de::Unexpected::Str(v))),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let ValueType::List(item, nullable) = self.ty else {
            return Err(self.mismatch(de::Unexpected::Seq));
        };
        let mut cells = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        loop {
            let path = Path::Index(self.path, cells.len());
            let seed = ValueSeed {
                ty: item,
                strict: self.strict,
                path: &path,
                rejection: self.rejection,
            };
            match seq.next_element_seed(seed)? {
                None => return Ok(Cell::List(cells)),
                Some(Cell::Null) if !nullable => {
                    return Err(reject(
                        self.rejection,
                        &path,
                        format!("required field `{path}` is null"),
                    ));
                }
                Some(cell) => cells.push(cell),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(self.mismatch(de::Unexpected::Map))
    }
}

/// A struct-typed value: `null`, or an object of its fields.
struct OptionalStruct<'s, 'p>(ObjectSeed<'s, 'p>);

impl<'de> Visitor<'de> for OptionalStruct<'_, '_> {
    type Value = Cell<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Cell::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(deserializer).map(Cell::Struct)
    }
}

/// Microseconds since the epoch; `Err(None)` when a string is the wrong kind of
/// value for `format`, `Err(Some(reason))` when the text does not parse.
fn timestamp(text: &str, format: &TimestampFormat) -> Result<i64, Option<String>> {
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
