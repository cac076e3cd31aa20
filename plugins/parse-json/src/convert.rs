//! Parses one JSON document straight into the column buffers, following the
//! declared fields: no intermediate value tree, object keys matched without
//! allocating, undeclared keys skipped. On a bad row it says which field is
//! wrong and why; the caller then rolls the columns back to the last good row.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use weir_sdk::fields::{
    Column, FieldSpec, Integer, TimestampFormat, ValueType, date_days, integer_value, key_word,
    seconds_to_micros, timestamp,
};

/// Why a row was rejected: the dotted path of the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub field: Option<String>,
    pub reason: String,
}

/// One row's JSON, as text already known to be UTF-8 (serde_json then skips
/// its per-string validation) or as raw bytes (it then says where an invalid
/// sequence is).
pub enum RowJson<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

/// Parses one JSON object of `fields`, appending row number `row` to
/// `columns`. On error the columns may hold part of the row: truncate them to `row`.
pub fn parse_row(
    json: RowJson<'_>,
    fields: &[FieldSpec],
    columns: &mut [Column],
    row: usize,
    strict: bool,
) -> Result<(), Rejection> {
    match json {
        RowJson::Text(text) => parse_with(
            serde_json::Deserializer::from_str(text),
            fields,
            columns,
            row,
            strict,
        ),
        RowJson::Bytes(raw) => parse_with(
            serde_json::Deserializer::from_slice(raw),
            fields,
            columns,
            row,
            strict,
        ),
    }
}

fn parse_with<'de, R: serde_json::de::Read<'de>>(
    mut deserializer: serde_json::Deserializer<R>,
    fields: &[FieldSpec],
    columns: &mut [Column],
    row: usize,
    strict: bool,
) -> Result<(), Rejection> {
    let rejection = RefCell::new(None);
    let context = Context {
        strict,
        rejection: &rejection,
    };
    let seed = ObjectSeed {
        fields,
        columns,
        base: row,
        path: &Path::Root,
        context,
    };
    let parsed = seed
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    parsed.map_err(|error| {
        rejection.into_inner().unwrap_or_else(|| Rejection {
            field: None,
            reason: format!("invalid JSON: {error}"),
        })
    })
}

/// Settings and the rejection slot shared by every level of one parse.
#[derive(Clone, Copy)]
struct Context<'p> {
    strict: bool,
    rejection: &'p RefCell<Option<Rejection>>,
}

impl Context<'_> {
    /// Records why the row is rejected and returns the error that stops the parse.
    fn reject<E: de::Error>(&self, path: &Path<'_>, reason: String) -> E {
        let field = match path {
            Path::Root => None,
            path => Some(path.to_string()),
        };
        self.rejection
            .borrow_mut()
            .get_or_insert(Rejection { field, reason });
        E::custom("rejected")
    }
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

/// An object key: the index of a declared field, or an undeclared name.
enum Key<'de> {
    Field(usize),
    Other(Cow<'de, str>),
}

/// Matches a key against the fields without allocating, trying `hint` (the
/// field after the previous key) first, since keys usually come in order.
struct KeySeed<'s> {
    fields: &'s [FieldSpec],
    hint: usize,
}

impl KeySeed<'_> {
    fn find(&self, key: &str) -> Option<usize> {
        let (n, word) = (self.fields.len(), key_word(key.as_bytes()));
        (0..n)
            .map(|i| (self.hint + i) % n)
            .find(|&i| self.fields[i].is_named(key, word))
    }
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(self
            .find(key)
            .map_or(Key::Other(Cow::Borrowed(key)), Key::Field))
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self
            .find(key)
            .map_or_else(|| Key::Other(Cow::Owned(key.to_string())), Key::Field))
    }
}

/// Deserializes a JSON object into one value per declared field, appended to
/// `columns`, which all held `base` values before it.
struct ObjectSeed<'s, 'p> {
    fields: &'s [FieldSpec],
    columns: &'s mut [Column],
    base: usize,
    path: &'p Path<'p>,
    context: Context<'p>,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut hint = 0;
        while let Some(key) = map.next_key_seed(KeySeed {
            fields: self.fields,
            hint,
        })? {
            let i = match key {
                Key::Field(i) => i,
                Key::Other(name) if self.context.strict => {
                    let path = Path::Field(self.path, &name);
                    return Err(self
                        .context
                        .reject(&path, format!("unexpected field `{path}`")));
                }
                Key::Other(_) => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            hint = i + 1;
            let (field, column) = (&self.fields[i], &mut self.columns[i]);
            if column.len() > self.base {
                // A repeated key: the last occurrence wins, as in serde_json and Spark.
                column.truncate(self.base);
            }
            let path = Path::Field(self.path, &field.name);
            let seed = ValueSeed {
                ty: &field.ty,
                column,
                path: &path,
                context: self.context,
            };
            let present = map.next_value_seed(seed)?;
            if !present && field.required {
                return Err(self
                    .context
                    .reject(&path, format!("required field `{path}` is null")));
            }
        }
        for (field, column) in self.fields.iter().zip(self.columns.iter_mut()) {
            if column.len() == self.base {
                if field.required {
                    let path = Path::Field(self.path, &field.name);
                    return Err(self
                        .context
                        .reject(&path, format!("required field `{path}` is missing")));
                }
                column.push_null();
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.mismatch(de::Unexpected::Seq))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        Err(self.mismatch(de::Unexpected::Str(v)))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Err(self.mismatch(de::Unexpected::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        Err(self.mismatch(de::Unexpected::Signed(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        Err(self.mismatch(de::Unexpected::Unsigned(v)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        Err(self.mismatch(de::Unexpected::Float(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.mismatch(de::Unexpected::Unit))
    }
}

impl ObjectSeed<'_, '_> {
    fn mismatch<E: de::Error>(&self, got: de::Unexpected<'_>) -> E {
        let reason = match self.path {
            Path::Root => format!("expected a JSON object, found {}", kind_of(got)),
            path => format!("field `{path}`: expected an object, found {}", kind_of(got)),
        };
        self.context.reject(self.path, reason)
    }
}

/// Deserializes one value of a declared type into its column; the value says
/// whether it was present (`false` for JSON null).
struct ValueSeed<'s, 'p> {
    ty: &'s ValueType,
    column: &'s mut Column,
    path: &'p Path<'p>,
    context: Context<'p>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        match self.ty {
            ValueType::Struct(_) => deserializer.deserialize_option(self),
            ValueType::Int32
            | ValueType::Int64
            | ValueType::Timestamp(
                TimestampFormat::EpochSeconds
                | TimestampFormat::EpochMillis
                | TimestampFormat::EpochMicros,
            ) => {
                // Integers are read from the literal as written, never through a
                // double, so `3.0`, `1e1` and `30e-1` are exactly 3, 10 and 3.
                let raw: Box<serde_json::value::RawValue> =
                    serde::Deserialize::deserialize(deserializer)?;
                self.integer_literal(raw.get())
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
        self.context.reject(self.path, reason)
    }

    fn invalid<E: de::Error>(&self, problem: String) -> E {
        self.context
            .reject(self.path, format!("field `{}`: {problem}", self.path))
    }

    /// A value of an integer-typed field, from its JSON text: a number whose
    /// value is a whole number in range becomes exactly that integer; any
    /// other number is rejected quoting the literal as written (a fraction of
    /// a second is kept for `epoch_seconds`); other values are mismatches.
    fn integer_literal<E: de::Error>(self, literal: &str) -> Result<bool, E> {
        if !literal.starts_with(['-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']) {
            // Not a number: the ordinary visitor names what it is (or takes null).
            let mut inner = serde_json::Deserializer::from_str(literal);
            return inner.deserialize_any(self).map_err(E::custom);
        }
        match integer_value(literal) {
            Integer::Exact(n) => self.integer(n, &literal),
            Integer::TooLarge => {
                let what = match self.ty {
                    ValueType::Int32 => "does not fit a 32-bit integer",
                    ValueType::Int64 => "does not fit a 64-bit integer",
                    _ => "is out of range",
                };
                Err(self.invalid(format!("{literal} {what}")))
            }
            Integer::Fraction => match self.ty {
                ValueType::Int32 => Err(self.invalid(format!("{literal} is not a 32-bit integer"))),
                ValueType::Int64 => Err(self.invalid(format!("{literal} is not a 64-bit integer"))),
                ValueType::Timestamp(TimestampFormat::EpochSeconds) => {
                    let seconds: f64 = literal
                        .parse()
                        .map_err(|_| self.invalid::<E>(format!("{literal} is not a number")))?;
                    self.visit_f64(seconds)
                }
                _ => Err(self.invalid(format!("{literal} is not a whole number"))),
            },
        }
    }

    fn integer<E: de::Error>(self, n: i128, text: &dyn fmt::Display) -> Result<bool, E> {
        match self.ty {
            ValueType::Int64 => match i64::try_from(n) {
                Ok(v) => self.column.push_i64(v),
                Err(_) => return Err(self.invalid(format!("{text} does not fit a 64-bit integer"))),
            },
            ValueType::Int32 => match i32::try_from(n) {
                Ok(v) => self.column.push_i32(v),
                Err(_) => return Err(self.invalid(format!("{text} does not fit a 32-bit integer"))),
            },
            ValueType::Float64 => self.column.push_f64(n as f64),
            ValueType::Timestamp(format) => {
                let Some(scale) = format.micros_per_unit() else {
                    return Err(self.mismatch(de::Unexpected::Signed(0)));
                };
                match n
                    .checked_mul(i128::from(scale))
                    .and_then(|micros| i64::try_from(micros).ok())
                {
                    Some(micros) => self.column.push_micros(micros),
                    None => return Err(self.invalid(format!("{text} is out of range"))),
                }
            }
            _ => return Err(self.mismatch(de::Unexpected::Signed(0))),
        }
        Ok(true)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.column.push_null();
        Ok(false)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        let ValueType::Struct(fields) = self.ty else {
            unreachable!("only struct values are read as options")
        };
        let base = self.column.len();
        let Column::Struct { children, .. } = &mut *self.column else {
            unreachable!("a struct field has a struct column")
        };
        let seed = ObjectSeed {
            fields,
            columns: children,
            base,
            path: self.path,
            context: self.context,
        };
        seed.deserialize(deserializer)?;
        self.column.close_value();
        Ok(true)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        match self.ty {
            ValueType::Boolean => self.column.push_bool(v),
            _ => return Err(self.mismatch(de::Unexpected::Bool(v))),
        }
        Ok(true)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        self.integer(v as i128, &v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        self.integer(v as i128, &v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        match self.ty {
            ValueType::Float64 => self.column.push_f64(v),
            ValueType::Timestamp(TimestampFormat::EpochSeconds) => match seconds_to_micros(v) {
                Some(micros) => self.column.push_micros(micros),
                None => return Err(self.invalid(format!("{v} is out of range"))),
            },
            ValueType::Timestamp(TimestampFormat::EpochMillis | TimestampFormat::EpochMicros) => {
                return Err(self.invalid(format!("{v} is not a whole number")));
            }
            _ => return Err(self.mismatch(de::Unexpected::Float(v))),
        }
        Ok(true)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        match self.ty {
            ValueType::String => {
                if self.column.push_str(v).is_err() {
                    return Err(self.invalid(
                        "the batch holds over 2 GiB of text in this column; use smaller batches"
                            .into(),
                    ));
                }
            }
            ValueType::Timestamp(format) => match timestamp(v, format) {
                Ok(micros) => self.column.push_micros(micros),
                Err(Some(problem)) => return Err(self.invalid(problem)),
                Err(None) => return Err(self.mismatch(de::Unexpected::Str(v))),
            },
            ValueType::Date(pattern) => match date_days(v, pattern) {
                Ok(days) => self.column.push_days(days),
                Err(problem) => return Err(self.invalid(problem)),
            },
            _ => return Err(self.mismatch(de::Unexpected::Str(v))),
        }
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let ValueType::List(item, nullable) = self.ty else {
            return Err(self.mismatch(de::Unexpected::Seq));
        };
        let Column::List { child, .. } = &mut *self.column else {
            unreachable!("a list field has a list column")
        };
        for index in 0.. {
            let path = Path::Index(self.path, index);
            let seed = ValueSeed {
                ty: item,
                column: child,
                path: &path,
                context: self.context,
            };
            match seq.next_element_seed(seed)? {
                None => break,
                Some(false) if !nullable => {
                    return Err(self
                        .context
                        .reject(&path, format!("required field `{path}` is null")));
                }
                Some(_) => {}
            }
        }
        self.column.close_value();
        Ok(true)
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<bool, A::Error> {
        Err(self.mismatch(de::Unexpected::Map))
    }
}
