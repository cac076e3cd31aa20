//! `cdc-upsert` (silver, SCD type 1): reduces a batch of change events to the
//! latest change per key, as seed 002's `CDCUpserter` ranks each user's
//! changes by timestamp and keeps rank 1. The host's `upsert` sink then
//! applies the survivors in one MERGE per epoch: newer than the stored row →
//! update, unknown key → insert, delete → delete (see docs/pipeline.md).
//!
//! Rules, chosen so the result never depends on where epochs end:
//! - "latest" is the largest ordering value (`order_by`); on a tie the first
//!   event in input (source) order wins, as a stored row wins over an incoming
//!   one with an equal ordering value;
//! - inserts and updates are both upserts: whichever is newest is the state
//!   (an update that overtook its insert is not lost, an older insert arriving
//!   late does not overwrite it);
//! - rows with a null key, an unknown operation or a null or unparseable
//!   ordering value go to `rejected` with the reason.
//!
//! Output `out`: the input's columns without the operation column, text
//! ordering values as `Timestamp(µs, UTC)`, then `_deleted` (Boolean, never
//! null) — true for a delete.

mod order;

use order::OrderValues;
use serde::Deserialize;
use std::sync::Arc;
use weir_sdk::arrow_select::take::take_record_batch;
use weir_sdk::key::{KeyColumns, KeyIndex};
use weir_sdk::prelude::*;

/// The output column that marks deletes, read by the `upsert` sink.
pub const DELETED_COLUMN: &str = "_deleted";

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The key columns.
    pub key: Vec<String>,
    /// The ordering column: integer, timestamp, date, or RFC 3339 text.
    pub order_by: String,
    /// The operation column and its values; without it every event is an upsert.
    #[serde(default)]
    pub operation: Option<Operation>,
}

/// `{"column": "update_type", "upsert": ["new", "update"], "delete": ["delete"]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// The text column naming each event's operation.
    pub column: String,
    /// Values meaning insert or update (default `insert`, `update`).
    #[serde(default = "default_upsert")]
    pub upsert: Vec<String>,
    /// Values meaning delete (default `delete`).
    #[serde(default = "default_delete")]
    pub delete: Vec<String>,
}

fn default_upsert() -> Vec<String> {
    vec!["insert".into(), "update".into()]
}

fn default_delete() -> Vec<String> {
    vec!["delete".into()]
}

/// The configured reducer.
pub struct CdcUpsert {
    config: Config,
}

impl Plugin for CdcUpsert {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest {
            name: "cdc-upsert".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Keeps the latest change event per key (SCD type 1); marks deletes for \
                          the upsert sink; rejects events without key, operation or ordering value."
                .into(),
            inputs: vec![Port::any("in", "Change events.")],
            outputs: vec![
                Port::any(
                    "out",
                    "The latest change per key, `_deleted` marking deletes.",
                ),
                rejected_port(),
            ],
            config_schema: json!({"type": "object", "required": ["key", "order_by"],
                "additionalProperties": false, "properties": {
                    "key": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "order_by": {"type": "string"},
                    "operation": {"type": "object", "required": ["column"], "additionalProperties": false,
                        "properties": {"column": {"type": "string"},
                            "upsert": {"type": "array", "items": {"type": "string"}, "default": ["insert", "update"]},
                            "delete": {"type": "array", "items": {"type": "string"}, "default": ["delete"]}}}}}),
        }
    }

    fn configure(config: Config) -> Result<Self, PluginError> {
        if config.key.is_empty() {
            return Err(PluginError::bad_config(
                "key",
                "name at least one key column",
            ));
        }
        if let Some(op) = &config.operation {
            if let Some(both) = op.upsert.iter().find(|v| op.delete.contains(v)) {
                let message = format!("`{both}` is both an upsert and a delete");
                return Err(PluginError::bad_config("operation.delete", message));
            }
            let taken = config
                .key
                .iter()
                .chain([&config.order_by])
                .any(|c| *c == op.column);
            if taken || op.column == DELETED_COLUMN {
                let message = format!(
                    "`{}` cannot be the operation column: it is a key, the ordering column or `{DELETED_COLUMN}`",
                    op.column
                );
                return Err(PluginError::bad_config("operation.column", message));
            }
        }
        Ok(CdcUpsert { config })
    }

    fn process(&mut self, inputs: &Inputs) -> Result<Outputs, PluginError> {
        let input = inputs.get("in")?;
        let rows = input.num_rows();
        let mut rejects = Rejects::new();
        let named: Vec<(&str, &ArrayRef)> = (self.config.key.iter())
            .map(|k| Ok((k.as_str(), input.column_any(k)?)))
            .collect::<Result<_, PluginError>>()?;
        let keys = KeyColumns::new("in", &named)?;
        let order = OrderValues::read(
            &self.config.order_by,
            input.column_any(&self.config.order_by)?,
        )
        .map_err(|m| PluginError::bad_input("in", m))?;
        let deleted = self.deletes(&input)?;
        let op_column = self.config.operation.as_ref().map(|op| op.column.as_str());
        // The row each key's latest change is in, found in one pass: the index
        // lists a key's rows in ascending order, so its first match is the
        // key's first row, which holds the slot.
        let index = KeyIndex::new(keys);
        let mut latest: Vec<u32> = vec![u32::MAX; rows];
        for (row, operation) in deleted.iter().enumerate() {
            if !index.keys().is_valid(row) {
                rejects.push(
                    row,
                    None,
                    Some(&self.config.key.join(", ")),
                    "the key is null",
                );
                continue;
            }
            let Some(value) = order.value(row) else {
                let reason = order.problem(row);
                rejects.push(row, None, Some(&self.config.order_by), &reason);
                continue;
            };
            if let Err(reason) = operation {
                rejects.push(row, None, op_column, reason);
                continue;
            }
            let first = index
                .matches(index.keys(), row)
                .next()
                .expect("a valid key matches itself");
            let slot = &mut latest[first];
            if *slot == u32::MAX || order.value(*slot as usize).is_some_and(|held| value > held) {
                *slot = row as u32;
            }
        }
        let mut kept: Vec<u32> = latest.into_iter().filter(|&r| r != u32::MAX).collect();
        kept.sort_unstable();
        let out = self.output(&input, &order, &deleted, &kept)?;
        Ok(Outputs::new()
            .with("out", out)
            .with(REJECTED_PORT, rejects.finish()))
    }
}

impl CdcUpsert {
    /// Per row: `Ok(true)` for a delete, `Ok(false)` for an upsert, or why
    /// the operation is neither.
    fn deletes(&self, input: &Input<'_>) -> Result<Vec<Result<bool, String>>, PluginError> {
        let rows = input.num_rows();
        let Some(op) = &self.config.operation else {
            return Ok(vec![Ok(false); rows]);
        };
        let column = input.column_any(&op.column)?;
        let text = weir_sdk::text::byte_values(column).ok_or_else(|| {
            let message = format!(
                "operation column `{}` has type {}; it must be text",
                op.column,
                column.data_type()
            );
            PluginError::bad_input("in", message)
        })?;
        let is = |values: &[String], v: &[u8]| values.iter().any(|x| x.as_bytes() == v);
        Ok((0..rows)
            .map(|row| match text(row) {
                None => Err("the operation is null".to_string()),
                Some(v) if is(&op.delete, v) => Ok(true),
                Some(v) if is(&op.upsert, v) => Ok(false),
                Some(v) => Err(format!(
                    "unknown operation `{}` (upserts: {}; deletes: {})",
                    String::from_utf8_lossy(v),
                    op.upsert.join(", "),
                    op.delete.join(", ")
                )),
            })
            .collect())
    }

    /// The kept rows: input columns but the operation column, the ordering
    /// column as compared, then `_deleted`.
    fn output(
        &self,
        input: &Input<'_>,
        order: &OrderValues,
        deleted: &[Result<bool, String>],
        kept: &[u32],
    ) -> Result<RecordBatch, PluginError> {
        let indices = UInt32Array::from(kept.to_vec());
        let taken = take_record_batch(input.batch(), &indices)?;
        let op_column = self.config.operation.as_ref().map(|op| op.column.as_str());
        let (mut fields, mut columns) = (Vec::new(), Vec::new());
        for (field, column) in taken.schema().fields().iter().zip(taken.columns()) {
            if Some(field.name().as_str()) == op_column {
                continue;
            }
            if field.name() == DELETED_COLUMN {
                let message = format!("the input already has a `{DELETED_COLUMN}` column");
                return Err(PluginError::bad_input("in", message));
            }
            match (field.name() == &self.config.order_by)
                .then(|| order.as_timestamps(kept))
                .flatten()
            {
                Some(parsed) => {
                    fields.push(Field::new(field.name(), parsed.data_type().clone(), false));
                    columns.push(parsed);
                }
                None => {
                    fields.push(field.as_ref().clone());
                    columns.push(column.clone());
                }
            }
        }
        let marks: BooleanArray = kept
            .iter()
            .map(|&r| deleted[r as usize].clone().ok())
            .collect();
        fields.push(Field::new(DELETED_COLUMN, DataType::Boolean, false));
        columns.push(Arc::new(marks));
        Ok(RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns,
        )?)
    }
}

weir_sdk::export!(CdcUpsert);

#[cfg(test)]
mod tests;
