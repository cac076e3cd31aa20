//! The change reader against tables written by deltalake: appends (no change
//! files: added rows are inserts), merges and deletes with Change Data Feed
//! on (change files), partition columns, and the refusals.

use super::*;
use arrow::array::{Array, AsArray, Int64Array};
use arrow::datatypes::Int64Type;
use deltalake::protocol::SaveMode;
use std::collections::BTreeMap;

fn batch(ids: &[i64], names: &[&str], day: &str) -> RecordBatch {
    RecordBatch::try_from_iter_with_nullable([
        (
            "id",
            Arc::new(Int64Array::from(ids.to_vec())) as ArrayRef,
            false,
        ),
        (
            "name",
            Arc::new(StringArray::from(names.to_vec())) as ArrayRef,
            true,
        ),
        (
            "day",
            Arc::new(StringArray::from(vec![day; ids.len()])) as ArrayRef,
            true,
        ),
    ])
    .unwrap()
}

async fn create(path: &Path, cdf: bool, partition_by: &[String]) -> DeltaTable {
    let schema = table::to_delta_schema(&batch(&[], &[], "").schema()).unwrap();
    let mut properties = BTreeMap::new();
    if cdf {
        properties.insert("delta.enableChangeDataFeed".to_string(), "true".to_string());
    }
    table::create(path, &schema, partition_by, &properties, vec![])
        .await
        .unwrap()
}

async fn append(table: DeltaTable, rows: RecordBatch) -> DeltaTable {
    table
        .write(vec![rows])
        .with_save_mode(SaveMode::Append)
        .await
        .unwrap()
}

/// `(id, name, day, change type, version)` per change row.
async fn changes(path: &Path, version: u64) -> Vec<(i64, String, String, String, i64)> {
    let table = table::open_existing(path).await.unwrap();
    let schema = table::arrow_schema(path, &table).unwrap();
    let batches = read_version(path, &table, version, &schema)
        .await
        .unwrap()
        .expect("the version exists");
    let mut rows = Vec::new();
    for b in &batches {
        assert_eq!(b.schema(), change_schema(&schema));
        let text = |name: &str| b.column_by_name(name).unwrap().as_string::<i32>().clone();
        let (ids, names, days, kinds) = (
            b.column_by_name("id")
                .unwrap()
                .as_primitive::<Int64Type>()
                .clone(),
            text("name"),
            text("day"),
            text(CHANGE_TYPE),
        );
        let versions = b
            .column_by_name(COMMIT_VERSION)
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        for r in 0..b.num_rows() {
            rows.push((
                ids.value(r),
                names.value(r).to_string(),
                days.value(r).to_string(),
                kinds.value(r).to_string(),
                versions.value(r),
            ));
        }
        assert_eq!(b.column_by_name(COMMIT_TIMESTAMP).unwrap().null_count(), 0);
    }
    rows
}

fn row(
    id: i64,
    name: &str,
    day: &str,
    kind: &str,
    version: i64,
) -> (i64, String, String, String, i64) {
    (id, name.into(), day.into(), kind.into(), version)
}

#[tokio::test(flavor = "multi_thread")]
async fn appends_are_inserts_and_merges_and_deletes_read_their_change_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users");
    let created = create(&path, true, &[]).await;
    let table = append(created, batch(&[1, 2, 3], &["a", "b", "c"], "mon")).await;
    assert_eq!(
        changes(&path, 1).await,
        [
            row(1, "a", "mon", "insert", 1),
            row(2, "b", "mon", "insert", 1),
            row(3, "c", "mon", "insert", 1)
        ]
    );
    // An update and a delete rewrite the file: change files hold only the changed rows.
    let (table, _) = table
        .update()
        .with_predicate("id = 2")
        .with_update("name", "'b2'")
        .await
        .unwrap();
    let mut updated = changes(&path, 2).await;
    updated.sort();
    assert_eq!(
        updated,
        [
            row(2, "b", "mon", "update_preimage", 2),
            row(2, "b2", "mon", "update_postimage", 2)
        ]
    );
    let (_table, _) = table.delete().with_predicate("id = 3").await.unwrap();
    assert_eq!(changes(&path, 3).await, [row(3, "c", "mon", "delete", 3)]);
    // Read again: the same rows in the same order.
    assert_eq!(changes(&path, 3).await, [row(3, "c", "mon", "delete", 3)]);
    let table = table::open_existing(&path).await.unwrap();
    let schema = table::arrow_schema(&path, &table).unwrap();
    assert!(
        read_version(&path, &table, 4, &schema)
            .await
            .unwrap()
            .is_none(),
        "not written yet"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partition_values_fill_partition_columns_and_whole_file_removes_are_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events");
    let created = create(&path, true, &["day".to_string()]).await;
    let table = append(created, batch(&[1, 2], &["a", "b"], "mon")).await;
    let table = append(table, batch(&[3], &["c"], "tue")).await;
    assert_eq!(changes(&path, 2).await, [row(3, "c", "tue", "insert", 2)]);
    // A delete of a whole partition drops its file.
    let (_table, _) = table.delete().with_predicate("day = 'mon'").await.unwrap();
    let mut deleted = changes(&path, 3).await;
    deleted.sort();
    assert_eq!(
        deleted,
        [
            row(1, "a", "mon", "delete", 3),
            row(2, "b", "mon", "delete", 3)
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_without_change_feed_or_a_vacuumed_file_is_refused_naming_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plain");
    let created = create(&path, false, &[]).await;
    append(created, batch(&[1], &["a"], "mon")).await;
    let error = check_readable(&path, 1).await.unwrap_err().to_string();
    assert!(
        error.contains("version 1: the Change Data Feed is off"),
        "{error}"
    );
    let table = table::open_existing(&path).await.unwrap();
    let schema = table::arrow_schema(&path, &table).unwrap();
    let error = read_version(&path, &table, 0, &schema)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("version 0: the Change Data Feed is off"),
        "{error}"
    );

    let cdf = dir.path().join("cdf");
    let created = create(&cdf, true, &[]).await;
    append(created, batch(&[1], &["a"], "mon")).await;
    check_readable(&cdf, 1).await.unwrap();
    for entry in std::fs::read_dir(&cdf).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(file).unwrap();
        }
    }
    let table = table::open_existing(&cdf).await.unwrap();
    let error = read_version(&cdf, &table, 1, &schema)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("version 1: file") && error.contains("vacuumed"),
        "{error}"
    );
}
