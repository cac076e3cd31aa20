//! The Delta source: the rows that a table version added, read through the
//! table's Change Data Feed (inserts and update post-images), one version at
//! a time so epochs keep version order (see [`read_added_rows`] for the order
//! within a version).

use super::{DeltaError, table};
use arrow::array::RecordBatch;
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext, col, lit};
use deltalake::delta_datafusion::DeltaCdfTableProvider;
use std::path::Path;
use std::sync::Arc;

/// The Change Data Feed's own columns, dropped from what the source emits.
const CHANGE_COLUMNS: [&str; 3] = ["_change_type", "_commit_version", "_commit_timestamp"];

/// The rows version `version` of the table added (inserted, or updated
/// post-images). For an unpartitioned table they come in the order of the
/// version's files in its commit, so a second read returns the same rows in
/// the same order; for a partitioned table delta-rs groups the files by
/// partition value in a hash map, so the order of the groups can differ
/// between processes (a replay then holds the same rows, maybe in another
/// order). The CDF source of issue 11 reads versions itself and closes this.
pub async fn read_added_rows(
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

/// The table's latest version.
pub async fn latest_version(path: &Path, table: &mut DeltaTable) -> Result<u64, DeltaError> {
    table
        .update_state()
        .await
        .map_err(|source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation: "refresh",
            source: Box::new(source),
        })?;
    Ok(table.version().unwrap_or(0))
}
