//! The `rejected` output: rows a plugin could not process, each with the raw
//! input, the row index and a reason naming the field. Nothing is dropped silently.

use crate::Port;
use arrow_array::builder::{ArrayBuilder, BinaryBuilder, StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::sync::{Arc, OnceLock};

/// The conventional name of the rejected-rows output port.
pub const REJECTED_PORT: &str = "rejected";

/// Schema of every `rejected` output: `row` (index in the input batch), `raw`
/// (the original bytes, when the input had any), `field` (the offending field,
/// when one is to blame) and `reason`.
pub fn rejected_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("row", DataType::UInt64, false),
                Field::new("raw", DataType::Binary, true),
                Field::new("field", DataType::Utf8, true),
                Field::new("reason", DataType::Utf8, false),
            ]))
        })
        .clone()
}

/// The `rejected` output port declaration, for a manifest.
pub fn rejected_port() -> Port {
    Port {
        name: REJECTED_PORT.into(),
        description: "Rows that could not be processed, with the raw input and the reason.".into(),
        schema: Some(rejected_schema()),
    }
}

/// Collects rejected rows and turns them into a `rejected` batch.
#[derive(Debug, Default)]
pub struct Rejects {
    row: UInt64Builder,
    raw: BinaryBuilder,
    field: StringBuilder,
    reason: StringBuilder,
}

impl Rejects {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that input row `row` was rejected because of `reason`
    /// (`field` names the offending field when one is to blame).
    pub fn push(&mut self, row: usize, raw: Option<&[u8]>, field: Option<&str>, reason: &str) {
        self.row.append_value(row as u64);
        self.raw.append_option(raw);
        self.field.append_option(field);
        self.reason.append_value(reason);
    }

    /// Number of rejected rows so far.
    pub fn len(&self) -> usize {
        self.row.len()
    }

    /// True when nothing was rejected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The collected rows as a batch of [`rejected_schema`].
    pub fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.row.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(self.field.finish()),
            Arc::new(self.reason.finish()),
        ];
        RecordBatch::try_new(rejected_schema(), columns)
            .expect("rejected columns match rejected_schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, StringArray, UInt64Array};

    #[test]
    fn collects_rows_with_reasons() {
        let mut rejects = Rejects::new();
        assert!(rejects.is_empty());
        rejects.push(3, Some(b"{bad"), None, "invalid JSON");
        rejects.push(
            9,
            Some(b"{}"),
            Some("event_id"),
            "required field `event_id` is missing",
        );
        let batch = rejects.finish();
        assert_eq!(batch.num_rows(), 2);
        let rows = batch
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        assert_eq!(rows.values().to_vec(), vec![3, 9]);
        let fields = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert!(fields.is_null(0));
        assert_eq!(fields.value(1), "event_id");
    }
}
