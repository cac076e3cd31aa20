//! One open handle per Delta table in the process, shared by every sink that
//! writes the table: the dead-letter table all pipelines of a file write,
//! two sinks of one pipeline on one table. Their commits go one at a time
//! through the handle, each starting from the version the previous one left.
//!
//! With a handle per sink, each commit would start from that sink's own last
//! version: deltalake then finds the table moved on, checks every commit in
//! between for conflicts and replays them into the handle — work that grows
//! with the number of writers — and a merge or upsert, which reads the
//! table, fails outright on a stale handle (`ConcurrentAppend`). Writers in
//! other processes are still caught by deltalake's conflict check at commit
//! time (Delta protocol, optimistic concurrency).

use super::{DeltaError, table};
use deltalake::DeltaTable;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, Weak};

/// A table's slot; `None` after a write failed, until the next user reopens
/// the table.
type Slot = tokio::sync::Mutex<Option<DeltaTable>>;

/// A table's shared slot.
pub type SharedTable = Arc<Slot>;

/// The open tables, by canonical directory; an entry lives as long as some
/// sink holds its handle.
static OPEN: LazyLock<Mutex<HashMap<PathBuf, Weak<Slot>>>> = LazyLock::new(Mutex::default);

/// The handle of the existing table at `path`, opened by the first caller
/// and shared with every later one while any of them holds it.
/// A handle already open is brought up to the table's latest version first
/// (incrementally): the table may have changed since its last commit through
/// it (columns added when a deployment's sinks were prepared, a writer in
/// another process).
pub async fn open(path: &Path) -> Result<SharedTable, DeltaError> {
    let key = std::fs::canonicalize(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DeltaError::Missing {
            table: path.to_path_buf(),
        },
        _ => DeltaError::Location {
            table: path.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    if let Some(open) = lookup(&key) {
        let mut slot = open.lock().await;
        if let Some(table) = slot.as_mut() {
            table::refresh(path, table).await?;
        }
        drop(slot);
        return Ok(open);
    }
    let opened = table::open_existing(path).await?;
    let mut open = OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // Another sink may have opened it while this one read the log.
    if let Some(shared) = open.get(&key).and_then(Weak::upgrade) {
        return Ok(shared);
    }
    open.retain(|_, handle| handle.strong_count() > 0);
    let shared: SharedTable = Arc::new(tokio::sync::Mutex::new(Some(opened)));
    open.insert(key, Arc::downgrade(&shared));
    Ok(shared)
}

fn lookup(key: &Path) -> Option<SharedTable> {
    OPEN.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(key)
        .and_then(Weak::upgrade)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::collections::BTreeMap;

    #[tokio::test(flavor = "multi_thread")]
    async fn sinks_of_one_table_share_a_handle_while_one_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let schema =
            table::to_delta_schema(&Schema::new(vec![Field::new("x", DataType::Int64, true)]))
                .unwrap();
        table::create(&path, &schema, &[], &BTreeMap::new(), Vec::new())
            .await
            .unwrap();
        let first = open(&path).await.unwrap();
        // The table changes behind the open handle (a column added, as when
        // a deployment's sinks are prepared): a sink opening it later sees it.
        let wider = Schema::new(vec![
            Field::new("x", DataType::Int64, true),
            Field::new("y", DataType::Utf8, true),
        ]);
        let other = table::open_existing(&path).await.unwrap();
        table::add_missing_nullable_columns(&path, other, &wider)
            .await
            .unwrap();
        // Another spelling of the same directory.
        let second = open(&dir.path().join(".").join("t")).await.unwrap();
        assert!(Arc::ptr_eq(&first, &second));
        let columns = table::arrow_schema(&path, first.lock().await.as_ref().unwrap())
            .unwrap()
            .fields()
            .len();
        assert_eq!(columns, 2, "the shared handle was refreshed");
        let weak = Arc::downgrade(&first);
        drop((first, second));
        assert!(weak.upgrade().is_none(), "no sink holds it: closed");
        let third = open(&path).await.unwrap();
        assert!(third.lock().await.is_some());
        let missing = open(&dir.path().join("nothing")).await.unwrap_err();
        assert!(matches!(missing, DeltaError::Missing { .. }), "{missing}");
    }
}
