//! The schema a user declares in the config (`fields`), validated into a typed
//! tree, and its Arrow form. Every config mistake names its key path.

use chrono::format::{Item, StrftimeItems};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use weir_sdk::key::same_bytes;
use weir_sdk::prelude::*;

/// One entry of `fields` (or a list's `items`) as written in the config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    /// Column name (required in `fields`, absent in `items`).
    pub name: Option<String>,
    /// The value type.
    pub r#type: TypeName,
    /// A required field must be present and non-null, or the row is rejected.
    #[serde(default)]
    pub required: bool,
    /// For `timestamp` and `date`: how the text is written.
    pub format: Option<String>,
    /// For `struct`: the nested fields.
    pub fields: Option<Vec<FieldConfig>>,
    /// For `list`: the element type.
    pub items: Option<Box<FieldConfig>>,
}

/// The value types a field may have (Spark's names are accepted as aliases).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TypeName {
    /// UTF-8 text.
    String,
    /// 32-bit integer.
    #[serde(alias = "int", alias = "integer")]
    Int32,
    /// 64-bit integer.
    #[serde(alias = "long", alias = "bigint")]
    Int64,
    /// 64-bit float.
    #[serde(alias = "double", alias = "float")]
    Float64,
    /// true / false.
    #[serde(alias = "bool")]
    Boolean,
    /// A point in time, stored as microseconds since the epoch, UTC.
    Timestamp,
    /// A calendar date.
    Date,
    /// A nested object.
    Struct,
    /// A JSON array.
    #[serde(alias = "array")]
    List,
}

/// How a timestamp is written in the JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimestampFormat {
    /// RFC 3339 / ISO 8601 text; without an offset it is read as UTC.
    Iso8601,
    /// A number of seconds since the epoch (fractions allowed).
    EpochSeconds,
    /// A whole number of milliseconds since the epoch.
    EpochMillis,
    /// A whole number of microseconds since the epoch.
    EpochMicros,
    /// A strftime pattern; `zoned` when it contains an offset (`%z`).
    Pattern { pattern: String, zoned: bool },
}

/// A validated value type.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueType {
    String,
    Int32,
    Int64,
    Float64,
    Boolean,
    Timestamp(TimestampFormat),
    Date(String),
    Struct(Vec<FieldSpec>),
    List(Box<ValueType>, bool),
}

/// A validated field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    pub name: String,
    pub ty: ValueType,
    pub required: bool,
    /// The first 8 bytes of the name as a word, so almost every other key is
    /// told apart with one comparison.
    key_word: u64,
}

impl FieldSpec {
    /// A field called `name` of type `ty`.
    pub fn new(name: String, ty: ValueType, required: bool) -> Self {
        FieldSpec {
            key_word: key_word(name.as_bytes()),
            name,
            ty,
            required,
        }
    }

    /// Whether object key `key` names this field.
    #[inline]
    pub fn is_named(&self, key: &str, word: u64) -> bool {
        // The word rejects almost every other key at once; `same_bytes`
        // compares words too, never calling `memcmp`.
        self.key_word == word && same_bytes(self.name.as_bytes(), key.as_bytes())
    }
}

/// The first 8 bytes of `key`, zero-padded, as a little-endian word.
#[inline]
pub fn key_word(key: &[u8]) -> u64 {
    // Whole-word loads, overlapping for short keys (the overlapping bytes are
    // equal, so or-ing them is harmless): no per-byte loop, which compiles to
    // slow vector code for wasm.
    let len = key.len();
    let u32_at = |at: usize| u64::from(u32::from_le_bytes(key[at..at + 4].try_into().expect("4")));
    match len {
        0 => 0,
        1..=3 => {
            let byte = |at: usize| u64::from(key[at]) << (8 * at);
            byte(0) | byte(len / 2) | byte(len - 1)
        }
        4..=7 => u32_at(0) | (u32_at(len - 4) << (8 * (len - 4))),
        _ => u64::from_le_bytes(key[..8].try_into().expect("8")),
    }
}

/// Validates `fields` (at config key `path`) into specs.
pub fn validate_fields(fields: &[FieldConfig], path: &str) -> Result<Vec<FieldSpec>, PluginError> {
    if fields.is_empty() {
        return Err(PluginError::bad_config(
            path,
            "at least one field is required",
        ));
    }
    let mut seen = HashSet::new();
    fields
        .iter()
        .enumerate()
        .map(|(i, field)| {
            let at = format!("{path}[{i}]");
            let name = field
                .name
                .clone()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| {
                    PluginError::bad_config(
                        format!("{at}.name"),
                        "every field needs a non-empty name",
                    )
                })?;
            if !seen.insert(name.clone()) {
                return Err(PluginError::bad_config(
                    format!("{at}.name"),
                    format!("field `{name}` is declared twice"),
                ));
            }
            Ok(FieldSpec::new(
                name,
                validate_type(field, &at)?,
                field.required,
            ))
        })
        .collect()
}

fn validate_type(field: &FieldConfig, at: &str) -> Result<ValueType, PluginError> {
    let unexpected = |key: &str| {
        PluginError::bad_config(
            format!("{at}.{key}"),
            format!("`{key}` does not apply to type {:?}", field.r#type),
        )
    };
    if field.format.is_some() && !matches!(field.r#type, TypeName::Timestamp | TypeName::Date) {
        return Err(unexpected("format"));
    }
    if field.fields.is_some() && field.r#type != TypeName::Struct {
        return Err(unexpected("fields"));
    }
    if field.items.is_some() && field.r#type != TypeName::List {
        return Err(unexpected("items"));
    }
    Ok(match field.r#type {
        TypeName::String => ValueType::String,
        TypeName::Int32 => ValueType::Int32,
        TypeName::Int64 => ValueType::Int64,
        TypeName::Float64 => ValueType::Float64,
        TypeName::Boolean => ValueType::Boolean,
        TypeName::Timestamp => ValueType::Timestamp(timestamp_format(field.format.as_deref(), at)?),
        TypeName::Date => {
            let pattern = field.format.clone().unwrap_or_else(|| "%Y-%m-%d".into());
            check_pattern(&pattern, at)?;
            ValueType::Date(pattern)
        }
        TypeName::Struct => {
            let fields = field.fields.as_ref().ok_or_else(|| {
                PluginError::bad_config(format!("{at}.fields"), "a struct needs `fields`")
            })?;
            ValueType::Struct(validate_fields(fields, &format!("{at}.fields"))?)
        }
        TypeName::List => {
            let items = field.items.as_ref().ok_or_else(|| {
                PluginError::bad_config(format!("{at}.items"), "a list needs `items`")
            })?;
            let items_at = format!("{at}.items");
            if items.name.is_some() {
                return Err(PluginError::bad_config(
                    format!("{items_at}.name"),
                    "list items have no name",
                ));
            }
            ValueType::List(Box::new(validate_type(items, &items_at)?), !items.required)
        }
    })
}

fn timestamp_format(format: Option<&str>, at: &str) -> Result<TimestampFormat, PluginError> {
    Ok(match format.unwrap_or("iso8601") {
        "iso8601" | "rfc3339" => TimestampFormat::Iso8601,
        "epoch_seconds" => TimestampFormat::EpochSeconds,
        "epoch_millis" => TimestampFormat::EpochMillis,
        "epoch_micros" => TimestampFormat::EpochMicros,
        pattern => {
            check_pattern(pattern, at)?;
            let zoned =
                pattern.contains("%z") || pattern.contains("%:z") || pattern.contains("%#z");
            TimestampFormat::Pattern {
                pattern: pattern.to_string(),
                zoned,
            }
        }
    })
}

fn check_pattern(pattern: &str, at: &str) -> Result<(), PluginError> {
    if !pattern.contains('%') || StrftimeItems::new(pattern).any(|item| matches!(item, Item::Error))
    {
        return Err(PluginError::bad_config(
            format!("{at}.format"),
            format!(
                "`{pattern}` is not a valid strftime pattern (or iso8601, epoch_seconds, epoch_millis, epoch_micros)"
            ),
        ));
    }
    Ok(())
}

/// The Arrow type of a value type.
pub fn arrow_type(ty: &ValueType) -> DataType {
    match ty {
        ValueType::String => DataType::Utf8,
        ValueType::Int32 => DataType::Int32,
        ValueType::Int64 => DataType::Int64,
        ValueType::Float64 => DataType::Float64,
        ValueType::Boolean => DataType::Boolean,
        ValueType::Timestamp(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ValueType::Date(_) => DataType::Date32,
        ValueType::Struct(fields) => DataType::Struct(arrow_fields(fields)),
        ValueType::List(item, nullable) => {
            DataType::List(Arc::new(Field::new("item", arrow_type(item), *nullable)))
        }
    }
}

/// The Arrow fields of a list of specs.
pub fn arrow_fields(fields: &[FieldSpec]) -> Fields {
    fields
        .iter()
        .map(|f| Field::new(&f.name, arrow_type(&f.ty), !f.required))
        .collect()
}
