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
//! mapping, deletion vectors) is read through delta-rs's Change Data Feed
//! provider, which owns those rules: its inserts and update post-images.

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
        if table.version().is_none_or(|v| v < version) {
            refresh(path, table).await?;
        }
        return read_through_change_feed(path, table.clone(), version)
            .await
            .map(Some);
    }
    let schema = table::arrow_schema(path, table)?;
    let root = table::table_url(path)?;
    let mut batches = Vec::new();
    for add in lines.iter().filter_map(|l| l.add.as_ref()) {
        if !add.data_change {
            continue;
        }
        let file = changes::file_path(path, &root, version, add)?;
        for batch in changes::read_file(path, version, &file)? {
            let columns =
                changes::table_columns(path, version, &schema, &batch, &add.partition_values)?;
            let batch =
                RecordBatch::try_new(schema.clone(), columns).map_err(|e| DeltaError::Schema {
                    table: path.to_path_buf(),
                    reason: format!("version {version}: {e}"),
                })?;
            batches.push(batch);
        }
    }
    Ok(Some(batches))
}

/// Whether the table (as `table` last read it) maps column names to
/// physical ones; its data files then need delta-rs to be read.
fn column_mapping(path: &Path, table: &DeltaTable) -> Result<bool, DeltaError> {
    let snapshot = table.snapshot().map_err(|source| DeltaError::Delta {
        table: path.to_path_buf(),
        operation: "read properties",
        source: Box::new(source),
    })?;
    Ok(snapshot
        .metadata()
        .configuration()
        .get("delta.columnMapping.mode")
        .is_some_and(|mode| mode != "none"))
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
    refresh(path, table).await?;
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

async fn refresh(path: &Path, table: &mut DeltaTable) -> Result<(), DeltaError> {
    table
        .update_state()
        .await
        .map_err(|source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation: "refresh",
            source: Box::new(source),
        })
}
