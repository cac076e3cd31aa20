//! The upsert sink against real Delta tables: late, tied, replayed and
//! deleted changes, and merges of 100k rows.

use super::*;
use crate::delta::provision::DEFAULT_PROPERTIES;
use crate::pipeline::spec::SinkMode;
use arrow::array::{BooleanArray, Int64Array, StringArray};
use std::collections::BTreeMap;

/// A change: (user_id, ordering value, name, deleted).
type Change<'a> = (i64, i64, &'a str, bool);

fn batch(changes: &[Change<'_>]) -> RecordBatch {
    let column =
        |f: fn(&Change<'_>) -> i64| Arc::new(Int64Array::from_iter_values(changes.iter().map(f)));
    RecordBatch::try_from_iter_with_nullable([
        ("user_id", column(|c| c.0) as _, false),
        ("seq", column(|c| c.1) as _, true),
        (
            "name",
            Arc::new(StringArray::from_iter_values(changes.iter().map(|c| c.2))) as _,
            true,
        ),
        (
            "_deleted",
            Arc::new(BooleanArray::from_iter(changes.iter().map(|c| Some(c.3)))) as _,
            false,
        ),
    ])
    .unwrap()
}

struct Fixture {
    _dir: tempfile::TempDir,
    target: SinkTarget,
    upsert: Upsert,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        let upsert = Upsert {
            key: vec!["user_id".into()],
            order_by: "seq".into(),
            deleted: "_deleted".into(),
            tombstones: dir.path().join("users_tombstones"),
        };
        let port = batch(&[]).schema();
        let stored = Arc::new(Schema::new(port.fields()[..3].to_vec()));
        let properties: BTreeMap<String, String> = DEFAULT_PROPERTIES
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let delta = table::to_delta_schema(&stored).unwrap();
        table::create(&path, &delta, &[], &properties, vec![])
            .await
            .unwrap();
        let tombstones =
            table::to_delta_schema(&tombstone_schema(&stored, &upsert).unwrap()).unwrap();
        let plain = BTreeMap::from([("delta.checkpointInterval".to_string(), "10".to_string())]);
        table::create(&upsert.tombstones, &tombstones, &[], &plain, vec![])
            .await
            .unwrap();
        let target = SinkTarget {
            path,
            app_id: "weir:silver:users".into(),
            mode: SinkMode::Upsert,
            merge: None,
            upsert: Some(upsert.clone()),
        };
        Fixture {
            _dir: dir,
            target,
            upsert,
        }
    }

    async fn commit(&self, epoch: u64, changes: &[Change<'_>]) -> Result<(), DeltaError> {
        let table = table::open_existing(&self.target.path).await?;
        self.target
            .write_epoch(table, vec![batch(changes)], epoch, serde_json::json!({}))
            .await?;
        Ok(())
    }

    /// The `columns` of `path` per row, ordered by the first.
    async fn rows(path: &std::path::Path, columns: &str) -> Vec<String> {
        let sql = format!("SELECT {columns} FROM t ORDER BY 1");
        let batches = crate::delta::query::query(path, &sql).await.unwrap();
        let mut rows = Vec::new();
        for batch in &batches {
            for row in 0..batch.num_rows() {
                let cells: Vec<String> = batch
                    .columns()
                    .iter()
                    .map(|c| arrow::util::display::array_value_to_string(c, row).unwrap())
                    .collect();
                rows.push(cells.join(" "));
            }
        }
        rows
    }

    async fn table(&self) -> Vec<String> {
        Self::rows(&self.target.path, "user_id, seq, name").await
    }

    async fn tombstones(&self) -> Vec<String> {
        Self::rows(&self.upsert.tombstones, "user_id, seq").await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn late_tied_and_deleted_changes_never_overwrite_newer_state() {
    let f = Fixture::new().await;
    f.commit(
        1,
        &[(1, 10, "a", false), (2, 10, "b", false), (3, 5, "-", true)],
    )
    .await
    .unwrap();
    assert_eq!(
        f.table().await,
        ["1 10 a", "2 10 b"],
        "a delete of an unknown key inserts nothing"
    );
    assert_eq!(f.tombstones().await, ["3 5"], "but leaves a tombstone");

    // Older than stored, older than the tombstone, a newer delete.
    f.commit(
        2,
        &[
            (1, 5, "a-late", false),
            (3, 4, "c-late", false),
            (2, 20, "-", true),
        ],
    )
    .await
    .unwrap();
    assert_eq!(f.table().await, ["1 10 a"]);
    assert_eq!(f.tombstones().await, ["2 20", "3 5"]);

    // An update older than the delete stays deleted; a tie keeps the stored
    // row; newer than the tombstone brings the key back and clears it.
    f.commit(
        3,
        &[
            (2, 15, "b-late", false),
            (1, 10, "a-tie", false),
            (3, 6, "c", false),
        ],
    )
    .await
    .unwrap();
    assert_eq!(f.table().await, ["1 10 a", "3 6 c"]);
    assert_eq!(f.tombstones().await, ["2 20"]);

    // A delete older than the stored row does nothing to the row; a newer one
    // of a key without tombstone removes it. An empty epoch still commits.
    f.commit(4, &[(3, 2, "-", true), (1, 11, "-", true)])
        .await
        .unwrap();
    f.commit(5, &[]).await.unwrap();
    assert_eq!(f.table().await, ["3 6 c"]);
    let table = table::open_existing(&f.target.path).await.unwrap();
    let held = commit_info::committed_epoch(&f.target.path, &table, &f.target.app_id)
        .await
        .unwrap();
    assert_eq!(held, Some(5));
}

/// A crash between the tombstone commit and the table's commit: the replay
/// skips the tombstones (their `txn` says the epoch is there) and still
/// applies the epoch's delete, although its tombstone already exists.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_after_the_tombstone_commit_still_applies_the_deletes() {
    let f = Fixture::new().await;
    f.commit(1, &[(1, 10, "a", false), (2, 10, "b", false)])
        .await
        .unwrap();
    let epoch_2 = [(1, 12, "-", true), (2, 11, "b2", false)];
    // Step 1 alone, as a crash right after it leaves things.
    let tombstones = table::open_existing(&f.upsert.tombstones).await.unwrap();
    let txn = Transaction::new(&f.target.app_id, 2);
    let properties = CommitProperties::default().with_application_transaction(txn);
    record_tombstones(&f.upsert, tombstones, &[batch(&epoch_2)], properties)
        .await
        .unwrap();
    assert_eq!(f.tombstones().await, ["1 12"]);

    f.commit(2, &epoch_2).await.unwrap();
    assert_eq!(f.table().await, ["2 11 b2"]);
    assert_eq!(f.tombstones().await, ["1 12"]);
    let tombstones = table::open_existing(&f.upsert.tombstones).await.unwrap();
    assert_eq!(
        tombstones.version(),
        Some(1),
        "the tombstones were not committed twice"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_merge_of_100k_changes_applies_each_rule() {
    let f = Fixture::new().await;
    let rows = 100_000_i64;
    let names: Vec<String> = (0..rows).map(|i| format!("n{i}")).collect();
    let first: Vec<Change<'_>> = (0..rows)
        .map(|i| (i, 100, names[i as usize].as_str(), false))
        .collect();
    f.commit(1, &first).await.unwrap();
    // Per key by i % 4: newer update, older update, newer delete, tie.
    let second: Vec<Change<'_>> = (0..rows)
        .map(|i| match i % 4 {
            0 => (i, 101, "newer", false),
            1 => (i, 99, "older", false),
            2 => (i, 101, "-", true),
            _ => (i, 100, "tie", false),
        })
        .collect();
    f.commit(2, &second).await.unwrap();
    let counts = crate::delta::query::query(
        &f.target.path,
        "SELECT name = 'newer' AS newer, count(*) AS n FROM t GROUP BY 1 ORDER BY 1",
    )
    .await
    .unwrap();
    let counts = arrow::util::pretty::pretty_format_batches(&counts)
        .unwrap()
        .to_string();
    assert!(
        counts.contains("| false | 50000 |") && counts.contains("| true  | 25000 |"),
        "{counts}"
    );
    let tombstones =
        crate::delta::query::query(&f.upsert.tombstones, "SELECT count(*) AS n FROM t")
            .await
            .unwrap();
    let tombstones = arrow::util::pretty::pretty_format_batches(&tombstones)
        .unwrap()
        .to_string();
    assert!(tombstones.contains("| 25000 |"), "{tombstones}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_null_ordering_value_or_duplicate_key_fails_the_epoch_naming_it() {
    let f = Fixture::new().await;
    let mut nulls = batch(&[(1, 10, "a", false)]).columns().to_vec();
    nulls[1] = Arc::new(Int64Array::from(vec![None]));
    let with_null = RecordBatch::try_new(batch(&[]).schema(), nulls).unwrap();
    let table = table::open_existing(&f.target.path).await.unwrap();
    let error = f
        .target
        .write_epoch(table, vec![with_null], 1, serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("upsert column `seq` is null in row 0"),
        "{error}"
    );

    let error = f
        .commit(1, &[(1, 10, "a", false), (1, 11, "b", false)])
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("appears more than once"),
        "{error}"
    );
    assert_eq!(
        f.table().await,
        Vec::<String>::new(),
        "nothing was committed"
    );
}

/// Helper review: an epoch whose only change is an upsert older than its
/// key's tombstone has nothing for either commit; it used to fail building
/// the tombstone merge from no rows, on every replay.
#[tokio::test(flavor = "multi_thread")]
async fn regression_issue_11_an_epoch_whose_changes_are_all_dropped_commits_empty() {
    let f = Fixture::new().await;
    f.commit(1, &[(2, 20, "-", true)]).await.unwrap();
    f.commit(2, &[(2, 15, "b-late", false)]).await.unwrap();
    assert_eq!(f.table().await, Vec::<String>::new());
    assert_eq!(f.tombstones().await, ["2 20"]);
    let table = table::open_existing(&f.target.path).await.unwrap();
    let held = commit_info::committed_epoch(&f.target.path, &table, &f.target.app_id)
        .await
        .unwrap();
    assert_eq!(held, Some(2));
}

/// Helper review: a late or tied delete of a key the table holds with a
/// newer state changes nothing and leaves no tombstone behind (a stale
/// tombstone made the tombstone table depend on where epochs ended).
#[tokio::test(flavor = "multi_thread")]
async fn regression_issue_11_a_late_delete_of_a_live_key_leaves_no_tombstone() {
    let f = Fixture::new().await;
    f.commit(1, &[(1, 10, "a", false), (2, 10, "b", false)])
        .await
        .unwrap();
    f.commit(2, &[(1, 5, "-", true), (2, 10, "-", true)])
        .await
        .unwrap();
    assert_eq!(f.table().await, ["1 10 a", "2 10 b"]);
    assert_eq!(f.tombstones().await, Vec::<String>::new());
    f.commit(3, &[(1, 11, "a11", false)]).await.unwrap();
    assert_eq!(f.table().await, ["1 11 a11", "2 10 b"]);
}

/// Helper review: column names with a dot are one column, not
/// `relation.column` (deltalake reads a plain string as qualified).
#[tokio::test(flavor = "multi_thread")]
async fn a_column_name_with_a_dot_is_written_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    let upsert = Upsert {
        key: vec!["id".into()],
        order_by: "v.seq".into(),
        deleted: "_deleted".into(),
        tombstones: dir.path().join("t_tombstones"),
    };
    let rows = |seq: i64, city: &str| {
        RecordBatch::try_from_iter_with_nullable([
            ("id", Arc::new(Int64Array::from(vec![1])) as _, false),
            ("v.seq", Arc::new(Int64Array::from(vec![seq])) as _, true),
            (
                "home.city",
                Arc::new(StringArray::from(vec![city])) as _,
                true,
            ),
            (
                "_deleted",
                Arc::new(BooleanArray::from(vec![false])) as _,
                false,
            ),
        ])
        .unwrap()
    };
    let stored = Arc::new(Schema::new(rows(0, "").schema().fields()[..3].to_vec()));
    let properties: BTreeMap<String, String> = DEFAULT_PROPERTIES
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    table::create(
        &path,
        &table::to_delta_schema(&stored).unwrap(),
        &[],
        &properties,
        vec![],
    )
    .await
    .unwrap();
    let tombstones = table::to_delta_schema(&tombstone_schema(&stored, &upsert).unwrap()).unwrap();
    table::create(
        &upsert.tombstones,
        &tombstones,
        &[],
        &BTreeMap::new(),
        vec![],
    )
    .await
    .unwrap();
    let target = SinkTarget {
        path: path.clone(),
        app_id: "weir:p:t".into(),
        mode: SinkMode::Upsert,
        merge: None,
        upsert: Some(upsert),
    };
    for (epoch, (seq, city)) in [(1, (1, "Austin")), (2, (2, "Denver"))] {
        let table = table::open_existing(&path).await.unwrap();
        target
            .write_epoch(table, vec![rows(seq, city)], epoch, serde_json::json!({}))
            .await
            .unwrap();
    }
    let found = Fixture::rows(&path, "id, \"v.seq\", \"home.city\"").await;
    assert_eq!(found, ["1 2 Denver"]);
}
