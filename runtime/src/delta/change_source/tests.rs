//! The change source against real Delta tables: several tables in one
//! epoch, replays, turns between tables, snapshot and timestamp starts,
//! pre-images, and the refusals (Change Data Feed off, a version gone from
//! the log).

use super::*;
use crate::connector::Writers;
use crate::pipeline::spec::BatchPolicy;
use crate::run::continuity;
use arrow::array::{AsArray, Int64Array};
use arrow::datatypes::Int64Type;
use deltalake::protocol::SaveMode;
use std::collections::BTreeMap;

fn rows(ids: &[i64], names: &[&str]) -> RecordBatch {
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
    ])
    .unwrap()
}

async fn create(path: &Path, cdf: bool) -> DeltaTable {
    let schema = table::to_delta_schema(&rows(&[], &[]).schema()).unwrap();
    let mut properties = BTreeMap::new();
    if cdf {
        properties.insert("delta.enableChangeDataFeed".to_string(), "true".to_string());
    }
    table::create(path, &schema, &[], &properties, vec![])
        .await
        .unwrap()
}

async fn append(table: DeltaTable, batch: RecordBatch) -> DeltaTable {
    table
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .await
        .unwrap()
}

fn spec(tables: &[(&str, &Path)], columns: Option<&[&str]>, start: ChangesStart) -> Changes {
    Changes {
        tables: tables
            .iter()
            .map(|(n, p)| (n.to_string(), p.to_path_buf()))
            .collect(),
        columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
        start,
        pre_images: false,
        poll_interval: Duration::from_millis(10),
    }
}

fn id_only() -> SchemaRef {
    output_schema(&[Field::new("id", DataType::Int64, false)])
}

fn with_names() -> SchemaRef {
    output_schema(&[
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ])
}

fn once() -> Reach {
    Reach::AvailableNow(Writers::default())
}

fn policy(max_records: usize) -> BatchPolicy {
    BatchPolicy {
        max_records,
        ..BatchPolicy::default()
    }
}

/// `(table, id, change type, version)` per row.
fn summary(batch: &RecordBatch) -> Vec<(String, i64, String, i64)> {
    let text = |name: &str| {
        batch
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .clone()
    };
    let int = |name: &str| {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone()
    };
    let (tables, ids, kinds, versions) = (
        text(TABLE),
        int("id"),
        text(changes::CHANGE_TYPE),
        int(changes::COMMIT_VERSION),
    );
    (0..batch.num_rows())
        .map(|r| {
            (
                tables.value(r).to_string(),
                ids.value(r),
                kinds.value(r).to_string(),
                versions.value(r),
            )
        })
        .collect()
}

fn change(table: &str, id: i64, kind: &str, version: i64) -> (String, i64, String, i64) {
    (table.into(), id, kind.into(), version)
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_of_several_tables_come_in_table_order_and_replay_identically() {
    let dir = tempfile::tempdir().unwrap();
    let (users, accounts) = (dir.path().join("users"), dir.path().join("accounts"));
    let u = append(create(&users, true).await, rows(&[1, 2], &["a", "b"])).await;
    let (u, _) = u
        .update()
        .with_predicate("id = 2")
        .with_update("name", "'b2'")
        .await
        .unwrap();
    let (_u, _) = u.delete().with_predicate("id = 1").await.unwrap();
    append(create(&accounts, true).await, rows(&[2, 7], &["x", "y"])).await;

    let spec = spec(
        &[("users", &users), ("accounts", &accounts)],
        Some(&["id"]),
        ChangesStart::Earliest,
    );
    let mut source = ChangeSource::open("p", &spec, id_only(), None, &once())
        .await
        .unwrap();
    let stop = AtomicBool::new(false);
    let fetched = source
        .next(&policy(1000), true, &stop)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fetched.batch.schema(), id_only());
    assert_eq!(
        summary(&fetched.batch),
        [
            // Tables in the order of the pipeline file's map (by name).
            change("accounts", 2, "insert", 1),
            change("accounts", 7, "insert", 1),
            change("users", 1, "insert", 1),
            change("users", 2, "insert", 1),
            // No pre-image unless asked for.
            change("users", 2, "update_postimage", 2),
            change("users", 1, "delete", 3),
        ]
    );
    let SourceRange::Changes { tables } = &fetched.range else {
        panic!("a change range")
    };
    let ranges: Vec<_> = tables
        .iter()
        .map(|t| (t.name.as_str(), t.first, t.end, t.snapshot, t.rows))
        .collect();
    assert_eq!(
        ranges,
        [("accounts", 0, 2, false, 2), ("users", 0, 4, false, 4)]
    );
    let origin = fetched.rows.origin(5);
    assert_eq!(
        origin,
        Origin::of(KIND).text("table", "users").int("version", 3)
    );

    // A replay in a new process reads the same rows in the same order.
    let mut again = ChangeSource::open("p", &spec, id_only(), None, &once())
        .await
        .unwrap();
    let replayed = again.replay(&fetched.range).await.unwrap();
    assert_eq!(replayed.batch, fetched.batch);

    source.acknowledge(&fetched.range).await.unwrap();
    assert!(
        source
            .next(&policy(1000), true, &stop)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(source.lag().await, Some(0));

    // Reopened after the range, only later versions are read.
    append(
        table::open_existing(&accounts).await.unwrap(),
        rows(&[9], &["z"]),
    )
    .await;
    let mut resumed = ChangeSource::open("p", &spec, id_only(), Some(&fetched.range), &once())
        .await
        .unwrap();
    let next = resumed
        .next(&policy(1000), true, &stop)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary(&next.batch), [change("accounts", 9, "insert", 2)]);
    assert!(continuity::violations(Some(&fetched.range), &next.range).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn small_epochs_take_turns_between_tables_and_tile_every_version() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let mut ta = create(&a, true).await;
    for id in 0..4 {
        ta = append(ta, rows(&[id], &["a"])).await;
    }
    append(create(&b, true).await, rows(&[100], &["b"])).await;
    let spec = spec(
        &[("a", &a), ("b", &b)],
        Some(&["id"]),
        ChangesStart::Earliest,
    );
    let mut source = ChangeSource::open("p", &spec, id_only(), None, &once())
        .await
        .unwrap();
    let stop = AtomicBool::new(false);
    let mut previous: Option<SourceRange> = None;
    let mut epochs = Vec::new();
    while let Some(fetched) = source.next(&policy(1), true, &stop).await.unwrap() {
        assert!(continuity::violations(previous.as_ref(), &fetched.range).is_empty());
        source.acknowledge(&fetched.range).await.unwrap();
        previous = Some(fetched.range.clone());
        epochs.push(summary(&fetched.batch));
    }
    // Table b's only row comes after a's first, not after all of a's.
    assert_eq!(
        epochs,
        [
            vec![change("a", 0, "insert", 1)],
            vec![change("b", 100, "insert", 1)],
            vec![change("a", 1, "insert", 2)],
            vec![change("a", 2, "insert", 3)],
            vec![change("a", 3, "insert", 4)],
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_start_reads_the_latest_rows_as_inserts_then_later_changes() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let t = append(
        create(&users, true).await,
        rows(&[1, 2, 3], &["a", "b", "c"]),
    )
    .await;
    let (t, _) = t.delete().with_predicate("id = 2").await.unwrap();
    let spec = spec(&[("users", &users)], None, ChangesStart::Snapshot);
    let mut source = ChangeSource::open("p", &spec, with_names(), None, &Reach::Unbounded)
        .await
        .unwrap();
    let stop = AtomicBool::new(false);
    let first = source
        .next(&policy(1000), false, &stop)
        .await
        .unwrap()
        .unwrap();
    let mut snapshot = summary(&first.batch);
    snapshot.sort();
    assert_eq!(
        snapshot,
        [
            change("users", 1, "insert", 2),
            change("users", 3, "insert", 2)
        ]
    );
    let SourceRange::Changes { tables } = &first.range else {
        panic!("a change range")
    };
    assert_eq!(
        (tables[0].first, tables[0].end, tables[0].snapshot),
        (2, 3, true)
    );
    let replayed = ChangeSource::open("p", &spec, with_names(), None, &once())
        .await
        .unwrap()
        .replay(&first.range)
        .await
        .unwrap();
    assert_eq!(replayed.batch, first.batch);
    source.acknowledge(&first.range).await.unwrap();

    append(t, rows(&[4], &["d"])).await;
    let second = source
        .next(&policy(1000), false, &stop)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary(&second.batch), [change("users", 4, "insert", 3)]);
    assert!(continuity::violations(Some(&first.range), &second.range).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timestamp_start_begins_at_the_first_commit_at_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let mut t = create(&users, true).await;
    for id in 1..=3 {
        t = append(t, rows(&[id], &["x"])).await;
    }
    // Commit times one hour apart, from 2026-01-01T00:00:00Z.
    let base = std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    for version in 0..=3u64 {
        let commit = users.join("_delta_log").join(format!("{version:020}.json"));
        std::fs::File::options()
            .write(true)
            .open(commit)
            .unwrap()
            .set_modified(base + Duration::from_secs(3600 * version))
            .unwrap();
    }
    let at = |text: &str| {
        let ChangesStart::Timestamp(micros) =
            serde_json::from_value::<ChangesStart>(serde_json::json!(text)).unwrap()
        else {
            panic!("a time")
        };
        micros
    };
    assert_eq!(
        changes::first_version_at_or_after(&users, at("2026-01-01T01:30:00Z"), 3).unwrap(),
        2
    );
    assert_eq!(
        changes::first_version_at_or_after(&users, at("2026-01-01T02:00:00+00:00"), 3).unwrap(),
        2,
        "a commit exactly at the time is included"
    );
    assert_eq!(
        changes::first_version_at_or_after(&users, at("2027-01-01T00:00:00Z"), 3).unwrap(),
        4,
        "after every commit: the next one"
    );
    let spec = spec(
        &[("users", &users)],
        None,
        ChangesStart::Timestamp(at("2026-01-01T01:30:00Z")),
    );
    let mut source = ChangeSource::open("p", &spec, with_names(), None, &once())
        .await
        .unwrap();
    let fetched = source
        .next(&policy(1000), true, &AtomicBool::new(false))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        summary(&fetched.batch),
        [
            change("users", 2, "insert", 2),
            change("users", 3, "insert", 3)
        ]
    );
    let stamps = fetched
        .batch
        .column_by_name(changes::COMMIT_TIMESTAMP)
        .unwrap()
        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
        .clone();
    assert_eq!(stamps.value(0), 1_767_225_600_000_000 + 7_200_000_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn pre_images_come_only_when_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    let t = append(create(&users, true).await, rows(&[1], &["a"])).await;
    t.update()
        .with_predicate("id = 1")
        .with_update("name", "'b'")
        .await
        .unwrap();
    let mut spec = spec(&[("users", &users)], None, ChangesStart::Version(2));
    spec.pre_images = true;
    let mut source = ChangeSource::open("p", &spec, with_names(), None, &once())
        .await
        .unwrap();
    let fetched = source
        .next(&policy(1000), true, &AtomicBool::new(false))
        .await
        .unwrap()
        .unwrap();
    let mut kinds = summary(&fetched.batch);
    kinds.sort();
    assert_eq!(
        kinds,
        [
            change("users", 1, "update_postimage", 2),
            change("users", 1, "update_preimage", 2)
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_start_where_the_feed_is_off_or_a_version_gone_from_the_log_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    append(create(&plain, false).await, rows(&[1], &["a"])).await;
    let error = ChangeSource::open(
        "p",
        &spec(&[("plain", &plain)], None, ChangesStart::Earliest),
        with_names(),
        None,
        &once(),
    )
    .await
    .err()
    .expect("refused")
    .to_string();
    assert!(
        error.contains("plain") && error.contains("version 0: the Change Data Feed is off"),
        "{error}"
    );

    // Log cleanup after a checkpoint removes the early commits.
    let users = dir.path().join("users");
    let mut t = create(&users, true).await;
    for id in 1..=3 {
        t = append(t, rows(&[id], &["x"])).await;
    }
    deltalake::checkpoints::create_checkpoint(&t, None)
        .await
        .unwrap();
    std::fs::remove_file(users.join("_delta_log").join(format!("{:020}.json", 1))).unwrap();
    let opened = ChangeSource::open(
        "p",
        &spec(&[("users", &users)], None, ChangesStart::Version(1)),
        with_names(),
        None,
        &once(),
    )
    .await;
    // Refused when the source opens (the version cannot be loaded) or when it reads it.
    let error = match opened {
        Err(e) => e.to_string(),
        Ok(mut source) => source
            .next(&policy(1000), true, &AtomicBool::new(false))
            .await
            .err()
            .expect("refused")
            .to_string(),
    };
    assert!(
        error.contains("users") && error.contains("version 1"),
        "{error}"
    );
}

/// A reviewer found that a snapshot start over several tables lost the
/// snapshot of every table whose turn had not come when the first epoch
/// filled up (acknowledged, or resumed after a restart).
#[tokio::test(flavor = "multi_thread")]
async fn regression_a_snapshot_of_several_tables_in_small_epochs_reads_every_table_once() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    append(create(&a, true).await, rows(&[1, 2], &["x", "y"])).await;
    append(create(&b, true).await, rows(&[3, 4], &["x", "y"])).await;
    append(create(&c, true).await, rows(&[5], &["x"])).await;
    let spec = spec(
        &[("a", &a), ("b", &b), ("c", &c)],
        Some(&["id"]),
        ChangesStart::Snapshot,
    );
    let stop = AtomicBool::new(false);
    let mut source = ChangeSource::open("p", &spec, id_only(), None, &once())
        .await
        .unwrap();
    let first = source.next(&policy(1), true, &stop).await.unwrap().unwrap();
    assert_eq!(
        summary(&first.batch),
        [change("a", 1, "insert", 1), change("a", 2, "insert", 1)]
    );
    source.acknowledge(&first.range).await.unwrap();
    let second = source.next(&policy(1), true, &stop).await.unwrap().unwrap();
    assert!(continuity::violations(Some(&first.range), &second.range).is_empty());
    assert_eq!(
        summary(&second.batch),
        [change("b", 3, "insert", 1), change("b", 4, "insert", 1)],
        "b's snapshot, as inserts"
    );
    // A restart after the second epoch still reads c's snapshot.
    let mut resumed = ChangeSource::open("p", &spec, id_only(), Some(&second.range), &once())
        .await
        .unwrap();
    let third = resumed
        .next(&policy(1), true, &stop)
        .await
        .unwrap()
        .unwrap();
    assert!(continuity::violations(Some(&second.range), &third.range).is_empty());
    assert_eq!(summary(&third.batch), [change("c", 5, "insert", 1)]);
    resumed.acknowledge(&third.range).await.unwrap();
    assert!(
        resumed
            .next(&policy(1), true, &stop)
            .await
            .unwrap()
            .is_none()
    );
}
