//! The schema a user declares in a parser's config (`fields`), validated into
//! a typed tree, and its Arrow form. Every config mistake names its key path.

use crate::PluginError;
use crate::key::same_bytes;
use arrow_schema::{DataType, Field, Fields, TimeUnit};
use chrono::format::{Item, StrftimeItems};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

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
    /// A strftime pattern.
    Pattern {
        /// The pattern, e.g. `%d/%m/%Y %H:%M`.
        pattern: String,
        /// Whether it reads an offset (`%z`); without one the text is UTC.
        zoned: bool,
    },
}

impl TimestampFormat {
    /// For the epoch formats, the microseconds in one unit of the number
    /// (1,000,000 for seconds, 1,000 for milliseconds, 1 for microseconds);
    /// `None` for the formats written as text.
    #[inline]
    pub fn micros_per_unit(&self) -> Option<i64> {
        match self {
            TimestampFormat::EpochSeconds => Some(1_000_000),
            TimestampFormat::EpochMillis => Some(1_000),
            TimestampFormat::EpochMicros => Some(1),
            TimestampFormat::Iso8601 | TimestampFormat::Pattern { .. } => None,
        }
    }
}

/// A validated value type.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueType {
    /// UTF-8 text (Arrow Utf8).
    String,
    /// 32-bit integer (Arrow Int32).
    Int32,
    /// 64-bit integer (Arrow Int64).
    Int64,
    /// 64-bit float (Arrow Float64).
    Float64,
    /// true / false (Arrow Boolean).
    Boolean,
    /// A point in time written in this format (Arrow Timestamp(µs, "UTC")).
    Timestamp(TimestampFormat),
    /// A calendar date written in this strftime pattern (Arrow Date32).
    Date(String),
    /// A nested object of these fields (Arrow Struct).
    Struct(Vec<FieldSpec>),
    /// A list of items of this type; the flag says whether items may be null (Arrow List).
    List(Box<ValueType>, bool),
}

/// A validated field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    /// The column name.
    pub name: String,
    /// The value type.
    pub ty: ValueType,
    /// Whether a row must give a non-null value (the Arrow field is then non-nullable).
    pub required: bool,
    /// The first 8 bytes of the name as a word, so almost every other key is
    /// told apart with one comparison.
    key_word: u64,
    /// Where a parser guesses the next key is declared (see [`KeyOrder`]).
    pub order: KeyOrder,
}

/// What a parser learned of the order keys come in: records of one source
/// nearly always write their keys in one order, which need not be the
/// declared one (a generator that sorts keys, say). A guess is always checked
/// against the key, so a wrong one costs a search, never a wrong field.
///
/// Interior-mutable (relaxed atomics: a guess may be stale, never wrong) so
/// the validated schema stays shared and immutable otherwise; ignored by
/// `==` and copied by `clone`.
#[derive(Debug, Default)]
pub struct KeyOrder {
    /// The field whose key followed this field's key last time.
    follower: AtomicU16,
    /// On the first field of a list only: the field whose key opened the
    /// last object of that list.
    opener: AtomicU16,
}

impl KeyOrder {
    /// The index guessed to follow this field.
    #[inline]
    pub fn follower(&self) -> usize {
        usize::from(self.follower.load(Ordering::Relaxed))
    }

    /// Remembers that field `index` followed this one.
    #[inline]
    pub fn set_follower(&self, index: usize) {
        self.follower.store(hint(index), Ordering::Relaxed);
    }

    /// The index guessed to open an object (meaningful on a list's first field).
    #[inline]
    pub fn opener(&self) -> usize {
        usize::from(self.opener.load(Ordering::Relaxed))
    }

    /// Remembers that field `index` opened an object.
    #[inline]
    pub fn set_opener(&self, index: usize) {
        self.opener.store(hint(index), Ordering::Relaxed);
    }
}

/// An index as a hint; one past `u16::MAX` fields no guess is kept (such a
/// field is found by searching).
fn hint(index: usize) -> u16 {
    u16::try_from(index).unwrap_or(u16::MAX)
}

impl Clone for KeyOrder {
    fn clone(&self) -> Self {
        KeyOrder {
            follower: AtomicU16::new(self.follower.load(Ordering::Relaxed)),
            opener: AtomicU16::new(self.opener.load(Ordering::Relaxed)),
        }
    }
}

impl PartialEq for KeyOrder {
    /// Hints are not part of a schema: any two are equal.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl FieldSpec {
    /// A field called `name` of type `ty`.
    pub fn new(name: String, ty: ValueType, required: bool) -> Self {
        FieldSpec {
            key_word: key_word(name.as_bytes()),
            name,
            ty,
            required,
            order: KeyOrder::default(),
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

/// The JSON Schema of one entry of `fields`, for a plugin's config schema
/// (as `$defs.field`). `nested` allows `struct` and `list` fields, whose
/// `fields` and `items` refer back to `#/$defs/field`; without it the types
/// are the flat ones and every field needs a `name`.
pub fn field_schema(nested: bool) -> serde_json::Value {
    let flat = [
        "string",
        "int32",
        "int64",
        "float64",
        "boolean",
        "timestamp",
        "date",
    ];
    let (types, aliases, required) = if nested {
        (
            [flat.as_slice(), &["struct", "list"]].concat(),
            "int, integer, long, bigint, double, float, bool, array",
            vec!["type"],
        )
    } else {
        (
            flat.to_vec(),
            "int, integer, long, bigint, double, float, bool",
            vec!["name", "type"],
        )
    };
    let mut properties = serde_json::json!({
        "name": {"type": "string"},
        "type": {"enum": types,
                 "description": format!("Spark names are accepted too: {aliases}.")},
        "required": {"type": "boolean", "default": false},
        "format": {"type": "string", "description": "timestamp: iso8601 (default), epoch_seconds, epoch_millis, epoch_micros or a strftime pattern; date: a strftime pattern (default %Y-%m-%d)."}
    });
    if nested {
        properties["fields"] =
            serde_json::json!({"type": "array", "items": {"$ref": "#/$defs/field"}});
        properties["items"] = serde_json::json!({"$ref": "#/$defs/field"});
    }
    serde_json::json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": properties
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_words_are_the_first_eight_bytes_zero_padded() {
        let key = b"abcdefghijk";
        for len in 0..=key.len() {
            let expected = key[..len.min(8)]
                .iter()
                .enumerate()
                .fold(0u64, |word, (i, &b)| word | (u64::from(b) << (8 * i)));
            assert_eq!(key_word(&key[..len]), expected, "length {len}");
        }
    }

    #[test]
    fn keys_match_a_field_name_only_when_every_byte_is_equal() {
        let name = "abcdefghijklmnopqrstuvwx";
        for len in 1..=name.len() {
            let field = FieldSpec::new(name[..len].to_string(), ValueType::String, false);
            let key = &name[..len];
            assert!(
                field.is_named(key, key_word(key.as_bytes())),
                "length {len}"
            );
            for changed in 0..len {
                let mut other = key.as_bytes().to_vec();
                other[changed] = b'_';
                let other = std::str::from_utf8(&other).unwrap();
                let word = key_word(other.as_bytes());
                assert!(!field.is_named(other, word), "length {len}, byte {changed}");
            }
            for other in [&name[..len - 1], &name[1..len]] {
                let word = key_word(other.as_bytes());
                assert!(!field.is_named(other, word), "length {len}, `{other}`");
            }
        }
    }

    #[test]
    fn epoch_formats_know_their_unit() {
        assert_eq!(
            TimestampFormat::EpochSeconds.micros_per_unit(),
            Some(1_000_000)
        );
        assert_eq!(TimestampFormat::EpochMillis.micros_per_unit(), Some(1_000));
        assert_eq!(TimestampFormat::EpochMicros.micros_per_unit(), Some(1));
        assert_eq!(TimestampFormat::Iso8601.micros_per_unit(), None);
    }

    #[test]
    fn the_flat_field_schema_has_no_nested_types() {
        let flat = field_schema(false);
        let types = flat["properties"]["type"]["enum"].as_array().unwrap();
        assert!(!types.iter().any(|t| t == "struct" || t == "list"));
        assert!(flat["properties"].get("items").is_none());
        let nested = field_schema(true);
        assert_eq!(nested["properties"]["items"]["$ref"], "#/$defs/field");
    }
}
