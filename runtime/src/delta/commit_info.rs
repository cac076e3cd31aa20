//! Weir's record in a Delta commit: every sink commit carries, under the
//! `commitInfo` key `weir`, the pipeline, sink, epoch, source range and the
//! plugins (name, version, content hash) that produced the rows, next to the
//! `txn` action `(app id, epoch)`. This module reads those back.

use super::DeltaError;
use deltalake::DeltaTable;
use futures::TryStreamExt;
use serde_json::Value;
use std::path::Path;

/// The `commitInfo` key holding Weir's record.
pub const KEY: &str = "weir";

/// How far back [`find_epoch`] looks in a table's history.
const HISTORY_DEPTH: usize = 200;

/// The last epoch `app_id` committed to the table, from its `txn` action.
pub async fn committed_epoch(
    path: &Path,
    table: &DeltaTable,
    app_id: &str,
) -> Result<Option<u64>, DeltaError> {
    let snapshot = table.snapshot().map_err(|source| DeltaError::Delta {
        table: path.to_path_buf(),
        operation: "read transactions",
        source: Box::new(source),
    })?;
    let version = snapshot
        .transaction_version(&table.log_store(), app_id)
        .await
        .map_err(|source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation: "read transactions",
            source: Box::new(source),
        })?;
    Ok(version.and_then(|v| u64::try_from(v).ok()))
}

/// Weir's record of `epoch` by `app_id`, looked up in recent history.
pub async fn find_epoch(
    path: &Path,
    table: &DeltaTable,
    app_id: &str,
    epoch: u64,
) -> Result<Option<Value>, DeltaError> {
    let infos: Vec<_> = table
        .history(Some(HISTORY_DEPTH))
        .try_collect()
        .await
        .map_err(|source| DeltaError::Delta {
            table: path.to_path_buf(),
            operation: "read history",
            source: Box::new(source),
        })?;
    Ok(infos.into_iter().find_map(|info| {
        let record = info.info.get(KEY)?;
        let matches =
            record.get("app_id")?.as_str()? == app_id && record.get("epoch")?.as_u64()? == epoch;
        matches.then(|| record.clone())
    }))
}
