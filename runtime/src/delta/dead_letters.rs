//! The dead-letter table: one row per record a plugin rejected or the host
//! could not decode, with the raw bytes, the reason, the plugin that rejected
//! it and where it came from, so nothing is dropped silently.
//!
//! Where a record came from is generic: `source_kind` (`kafka`, `delta`,
//! `files`, ...) and `source_position`, the record's position in that
//! source's own terms as a JSON object (`{"topic":"orders","partition":2,
//! "offset":41}`, `{"file":"a.csv","line":7}`). The typed columns of the first
//! version (`source_topic`, `source_partition`, `source_offset`,
//! `source_table`, `source_version`) are still filled from the position keys
//! of the same names, so existing queries keep working; a dead-letter table
//! written before `source_kind`/`source_position` existed is given those two
//! nullable columns (a metadata-only Delta commit) by `weir run` before any
//! pipeline starts (see `delta/provision.rs`).

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::{Arc, LazyLock};

/// Columns added after the first version of the table; absent from tables
/// written by older versions until a pipeline opens them.
pub const ADDED_COLUMNS: [&str; 2] = ["source_kind", "source_position"];

/// The dead-letter table's schema.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("pipeline", DataType::Utf8, false),
            Field::new("epoch", DataType::UInt64, false),
            Field::new("stage", DataType::Utf8, false),
            Field::new("plugin", DataType::Utf8, true),
            Field::new("plugin_version", DataType::Utf8, true),
            Field::new("plugin_hash", DataType::Utf8, true),
            Field::new("reason", DataType::Utf8, false),
            Field::new("field", DataType::Utf8, true),
            Field::new("raw", DataType::Binary, true),
            Field::new("source_topic", DataType::Utf8, true),
            Field::new("source_partition", DataType::Int32, true),
            Field::new("source_offset", DataType::Int64, true),
            Field::new("source_table", DataType::Utf8, true),
            Field::new("source_version", DataType::Int64, true),
            Field::new("source_kind", DataType::Utf8, true),
            Field::new("source_position", DataType::Utf8, true),
        ]))
    });
    SCHEMA.clone()
}

/// The schema an existing table must have: [`schema`] without the
/// [`ADDED_COLUMNS`] it lacks (they are added before pipelines start).
pub fn expected_schema(has_column: impl Fn(&str) -> bool) -> Schema {
    let full = schema();
    Schema::new(
        full.fields()
            .iter()
            .filter(|f| !ADDED_COLUMNS.contains(&f.name().as_str()) || has_column(f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    )
}

/// One value of a source position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PositionValue {
    /// A name: topic, table, file.
    Text(String),
    /// A number: partition, offset, version, line.
    Int(i64),
}

/// Where a dead letter came from: the source kind and the record's position
/// in it (keys in the source's own terms, in a fixed order).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// `kafka`, `delta`, `files`, ...; `None` for a row that cannot be traced
    /// to one source record (a later stage's row).
    pub kind: Option<&'static str>,
    /// Position fields, e.g. `topic`, `partition`, `offset`.
    pub position: Vec<(&'static str, PositionValue)>,
}

impl Origin {
    /// A row of source `kind` at no known position yet.
    pub fn of(kind: &'static str) -> Self {
        Origin {
            kind: Some(kind),
            position: Vec::new(),
        }
    }

    /// Adds a text position field.
    pub fn text(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.position.push((key, PositionValue::Text(value.into())));
        self
    }

    /// Adds a numeric position field.
    pub fn int(mut self, key: &'static str, value: i64) -> Self {
        self.position.push((key, PositionValue::Int(value)));
        self
    }

    fn get(&self, key: &str) -> Option<&PositionValue> {
        self.position
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    fn text_of(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            PositionValue::Text(text) => Some(text),
            PositionValue::Int(_) => None,
        }
    }

    fn int_of(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            PositionValue::Int(value) => Some(*value),
            PositionValue::Text(_) => None,
        }
    }

    /// The position as a JSON object, `None` when there is none.
    fn position_json(&self) -> Option<String> {
        if self.position.is_empty() {
            return None;
        }
        let map: serde_json::Map<String, serde_json::Value> = self
            .position
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    PositionValue::Text(text) => serde_json::Value::from(text.as_str()),
                    PositionValue::Int(n) => serde_json::Value::from(*n),
                };
                (k.to_string(), value)
            })
            .collect();
        Some(serde_json::Value::Object(map).to_string())
    }
}

/// One dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The stage that rejected it (`source` for undecodable input).
    pub stage: String,
    /// `(name, version, hash)` of the plugin, if a plugin rejected it.
    pub plugin: Option<(String, String, String)>,
    /// Why.
    pub reason: String,
    /// The field at fault, if known.
    pub field: Option<String>,
    /// The raw bytes, if any.
    pub raw: Option<Vec<u8>>,
    /// Where it came from.
    pub origin: Origin,
}

/// Builds the dead-letter batch of one pipeline's epoch.
pub fn to_batch(pipeline: &str, epoch: u64, letters: &[DeadLetter]) -> RecordBatch {
    let n = letters.len();
    let mut pipeline_b = StringBuilder::with_capacity(n, n * pipeline.len());
    let mut epoch_b = UInt64Builder::with_capacity(n);
    let mut stage = StringBuilder::new();
    let mut plugin = StringBuilder::new();
    let mut version = StringBuilder::new();
    let mut hash = StringBuilder::new();
    let mut reason = StringBuilder::new();
    let mut field = StringBuilder::new();
    let mut raw = BinaryBuilder::new();
    let mut topic = StringBuilder::new();
    let mut partition = Int32Builder::new();
    let mut offset = Int64Builder::new();
    let mut table = StringBuilder::new();
    let mut table_version = Int64Builder::new();
    let mut kind = StringBuilder::new();
    let mut position = StringBuilder::new();
    for letter in letters {
        pipeline_b.append_value(pipeline);
        epoch_b.append_value(epoch);
        stage.append_value(&letter.stage);
        plugin.append_option(letter.plugin.as_ref().map(|p| &p.0));
        version.append_option(letter.plugin.as_ref().map(|p| &p.1));
        hash.append_option(letter.plugin.as_ref().map(|p| &p.2));
        reason.append_value(&letter.reason);
        field.append_option(letter.field.as_ref());
        raw.append_option(letter.raw.as_ref());
        let origin = &letter.origin;
        topic.append_option(origin.text_of("topic"));
        partition.append_option(
            origin
                .int_of("partition")
                .and_then(|p| i32::try_from(p).ok()),
        );
        offset.append_option(origin.int_of("offset"));
        table.append_option(origin.text_of("table"));
        table_version.append_option(origin.int_of("version"));
        kind.append_option(origin.kind);
        position.append_option(origin.position_json());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(pipeline_b.finish()),
        Arc::new(epoch_b.finish()),
        Arc::new(stage.finish()),
        Arc::new(plugin.finish()),
        Arc::new(version.finish()),
        Arc::new(hash.finish()),
        Arc::new(reason.finish()),
        Arc::new(field.finish()),
        Arc::new(raw.finish()),
        Arc::new(topic.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(table.finish()),
        Arc::new(table_version.finish()),
        Arc::new(kind.finish()),
        Arc::new(position.finish()),
    ];
    RecordBatch::try_new(schema(), columns).expect("columns match the dead-letter schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    #[test]
    fn every_origin_fills_its_own_columns() {
        let letters = vec![
            DeadLetter {
                stage: "parse".into(),
                plugin: Some(("parse-json".into(), "0.1.0".into(), "abc".into())),
                reason: "expected a number".into(),
                field: Some("quantity".into()),
                raw: Some(b"{\"quantity\":\"x\"}".to_vec()),
                origin: Origin::of("kafka")
                    .text("topic", "orders")
                    .int("partition", 2)
                    .int("offset", 41),
            },
            DeadLetter {
                stage: "silver".into(),
                plugin: None,
                reason: "late".into(),
                field: None,
                raw: None,
                origin: Origin::of("delta")
                    .text("table", "/t/bronze")
                    .int("version", 7),
            },
        ];
        let batch = to_batch("orders", 3, &letters);
        assert_eq!(batch.num_rows(), 2);
        let topic = batch
            .column_by_name("source_topic")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(topic.value(0), "orders");
        assert!(topic.is_null(1));
        let version = batch
            .column_by_name("source_version")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert!(version.is_null(0));
        assert_eq!(version.value(1), 7);
        let kind = batch
            .column_by_name("source_kind")
            .unwrap()
            .as_string::<i32>();
        assert_eq!((kind.value(0), kind.value(1)), ("kafka", "delta"));
        let position = batch
            .column_by_name("source_position")
            .unwrap()
            .as_string::<i32>();
        assert_eq!(
            position.value(0),
            r#"{"offset":41,"partition":2,"topic":"orders"}"#
        );
    }
}
