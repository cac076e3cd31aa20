//! Append and merge sinks. Each epoch is one Delta commit per sink holding the
//! rows, the `txn` action `(app id, epoch)` and Weir's `commitInfo` record, so
//! the data and the position it came from are committed atomically. An epoch
//! with no rows still commits (an empty write), so every sink's `txn` version
//! says exactly which epochs it holds.

use super::{DeltaError, commit_info, merge_update, table};
use crate::pipeline::spec::{MergeSpec, SinkMode};
use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::SessionContext;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Where and how one sink writes.
#[derive(Debug, Clone)]
pub struct SinkTarget {
    /// The table directory.
    pub path: PathBuf,
    /// `weir:PIPELINE:SINK`, the application id of its `txn` actions.
    pub app_id: String,
    /// Append or merge.
    pub mode: SinkMode,
    /// Merge rules, for merge sinks.
    pub merge: Option<MergeSpec>,
}

impl SinkTarget {
    /// Writes `batches` as epoch `epoch` and returns the table at its new version.
    /// `record` is Weir's commitInfo record (see [`commit_info`]).
    pub async fn write_epoch(
        &self,
        table: DeltaTable,
        batches: Vec<RecordBatch>,
        epoch: u64,
        mut record: Value,
    ) -> Result<DeltaTable, DeltaError> {
        if let Value::Object(map) = &mut record {
            map.insert("app_id".into(), Value::from(self.app_id.clone()));
            map.insert("epoch".into(), Value::from(epoch));
        }
        let epoch_version = i64::try_from(epoch).unwrap_or(i64::MAX);
        let properties = CommitProperties::default()
            .with_application_transaction(Transaction::new(&self.app_id, epoch_version))
            .with_metadata([(commit_info::KEY.to_string(), record)]);
        let target_schema = table::arrow_schema(&self.path, &table)?;
        let mut batches = batches
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| conform(&self.path, b, &target_schema))
            .collect::<Result<Vec<_>, _>>()?;
        let empty = batches.is_empty();
        if empty {
            // An empty write still commits, carrying the epoch's txn action.
            batches.push(RecordBatch::new_empty(target_schema.clone()));
        }
        match (self.mode, &self.merge) {
            (SinkMode::Merge, Some(merge)) if !empty => {
                self.merge(table, batches, merge, properties).await
            }
            _ => table
                .write(batches)
                .with_save_mode(SaveMode::Append)
                .with_commit_properties(properties)
                .await
                .map_err(|source| self.failed("append", source)),
        }
    }

    async fn merge(
        &self,
        table: DeltaTable,
        batches: Vec<RecordBatch>,
        merge: &MergeSpec,
        properties: CommitProperties,
    ) -> Result<DeltaTable, DeltaError> {
        check_unique_keys(&self.path, &batches, &merge.on)?;
        let context = SessionContext::new();
        let source = context
            .read_batches(batches.clone())
            .map_err(|source| DeltaError::Query {
                table: self.path.clone(),
                operation: "merge",
                source: Box::new(source),
            })?;
        let columns: Vec<String> = batches[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let predicate = merge
            .on
            .iter()
            .map(|k| format!("t.{} = s.{}", quote(k), quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let written: Vec<(String, String)> = if merge.update.is_empty() {
            columns
                .iter()
                .filter(|c| !merge.on.contains(c))
                .map(|c| (c.clone(), format!("s.{}", quote(c))))
                .collect()
        } else {
            merge
                .update
                .iter()
                .map(|(c, e)| (c.clone(), e.clone()))
                .collect()
        };
        let schema = batches[0].schema();
        let updates = written
            .into_iter()
            .map(|(column, sql)| {
                merge_update::plan(&sql, &column, &schema, &merge.on)
                    .map(|expr| (column.clone(), expr))
                    .map_err(|reason| DeltaError::Schema {
                        table: self.path.clone(),
                        reason: format!("merge update of column `{column}` = `{sql}`: {reason}"),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let when = merge.when.clone();
        let (table, _metrics) = table
            .merge(source, predicate)
            .with_source_alias("s")
            .with_target_alias("t")
            .with_commit_properties(properties)
            .when_matched_update(|mut update| {
                if let Some(when) = when {
                    update = update.predicate(when);
                }
                for (column, expression) in updates {
                    update = update.update(column, expression);
                }
                update
            })
            .map_err(|source| self.failed("merge", source))?
            .when_not_matched_insert(|mut insert| {
                for column in &columns {
                    insert = insert.set(column.clone(), format!("s.{}", quote(column)));
                }
                insert
            })
            .map_err(|source| self.failed("merge", source))?
            .await
            .map_err(|source| self.failed("merge", source))?;
        Ok(table)
    }

    fn failed(&self, operation: &'static str, source: deltalake::DeltaTableError) -> DeltaError {
        DeltaError::Delta {
            table: self.path.clone(),
            operation,
            source: Box::new(source),
        }
    }
}

/// Quotes a column name for a SQL expression.
fn quote(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}

/// Reorders and casts a batch's columns (by name) to the table's Arrow types.
pub fn conform(
    path: &Path,
    batch: &RecordBatch,
    target: &SchemaRef,
) -> Result<RecordBatch, DeltaError> {
    let schema_error = |reason: String| DeltaError::Schema {
        table: path.to_path_buf(),
        reason,
    };
    let columns = target
        .fields()
        .iter()
        .map(|field| {
            let column = match batch.column_by_name(field.name()) {
                Some(column) => column.clone(),
                None if field.is_nullable() => {
                    arrow::array::new_null_array(field.data_type(), batch.num_rows())
                }
                None => {
                    return Err(schema_error(format!(
                        "required column `{}` is missing",
                        field.name()
                    )));
                }
            };
            if column.data_type() == field.data_type() {
                Ok(column)
            } else {
                cast(&column, field.data_type()).map_err(|e| {
                    schema_error(format!(
                        "column `{}` ({}) cannot be written as {}: {e}",
                        field.name(),
                        column.data_type(),
                        field.data_type()
                    ))
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(target.clone(), columns).map_err(|e| schema_error(e.to_string()))
}

/// A merge source must hold each key once, or the merge result would depend on row order.
fn check_unique_keys(
    path: &Path,
    batches: &[RecordBatch],
    keys: &[String],
) -> Result<(), DeltaError> {
    let mut seen = HashSet::new();
    let formatter_options = arrow::util::display::FormatOptions::default();
    for batch in batches {
        let formatters = keys
            .iter()
            .map(|k| {
                let column = batch.column_by_name(k).ok_or_else(|| DeltaError::Schema {
                    table: path.to_path_buf(),
                    reason: format!("merge key column `{k}` is missing from the stream"),
                })?;
                arrow::util::display::ArrayFormatter::try_new(column.as_ref(), &formatter_options)
                    .map_err(|e| DeltaError::Schema {
                        table: path.to_path_buf(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            let key: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            if !seen.insert(key.clone()) {
                return Err(DeltaError::Schema {
                    table: path.to_path_buf(),
                    reason: format!(
                        "merge key ({}) = ({}) appears more than once in one epoch; the stage feeding a merge sink must emit one row per key",
                        keys.join(", "),
                        key.join(", ")
                    ),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn totals(category: &str, total: i64) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("category", DataType::Utf8, false),
                Field::new("total", DataType::Int64, true),
            ])),
            vec![
                Arc::new(StringArray::from(vec![category])),
                Arc::new(Int64Array::from(vec![total])),
            ],
        )
        .unwrap()
    }

    /// A gold merge `t.total + s.total` past `i64::MAX` fails the epoch,
    /// naming the column and key, and leaves the table as it was.
    #[tokio::test(flavor = "multi_thread")]
    async fn regression_issue_10_gold_merge_sum_overflow_fails_the_epoch_and_keeps_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gold");
        let schema = table::to_delta_schema(&totals("x", 0).schema()).unwrap();
        let created = table::create(&path, &schema, &[], &BTreeMap::new(), Vec::new())
            .await
            .unwrap();
        let sink = SinkTarget {
            path: path.clone(),
            app_id: "weir:gold:totals".into(),
            mode: SinkMode::Merge,
            merge: Some(MergeSpec {
                on: vec!["category".into()],
                when: None,
                update: BTreeMap::from([("total".into(), "t.total + s.total".into())]),
            }),
        };
        let record = serde_json::json!({});
        let table = sink
            .write_epoch(
                created,
                vec![totals("books", 9_223_372_036_854_775_000)],
                1,
                record.clone(),
            )
            .await
            .unwrap();
        let version = table.version();
        let table = sink
            .write_epoch(table, vec![totals("books", 1_000)], 2, record.clone())
            .await
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(table.contains(merge_update::OVERFLOW), "{table}");
        assert!(table.contains("column `total`"), "{table}");
        assert!(table.contains("category = books"), "{table}");
        let reopened = table::open_existing(&path).await.unwrap();
        assert_eq!(reopened.version(), version);
        let rows = crate::delta::query::query(&path, "SELECT total FROM t")
            .await
            .unwrap();
        let total = rows[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(total, 9_223_372_036_854_775_000);
        // A sum that fits still merges exactly.
        let fits = sink
            .write_epoch(reopened, vec![totals("books", 807)], 2, record)
            .await
            .unwrap();
        assert_eq!(fits.version(), version.map(|v| v + 1));
        let rows = crate::delta::query::query(&path, "SELECT total FROM t")
            .await
            .unwrap();
        let total = rows[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(total, i64::MAX);
    }
}
