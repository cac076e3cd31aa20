//! The Delta source: the rows that a table version added, one version at a
//! time so epochs keep version order.
//!
//! A plain append (a commit whose only data changes are `add` files, as
//! every append by Weir, Spark or delta-rs writes) is read straight from its
//! commit: the files in the order of their actions, rows in file order —
//! what Spark's Delta streaming source reads for such a version, and what
//! the Change Data Feed defines as its inserts. No table state is replayed
//! for it, so reading a version costs its files, not the table's history.
//! Any other version (updates, deletes, a schema or protocol change, column
//! mapping, deletion vectors), and an append whose files do not cast to the
//! table's columns by name (a struct that gained a field since), is read
//! through delta-rs's Change Data Feed provider, which owns those rules: its
//! inserts and update post-images. For a partitioned table that provider
//! orders files by partition through a hash map, so a version it reads may
//! come in another order on a replay (the same rows); so may a plain append
//! replayed after column mapping was turned on for the table.

use super::{DeltaError, changes, table};
use arrow::array::RecordBatch;
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext, col, lit};
use deltalake::delta_datafusion::DeltaCdfTableProvider;
use std::path::Path;
use std::sync::Arc;

/// The Change Data Feed's own columns, dropped from what the source emits.
const CHANGE_COLUMNS: [&str; 3] = ["_change_type", "_commit_version", "_commit_timestamp"];

/// The rows version `version` of the table added (inserted, or updated
/// post-images), in the table's current schema; `None` when the version is
/// not in the log. `table` is brought up to `version` only when the version
/// is not a plain append (see the module docs).
pub async fn read_added_rows(
    path: &Path,
    table: &mut DeltaTable,
    version: u64,
) -> Result<Option<Vec<RecordBatch>>, DeltaError> {
    let Some(lines) = changes::read_commit(path, table, version).await? else {
        return Ok(None);
    };
    let plain_append = lines.iter().all(|line| {
        line.cdc.is_none()
            && line.meta_data.is_none()
            && line.protocol.is_none()
            && line.remove.as_ref().is_none_or(|r| !r.data_change)
            && line
                .add
                .as_ref()
                .is_none_or(|a| a.deletion_vector.is_none())
    }) && !column_mapping(path, table)?;
    if !plain_append {
        return through_change_feed(path, table, version).await.map(Some);
    }
    let schema = table::arrow_schema(path, table)?;
    let root = table::table_url(path)?;
    let files = lines
        .iter()
        .filter_map(|l| l.add.as_ref())
        .filter(|add| add.data_change)
        .map(|add| {
            let file = changes::file_path(path, &root, version, add)?;
            Ok((file, add.partition_values.clone()))
        })
        .collect::<Result<Vec<_>, DeltaError>>()?;
    let table_dir = path.to_path_buf();
    // Decoding Parquet is CPU work: off the async workers.
    let read = tokio::task::spawn_blocking(move || {
        let mut batches = Vec::new();
        for (file, partition_values) in files {
            for batch in changes::read_file(&table_dir, version, &file)? {
                let columns = changes::table_columns(
                    &table_dir,
                    version,
                    &schema,
                    &batch,
                    &partition_values,
                )?;
                let batch = RecordBatch::try_new(schema.clone(), columns).map_err(|e| {
                    DeltaError::Schema {
                        table: table_dir.clone(),
                        reason: format!("version {version}: {e}"),
                    }
                })?;
                batches.push(batch);
            }
        }
        Ok(batches)
    })
    .await
    .map_err(|e| DeltaError::Location {
        table: path.to_path_buf(),
        reason: format!("version {version}: reading its files failed: {e}"),
    })?;
    match read {
        Ok(batches) => Ok(Some(batches)),
        // A file whose columns do not cast to the table's by name (a struct
        // that gained a field after the file was written): deltalake's
        // reader adapts such files.
        Err(mismatch @ DeltaError::Schema { .. }) => {
            tracing::debug!(table = %path.display(), version, %mismatch,
                "read through the Change Data Feed instead");
            // Should that fail too, the mismatch is the clearer error.
            match through_change_feed(path, table, version).await {
                Ok(batches) => Ok(Some(batches)),
                Err(_) => Err(mismatch),
            }
        }
        Err(other) => Err(other),
    }
}

/// Version `version` read through the Change Data Feed, `table` brought up
/// to it first.
async fn through_change_feed(
    path: &Path,
    table: &mut DeltaTable,
    version: u64,
) -> Result<Vec<RecordBatch>, DeltaError> {
    if table.version().is_none_or(|v| v < version) {
        table::refresh(path, table).await?;
    }
    read_through_change_feed(path, table.clone(), version).await
}

/// Whether the table (as `table` last read it) maps column names to
/// physical ones; its data files then need delta-rs to be read.
fn column_mapping(path: &Path, table: &DeltaTable) -> Result<bool, DeltaError> {
    Ok(table::property(path, table, "delta.columnMapping.mode")?.is_some_and(|m| m != "none"))
}

/// The rows version `version` added, read through delta-rs's Change Data
/// Feed provider. For an unpartitioned table they come in the order of the
/// version's files in its commit; for a partitioned one delta-rs groups the
/// files by partition value in a hash map, so the order of the groups can
/// differ between processes (a replay then holds the same rows, maybe in
/// another order).
async fn read_through_change_feed(
    path: &Path,
    table: DeltaTable,
    version: u64,
) -> Result<Vec<RecordBatch>, DeltaError> {
    let query_failed = |source| DeltaError::Query {
        table: path.to_path_buf(),
        operation: "read changes",
        source: Box::new(source),
    };
    let schema = table::arrow_schema(path, &table)?;
    let builder = table
        .scan_cdf()
        .with_starting_version(version)
        .with_ending_version(version);
    let provider = DeltaCdfTableProvider::try_new(builder).map_err(|source| DeltaError::Delta {
        table: path.to_path_buf(),
        operation: "read changes",
        source: Box::new(source),
    })?;
    let context = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    let columns: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| col(format!("\"{}\"", f.name().replace('"', "\"\""))))
        .collect();
    let frame = context
        .read_table(Arc::new(provider))
        .map_err(query_failed)?
        .filter(
            col("_change_type")
                .eq(lit("insert"))
                .or(col("_change_type").eq(lit("update_postimage"))),
        )
        .map_err(query_failed)?
        .select(columns)
        .map_err(query_failed)?;
    let batches = frame.collect().await.map_err(query_failed)?;
    debug_assert!(
        batches
            .iter()
            .all(|b| CHANGE_COLUMNS.iter().all(|c| b.column_by_name(c).is_none()))
    );
    Ok(batches)
}

/// The table's latest version, with `table` brought up to it.
pub async fn latest_version(path: &Path, table: &mut DeltaTable) -> Result<u64, DeltaError> {
    table::refresh(path, table).await?;
    Ok(table.version().unwrap_or(0))
}

/// The table's latest version from a listing of its log after version
/// `from` (one that exists), without replaying anything into `table`.
pub async fn latest_listed(path: &Path, table: &DeltaTable, from: u64) -> Result<u64, DeltaError> {
    table
        .log_store()
        .get_latest_version(from)
        .await
        .map_err(|source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation: "list the log",
            source: Box::new(source),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray, StructArray};
    use arrow::datatypes::{DataType, Field, Fields, Schema};
    use deltalake::operations::write::SchemaMode;
    use deltalake::protocol::SaveMode;

    fn batch(ids: &[i64], with_b: bool) -> RecordBatch {
        let a: ArrayRef = Arc::new(StringArray::from(vec!["x"; ids.len()]));
        let mut fields = vec![Field::new("a", DataType::Utf8, true)];
        let mut children = vec![a];
        if with_b {
            fields.push(Field::new("b", DataType::Utf8, true));
            children.push(Arc::new(StringArray::from(vec!["y"; ids.len()])));
        }
        let nested = StructArray::new(Fields::from(fields), children, None);
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("s", nested.data_type().clone(), true),
            ])),
            vec![Arc::new(Int64Array::from(ids.to_vec())), Arc::new(nested)],
        )
        .unwrap()
    }

    async fn append(table: DeltaTable, rows: RecordBatch) -> DeltaTable {
        table
            .write(vec![rows])
            .with_save_mode(SaveMode::Append)
            .with_schema_mode(SchemaMode::Merge)
            .await
            .unwrap()
    }

    /// An append whose file lacks a struct field the table gained later is
    /// read through the Change Data Feed, the field null (cast by name alone,
    /// it fails); appends that fit are read from their commits, in order.
    #[tokio::test(flavor = "multi_thread")]
    async fn appends_are_read_from_their_commit_and_an_older_struct_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let schema = table::to_delta_schema(&batch(&[], false).schema()).unwrap();
        let properties = [("delta.enableChangeDataFeed".to_string(), "true".to_string())]
            .into_iter()
            .collect();
        let created = table::create(&path, &schema, &[], &properties, Vec::new())
            .await
            .unwrap();
        let table = append(created, batch(&[1, 2], false)).await;
        let table = append(table, batch(&[3], false)).await;
        // Version 3 adds `b` (a metaData action: read through the feed);
        // version 4 is a plain append of the wider struct.
        let table = append(table, batch(&[4], true)).await;
        drop(append(table, batch(&[5, 6], true)).await);

        let mut reader = table::open_existing(&path).await.unwrap();
        let ids = |batches: &[RecordBatch]| -> Vec<i64> {
            batches
                .iter()
                .flat_map(|b| {
                    let column = b
                        .column_by_name("id")
                        .unwrap()
                        .as_primitive::<arrow::datatypes::Int64Type>();
                    column.values().to_vec()
                })
                .collect()
        };
        // Version 1, before the struct gained `b`: the fallback.
        let first = read_added_rows(&path, &mut reader, 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ids(&first), vec![1, 2]);
        let s = first[0].column_by_name("s").unwrap().as_struct();
        assert!(
            s.column_by_name("b").unwrap().is_null(0),
            "`b` read as null"
        );
        let third = read_added_rows(&path, &mut reader, 3)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ids(&third), vec![4]);
        // A plain append that fits the table: read from its commit.
        let fourth = read_added_rows(&path, &mut reader, 4)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ids(&fourth), vec![5, 6]);
        let s = fourth[0].column_by_name("s").unwrap().as_struct();
        assert_eq!(
            s.column_by_name("b").unwrap().as_string::<i32>().value(1),
            "y"
        );
        // Not written yet.
        assert!(
            read_added_rows(&path, &mut reader, 5)
                .await
                .unwrap()
                .is_none()
        );
    }
}
