//! The dead-letter table: one row per record a plugin rejected or the host
//! could not decode, with the raw bytes, the reason, the plugin that rejected
//! it and where it came from (Kafka topic/partition/offset, or Delta
//! table/version), so nothing is dropped silently.

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, RecordBatch, StringBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::sync::{Arc, LazyLock};

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
        ]))
    });
    SCHEMA.clone()
}

/// Where a dead letter came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A Kafka message.
    Kafka {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
    },
    /// A Delta table; the version is known when the row is a source row.
    Delta {
        /// The table directory.
        table: String,
        /// The version that added the row, if known.
        version: Option<i64>,
    },
    /// Not traceable to one source record (a later stage's row).
    Unknown,
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
        match &letter.origin {
            Origin::Kafka {
                topic: t,
                partition: p,
                offset: o,
            } => {
                topic.append_value(t);
                partition.append_value(*p);
                offset.append_value(*o);
                table.append_null();
                table_version.append_null();
            }
            Origin::Delta {
                table: t,
                version: v,
            } => {
                topic.append_null();
                partition.append_null();
                offset.append_null();
                table.append_value(t);
                table_version.append_option(*v);
            }
            Origin::Unknown => {
                topic.append_null();
                partition.append_null();
                offset.append_null();
                table.append_null();
                table_version.append_null();
            }
        }
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
                origin: Origin::Kafka {
                    topic: "orders".into(),
                    partition: 2,
                    offset: 41,
                },
            },
            DeadLetter {
                stage: "silver".into(),
                plugin: None,
                reason: "late".into(),
                field: None,
                raw: None,
                origin: Origin::Delta {
                    table: "/t/bronze".into(),
                    version: Some(7),
                },
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
    }
}
