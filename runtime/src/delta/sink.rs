//! Append and merge sinks. Each epoch is one Delta commit per sink holding the
//! rows, the `txn` action `(app id, epoch)` and Weir's `commitInfo` record, so
//! the data and the position it came from are committed atomically. An epoch
//! with no rows still commits (an empty write), so every sink's `txn` version
//! says exactly which epochs it holds.

use super::shared::{self, SharedTable};
use super::{DeltaError, commit_info, merge_update, table};
use crate::connector::Sink;
use crate::pipeline::spec::{MergeSpec, SinkMode};
use crate::pipeline::{PortRef, Upsert};
use crate::run::RunError;
use crate::run::epoch::EpochPlan;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::DataFrame;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use tokio::sync::MutexGuard;

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
    /// Upsert rules, for upsert sinks.
    pub upsert: Option<Upsert>,
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
        if let (SinkMode::Upsert, Some(upsert)) = (self.mode, &self.upsert) {
            return super::upsert::write(self, upsert, table, batches, epoch, properties).await;
        }
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
            _ => self.append(table, batches, properties).await,
        }
    }

    /// Appends `batches` (of the table's schema) in one commit.
    pub(super) async fn append(
        &self,
        table: DeltaTable,
        batches: Vec<RecordBatch>,
        properties: CommitProperties,
    ) -> Result<DeltaTable, DeltaError> {
        table
            .write(batches)
            .with_session_state(super::session::state())
            .with_save_mode(SaveMode::Append)
            .with_writer_properties(table::writer_properties())
            .with_commit_properties(properties)
            .await
            .map_err(|source| self.failed("append", source))
    }

    async fn merge(
        &self,
        table: DeltaTable,
        batches: Vec<RecordBatch>,
        merge: &MergeSpec,
        properties: CommitProperties,
    ) -> Result<DeltaTable, DeltaError> {
        check_unique_keys(&self.path, &batches, &merge.on)?;
        let source = merge_source(&self.path, batches.clone(), "merge")?;
        let columns: Vec<String> = batches[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let predicate = equal_keys(&merge.on, "t", "s");
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
        let when = merge
            .when
            .as_deref()
            .map(|sql| {
                merge_update::plan_predicate(sql, &schema).map_err(|reason| DeltaError::Schema {
                    table: self.path.clone(),
                    reason: format!("merge `when` = `{sql}`: {reason}"),
                })
            })
            .transpose()?;
        let (table, _metrics) = table
            .merge(source, predicate)
            .with_session_state(super::session::state())
            .with_source_alias("s")
            .with_target_alias("t")
            .with_writer_properties(table::writer_properties())
            .with_commit_properties(properties)
            .when_matched_update(|mut update| {
                if let Some(when) = when {
                    update = update.predicate(when);
                }
                for (column, expression) in updates {
                    update = update.update(target_column(&column), expression);
                }
                update
            })
            .map_err(|source| self.failed("merge", source))?
            .when_not_matched_insert(|mut insert| {
                for column in &columns {
                    insert = insert.set(target_column(column), format!("s.{}", quote(column)));
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

/// A Delta table as an epoch [`Sink`]: each epoch is one commit holding its
/// rows, the `txn` action `(weir:PIPELINE:SINK, epoch)` and Weir's record;
/// the last epoch it holds is the `txn` version (kept across `_delta_log`
/// checkpoints by the Delta protocol), the plan of an epoch is in that
/// epoch's commit record.
pub struct DeltaSink {
    pipeline: String,
    name: String,
    from: Option<PortRef>,
    target: SinkTarget,
    /// The table, shared with every other sink of the process writing it.
    table: SharedTable,
}

impl DeltaSink {
    /// Opens the existing table of sink `name` (tables are created, and the
    /// dead-letter table brought up to date, before any pipeline starts; see
    /// [`super::provision`]).
    pub async fn open(
        pipeline: &str,
        name: &str,
        from: Option<PortRef>,
        target: SinkTarget,
    ) -> Result<Self, DeltaError> {
        let table = shared::open(&target.path).await?;
        Ok(DeltaSink {
            pipeline: pipeline.to_string(),
            name: name.to_string(),
            from,
            target,
            table,
        })
    }

    /// The shared table, held until the guard drops; reopened when a failed
    /// write left none.
    async fn table(&self) -> Result<MutexGuard<'_, Option<DeltaTable>>, RunError> {
        let mut slot = self.table.lock().await;
        if slot.is_none() {
            *slot = Some(
                table::open_existing(&self.target.path)
                    .await
                    .map_err(self.failed())?,
            );
        }
        Ok(slot)
    }

    fn failed(&self) -> impl Fn(DeltaError) -> RunError + '_ {
        |source| RunError::Delta {
            pipeline: self.pipeline.clone(),
            source,
        }
    }
}

#[async_trait::async_trait]
impl Sink for DeltaSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn from(&self) -> Option<&PortRef> {
        self.from.as_ref()
    }

    async fn last_epoch(&mut self) -> Result<Option<u64>, RunError> {
        let slot = self.table().await?;
        let table = slot.as_ref().expect("opened by `table`");
        commit_info::committed_epoch(&self.target.path, table, &self.target.app_id)
            .await
            .map_err(self.failed())
    }

    async fn recorded_plan(&mut self, epoch: u64) -> Result<Option<EpochPlan>, RunError> {
        let slot = self.table().await?;
        let table = slot.as_ref().expect("opened by `table`");
        let record = commit_info::find_epoch(&self.target.path, table, &self.target.app_id, epoch)
            .await
            .map_err(self.failed())?;
        Ok(record.and_then(|r| serde_json::from_value::<EpochPlan>(r.get("plan")?.clone()).ok()))
    }

    async fn commit(
        &mut self,
        epoch: u64,
        batches: Vec<RecordBatch>,
        record: Value,
    ) -> Result<(), RunError> {
        let mut slot = self.table().await?;
        let table = slot.take().expect("opened by `table`");
        // On failure the slot stays empty: the next user reopens the table.
        let written = self.target.write_epoch(table, batches, epoch, record).await;
        *slot = Some(written.map_err(self.failed())?);
        Ok(())
    }
}

/// A merge target column by its exact name: a name with a dot stays one
/// column (deltalake reads a plain string as `relation.column`).
pub(super) fn target_column(name: &str) -> deltalake::datafusion::common::Column {
    deltalake::datafusion::common::Column::new_unqualified(name)
}

/// `left.k1 = right.k1 AND ...`: the rows of aliases `left` and `right`
/// whose key columns are equal.
pub(super) fn equal_keys(key: &[String], left: &str, right: &str) -> String {
    key.iter()
        .map(|k| format!("{left}.{} = {right}.{}", quote(k), quote(k)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// A merge source (the `s` side) over `batches`.
pub(super) fn merge_source(
    path: &Path,
    batches: Vec<RecordBatch>,
    operation: &'static str,
) -> Result<DataFrame, DeltaError> {
    super::session::context()
        .read_batches(batches)
        .map_err(|source| DeltaError::Query {
            table: path.to_path_buf(),
            operation,
            source: Box::new(source),
        })
}

/// Quotes a column name for a SQL expression.
pub(super) fn quote(column: &str) -> String {
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
                cast_exact(&column, field.data_type()).map_err(|e| {
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

/// Casts `column` to `to` only if every value survives unchanged: a value
/// out of range (an unsigned 64-bit value past `i64::MAX`, Delta having no
/// unsigned types) or a nanosecond timestamp with sub-microsecond digits
/// (Delta timestamps are microseconds) is an error naming the row, never a
/// null or a truncated value.
fn cast_exact(column: &ArrayRef, to: &DataType) -> Result<ArrayRef, String> {
    use arrow::datatypes::{TimeUnit, TimestampNanosecondType};
    if let (DataType::Timestamp(TimeUnit::Nanosecond, _), DataType::Timestamp(unit, _)) =
        (column.data_type(), to)
        && *unit != TimeUnit::Nanosecond
    {
        let nanos = column.as_primitive::<TimestampNanosecondType>();
        let per = match unit {
            TimeUnit::Microsecond => 1_000,
            TimeUnit::Millisecond => 1_000_000,
            _ => 1_000_000_000,
        };
        if let Some(row) =
            (0..nanos.len()).find(|&r| nanos.is_valid(r) && nanos.value(r) % per != 0)
        {
            return Err(format!(
                "row {row} holds {} ns, which a {unit:?} timestamp cannot hold exactly",
                nanos.value(row)
            ));
        }
    }
    let options = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    arrow::compute::cast_with_options(column, to, &options).map_err(|e| e.to_string())
}

/// A merge source must hold each key once, or the merge result would depend on row order.
pub(super) fn check_unique_keys(
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
                        "merge key ({}) = ({}) appears more than once in one epoch; the stage feeding a merge or upsert sink must emit one row per key (cdc-upsert does, for change events)",
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
    use arrow::datatypes::{Field, Schema};
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

    /// The `total` of the table's one row.
    async fn stored_total(path: &Path) -> i64 {
        let rows = crate::delta::query::query(path, "SELECT total FROM t")
            .await
            .unwrap();
        rows[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
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
            upsert: None,
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
        let total = stored_total(&path).await;
        assert_eq!(total, 9_223_372_036_854_775_000);
        // A sum that fits still merges exactly.
        let fits = sink
            .write_epoch(reopened, vec![totals("books", 807)], 2, record)
            .await
            .unwrap();
        assert_eq!(fits.version(), version.map(|v| v + 1));
        let total = stored_total(&path).await;
        assert_eq!(total, i64::MAX);
    }

    /// Recovery reads the last epoch from the `txn` action; it must survive
    /// the `_delta_log` checkpoints written every `delta.checkpointInterval`
    /// commits (set explicitly on the tables Weir creates).
    #[tokio::test(flavor = "multi_thread")]
    async fn the_last_epoch_survives_delta_log_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silver");
        let schema = table::to_delta_schema(&totals("x", 0).schema()).unwrap();
        let properties = crate::delta::provision::DEFAULT_PROPERTIES
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        table::create(&path, &schema, &[], &properties, Vec::new())
            .await
            .unwrap();
        let target = SinkTarget {
            path: path.clone(),
            app_id: "weir:silver:silver".into(),
            mode: SinkMode::Append,
            merge: None,
            upsert: None,
        };
        let mut sink = DeltaSink::open("silver", "silver", None, target.clone())
            .await
            .unwrap();
        for epoch in 1..=25 {
            sink.commit(
                epoch,
                vec![totals("books", epoch as i64)],
                serde_json::json!({}),
            )
            .await
            .unwrap();
        }
        let checkpoints = std::fs::read_dir(path.join("_delta_log"))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".checkpoint."))
            .count();
        assert!(
            checkpoints >= 2,
            "a checkpoint every 10 commits, found {checkpoints}"
        );
        drop(sink);
        let mut reopened = DeltaSink::open("silver", "silver", None, target)
            .await
            .unwrap();
        assert_eq!(reopened.last_epoch().await.unwrap(), Some(25));
    }

    /// Appends write Weir's Parquet settings: a column with few distinct
    /// values stays dictionary-encoded; a near-unique one stops interning at
    /// [`table::DICTIONARY_PAGE_LIMIT`] and continues in plain pages; values
    /// read back unchanged.
    #[tokio::test(flavor = "multi_thread")]
    async fn appended_files_keep_dictionaries_only_for_columns_that_repeat() {
        use parquet::basic::{Encoding, PageType};
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bronze");
        // 20,000 ids of 38 bytes: more than Weir's dictionary limit, less
        // than Parquet's default 1 MiB one.
        let rows = 20_000;
        let ids: Vec<String> = (0..rows).map(|i| format!("event-{i:032}")).collect();
        let categories: Vec<&str> = (0..rows).map(|i| ["a", "b", "c"][i % 3]).collect();
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("event_id", DataType::Utf8, false),
                Field::new("category", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(StringArray::from(ids.clone())),
                Arc::new(StringArray::from(categories)),
            ],
        )
        .unwrap();
        let schema = table::to_delta_schema(&batch.schema()).unwrap();
        let created = table::create(&path, &schema, &[], &BTreeMap::new(), Vec::new())
            .await
            .unwrap();
        let target = SinkTarget {
            path: path.clone(),
            app_id: "weir:bronze:bronze".into(),
            mode: SinkMode::Append,
            merge: None,
            upsert: None,
        };
        target
            .write_epoch(created, vec![batch], 1, serde_json::json!({}))
            .await
            .unwrap();
        let file = std::fs::read_dir(&path)
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.path().extension().is_some_and(|x| x == "parquet"))
            .unwrap()
            .path();
        let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
        let metadata = reader.metadata();
        assert!(
            metadata
                .file_metadata()
                .created_by()
                .is_some_and(|c| c.starts_with("weir ")),
            "{:?}",
            metadata.file_metadata().created_by()
        );
        let group = metadata.row_group(0);
        // The encodings of a column's data pages (the dictionary page itself
        // is always plain).
        let data_encodings = |name: &str| {
            let column = (0..group.num_columns())
                .find(|&c| group.column(c).column_path().string() == name)
                .unwrap();
            let pages = reader
                .get_row_group(0)
                .unwrap()
                .get_column_page_reader(column)
                .unwrap();
            let mut encodings = pages
                .map(|page| page.unwrap())
                .filter(|page| page.page_type() != PageType::DICTIONARY_PAGE)
                .map(|page| page.encoding())
                .collect::<Vec<_>>();
            encodings.dedup();
            encodings
        };
        let dictionary =
            |e: &Encoding| matches!(e, Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY);
        let categories = data_encodings("category");
        assert!(categories.iter().all(dictionary), "{categories:?}");
        let id_encodings = data_encodings("event_id");
        assert!(
            id_encodings.iter().any(dictionary) && id_encodings.contains(&Encoding::PLAIN),
            "near-unique ids start with a dictionary, then fall back to plain pages: {id_encodings:?}"
        );
        let stored = crate::delta::query::query(&path, "SELECT event_id FROM t ORDER BY event_id")
            .await
            .unwrap();
        let stored: Vec<String> = stored
            .iter()
            .flat_map(|b| {
                arrow::compute::cast(b.column(0), &DataType::Utf8)
                    .unwrap()
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap().to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(stored, ids);
    }

    /// A dead-letter table written before `source_kind`/`source_position`
    /// existed is given those columns (by provisioning, before pipelines
    /// start), then appended to.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_dead_letter_table_of_the_first_version_keeps_being_appended_to() {
        use crate::delta::dead_letters::{self, DeadLetter, Origin};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead_letters");
        let legacy = dead_letters::expected_schema(|_| false);
        assert_eq!(
            legacy.fields().len(),
            dead_letters::schema().fields().len() - 2
        );
        let schema = table::to_delta_schema(&legacy).unwrap();
        table::create(
            &path,
            &schema,
            &["pipeline".to_string()],
            &BTreeMap::new(),
            Vec::new(),
        )
        .await
        .unwrap();
        let target = SinkTarget {
            path: path.clone(),
            app_id: "weir:bronze:dead_letters".into(),
            mode: SinkMode::Append,
            merge: None,
            upsert: None,
        };
        let full = dead_letters::schema();
        let evolved = table::add_missing_nullable_columns(
            &path,
            table::open_existing(&path).await.unwrap(),
            &full,
        )
        .await
        .unwrap();
        assert_eq!(evolved.version(), Some(1), "one metadata-only commit");
        let mut sink = DeltaSink::open("bronze", "dead_letters", None, target)
            .await
            .unwrap();
        let letter = DeadLetter {
            stage: "parse".into(),
            plugin: None,
            reason: "not JSON".into(),
            field: None,
            raw: Some(b"{".to_vec()),
            origin: Origin::of("kafka")
                .text("topic", "orders")
                .int("partition", 0)
                .int("offset", 7),
        };
        sink.commit(
            1,
            vec![dead_letters::to_batch("bronze", 1, &[letter])],
            serde_json::json!({}),
        )
        .await
        .unwrap();
        let rows = crate::delta::query::query(
            &path,
            "SELECT source_offset, source_kind, source_position FROM t",
        )
        .await
        .unwrap();
        let shown = arrow::util::pretty::pretty_format_batches(&rows)
            .unwrap()
            .to_string();
        assert!(shown.contains("| 7             | kafka       |"), "{shown}");
        assert!(
            shown.contains(r#"{"offset":7,"partition":0,"topic":"orders"}"#),
            "{shown}"
        );
    }

    /// Regression (issue 10 review): values Delta's types cannot hold are an
    /// error naming the column and row, never nulls or truncated values.
    #[test]
    fn regression_issue_10_conform_never_changes_a_value() {
        use arrow::array::{TimestampNanosecondArray, UInt64Array};
        use arrow::datatypes::TimeUnit;
        let table = Path::new("/t/x");
        let target = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = |n: u64, at: i64| {
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("n", DataType::UInt64, true),
                    Field::new(
                        "at",
                        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                        true,
                    ),
                ])),
                vec![
                    Arc::new(UInt64Array::from(vec![n])),
                    Arc::new(TimestampNanosecondArray::from(vec![at]).with_timezone("UTC")),
                ],
            )
            .unwrap()
        };
        let fits = conform(table, &batch(255, 1_000), &target).unwrap();
        assert_eq!(
            fits.column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(0),
            255
        );
        let error = conform(table, &batch(u64::MAX, 1_000), &target)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("column `n` (UInt64) cannot be written as Int64"),
            "{error}"
        );
        let error = conform(table, &batch(1, 1_234_567_891), &target)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("column `at`") && error.contains("row 0 holds 1234567891 ns"),
            "{error}"
        );
    }
}
