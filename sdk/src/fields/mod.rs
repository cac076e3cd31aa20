//! Declared, typed fields for parser plugins (`parse-json`, `parse-csv`): the
//! `fields` a user writes in a config and their validation ([`spec`]), the
//! column buffers a parser appends values to ([`columns`]), and the exact
//! readers of the values' text: integers from their decimal digits, never
//! through a double ([`number`]), RFC 3339 timestamps ([`rfc3339`]) and the
//! other timestamp and date formats ([`text`]).
//!
//! A parser validates its config's `fields` once, in `configure`:
//!
//! ```
//! use weir_sdk::fields::{Column, FieldConfig, arrow_fields, validate_fields};
//! use weir_sdk::arrow_array::Array;
//!
//! let config: Vec<FieldConfig> = serde_json::from_value(serde_json::json!([
//!     {"name": "id", "type": "long", "required": true},
//!     {"name": "at", "type": "timestamp"}
//! ])).unwrap();
//! let fields = validate_fields(&config, "fields").unwrap();
//! assert_eq!(arrow_fields(&fields).len(), 2);
//!
//! // Then, per batch, one column per field, rolled back on a rejected row:
//! let mut columns = Column::for_fields(&fields, 2);
//! columns[0].push_i64(7);
//! columns[1].push_micros(weir_sdk::fields::rfc3339::parse_micros("2024-05-01T10:15:00Z").unwrap());
//! columns[0].push_i64(8);
//! columns.iter_mut().for_each(|column| column.truncate(1)); // the second row was bad
//! assert_eq!(columns[0].finish().len(), 1);
//! ```
//!
//! Every config mistake names its key path (`fields[2].format`); every
//! problem with a value is a sentence that quotes the value, for a rejected
//! row's reason.

pub mod columns;
pub mod number;
pub mod rfc3339;
pub mod spec;
pub mod text;

pub use columns::{Column, ColumnFull};
pub use number::{Integer, integer_literal, integer_value, is_number};
pub use spec::{
    FieldConfig, FieldSpec, KeyOrder, TimestampFormat, TypeName, ValueType, arrow_fields,
    arrow_type, field_schema, key_word, validate_fields,
};
pub use text::{date_days, seconds_to_micros, timestamp};
