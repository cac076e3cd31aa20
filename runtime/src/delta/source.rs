//! The Delta source: the rows that a range of table versions added, read
//! through the table's Change Data Feed (inserts and update post-images), in
//! a deterministic order (one partition, version order) so a replayed epoch
//! sees exactly the rows it saw the first time.

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
/// post-images), in the order of the version's files in its commit, so a
/// second read returns the same rows in the same order.
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
