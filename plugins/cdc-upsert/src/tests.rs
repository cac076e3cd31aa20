//! Unit tests of the change reduction, run natively through the SDK harness.

use super::*;
use weir_sdk::arrow_array::cast::AsArray;
use weir_sdk::testing::Harness;

/// A change event: (user_id, op, timestamp text, name).
type Event<'a> = (Option<i64>, Option<&'a str>, Option<&'a str>, &'a str);

fn events(rows: &[Event<'_>]) -> RecordBatch {
    let ids: ArrayRef = Arc::new(Int64Array::from(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
    ));
    let ops: ArrayRef = Arc::new(StringArray::from(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
    ));
    let at: ArrayRef = Arc::new(StringArray::from(
        rows.iter().map(|r| r.2).collect::<Vec<_>>(),
    ));
    let names: ArrayRef = Arc::new(StringArray::from(
        rows.iter().map(|r| Some(r.3)).collect::<Vec<_>>(),
    ));
    RecordBatch::try_from_iter([
        ("user_id", ids),
        ("update_type", ops),
        ("timestamp", at),
        ("name", names),
    ])
    .unwrap()
}

fn config() -> weir_sdk::serde_json::Value {
    json!({"key": ["user_id"], "order_by": "timestamp",
           "operation": {"column": "update_type", "upsert": ["new", "update"], "delete": ["delete"]}})
}

fn run(config: weir_sdk::serde_json::Value, batch: RecordBatch) -> (RecordBatch, RecordBatch) {
    let mut plugin = Harness::<CdcUpsert>::new(config).unwrap();
    let out = plugin.run(Inputs::new().with("in", batch)).unwrap();
    (
        out.get("out").unwrap().clone(),
        out.get(REJECTED_PORT).unwrap().clone(),
    )
}

/// (user_id, name, deleted) per output row.
fn kept(out: &RecordBatch) -> Vec<(i64, String, bool)> {
    let ids = out
        .column_by_name("user_id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let names = out.column_by_name("name").unwrap().as_string::<i32>();
    let deleted = out.column_by_name(DELETED_COLUMN).unwrap().as_boolean();
    (0..out.num_rows())
        .map(|r| (ids.value(r), names.value(r).to_string(), deleted.value(r)))
        .collect()
}

fn reasons(rejected: &RecordBatch) -> Vec<(u64, String)> {
    let rows = rejected
        .column_by_name("row")
        .unwrap()
        .as_primitive::<UInt64Type>();
    let reasons = rejected
        .column_by_name("reason")
        .unwrap()
        .as_string::<i32>();
    (0..rejected.num_rows())
        .map(|r| (rows.value(r), reasons.value(r).to_string()))
        .collect()
}

#[test]
fn the_latest_change_per_key_wins_whatever_the_arrival_order() {
    let batch = events(&[
        (Some(1), Some("new"), Some("2024-05-01T10:00:00Z"), "a1"),
        (Some(2), Some("new"), Some("2024-05-01T10:00:00Z"), "b1"),
        (Some(1), Some("update"), Some("2024-05-01T12:00:00Z"), "a3"), // latest for 1
        (Some(1), Some("update"), Some("2024-05-01T11:00:00Z"), "a2"), // late
        (Some(3), Some("update"), Some("2024-05-01T09:00:00Z"), "c2"), // update overtook its insert
        (Some(3), Some("new"), Some("2024-05-01T08:00:00Z"), "c1"),
        (
            Some(2),
            Some("delete"),
            Some("2024-05-01T10:30:00+00:00"),
            "b-",
        ),
    ]);
    let (out, rejected) = run(config(), batch);
    assert_eq!(
        kept(&out),
        [
            (1, "a3".into(), false),
            (3, "c2".into(), false),
            (2, "b-".into(), true)
        ],
        "in input order of the kept rows"
    );
    assert_eq!(rejected.num_rows(), 0);
    let schema = out.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        ["user_id", "timestamp", "name", DELETED_COLUMN],
        "the operation column is dropped"
    );
    assert_eq!(
        out.column_by_name("timestamp").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "text ordering values become timestamps"
    );
}

#[test]
fn on_a_tie_the_first_event_in_source_order_wins() {
    let at = Some("2024-05-01T10:00:00Z");
    let batch = events(&[
        (Some(7), Some("update"), at, "first"),
        (Some(7), Some("delete"), at, "second"),
        (Some(8), Some("delete"), at, "first"),
        (Some(8), Some("update"), at, "second"),
    ]);
    let (out, _) = run(config(), batch);
    assert_eq!(
        kept(&out),
        [(7, "first".into(), false), (8, "first".into(), true)]
    );
}

#[test]
fn events_without_key_operation_or_ordering_value_are_rejected_with_reasons() {
    let batch = events(&[
        (None, Some("new"), Some("2024-05-01T10:00:00Z"), "no key"),
        (
            Some(1),
            Some("upsert"),
            Some("2024-05-01T10:00:00Z"),
            "unknown op",
        ),
        (Some(1), None, Some("2024-05-01T10:00:00Z"), "null op"),
        (Some(1), Some("new"), Some("yesterday"), "bad time"),
        (Some(1), Some("new"), None, "null time"),
        (Some(1), Some("new"), Some("2024-05-01T09:00:00Z"), "good"),
    ]);
    let (out, rejected) = run(config(), batch);
    assert_eq!(kept(&out), [(1, "good".into(), false)]);
    let reasons = reasons(&rejected);
    let rows: Vec<u64> = reasons.iter().map(|(r, _)| *r).collect();
    assert_eq!(rows, [0, 1, 2, 3, 4]);
    assert!(reasons[0].1.contains("key is null"), "{reasons:?}");
    assert!(
        reasons[1].1.contains("unknown operation `upsert`"),
        "{reasons:?}"
    );
    assert!(reasons[2].1.contains("operation is null"), "{reasons:?}");
    assert!(
        reasons[3]
            .1
            .contains("`yesterday` is not an RFC 3339 timestamp"),
        "{reasons:?}"
    );
    assert!(
        reasons[4].1.contains("ordering value is null"),
        "{reasons:?}"
    );
}

#[test]
fn integer_orderings_and_composite_keys_compare_exactly() {
    let tenant: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "a", "a"]));
    let id: ArrayRef = Arc::new(Int64Array::from(vec![1, 1, 1, 2]));
    // Sequence numbers past 2^53 differ by one: a float would call them equal.
    let base = 1_i64 << 60;
    let seq: ArrayRef = Arc::new(Int64Array::from(vec![base + 1, base, base + 2, base]));
    let name: ArrayRef = Arc::new(StringArray::from(vec!["a1-old", "b1", "a1-new", "a2"]));
    let batch =
        RecordBatch::try_from_iter([("tenant", tenant), ("id", id), ("seq", seq), ("name", name)])
            .unwrap();
    let (out, _) = run(json!({"key": ["tenant", "id"], "order_by": "seq"}), batch);
    let names = out.column_by_name("name").unwrap().as_string::<i32>();
    let names: Vec<&str> = names.iter().map(Option::unwrap).collect();
    assert_eq!(names, ["b1", "a1-new", "a2"]);
    assert_eq!(
        out.column_by_name("seq").unwrap().data_type(),
        &DataType::Int64,
        "kept as it was"
    );
    assert!(
        out.column_by_name(DELETED_COLUMN)
            .unwrap()
            .as_boolean()
            .false_count()
            == 3
    );
}

#[test]
fn bad_configs_and_inputs_name_the_key_or_column() {
    let error = Harness::<CdcUpsert>::new(json!({"key": [], "order_by": "t"}))
        .err()
        .unwrap();
    assert_eq!(error.key.as_deref(), Some("key"));
    let both = json!({"key": ["id"], "order_by": "t", "operation": {"column": "op", "upsert": ["x"], "delete": ["x"]}});
    let error = Harness::<CdcUpsert>::new(both).err().unwrap();
    assert_eq!(error.key.as_deref(), Some("operation.delete"));
    let on_key = json!({"key": ["id"], "order_by": "t", "operation": {"column": "id"}});
    let error = Harness::<CdcUpsert>::new(on_key).err().unwrap();
    assert_eq!(error.key.as_deref(), Some("operation.column"));

    let batch = events(&[(Some(1), Some("new"), Some("2024-05-01T10:00:00Z"), "a")]);
    let mut plugin =
        Harness::<CdcUpsert>::new(json!({"key": ["user_id"], "order_by": "name2"})).unwrap();
    let error = plugin
        .run(Inputs::new().with("in", batch.clone()))
        .unwrap_err();
    assert!(error.message.contains("name2"), "{}", error.message);
    let floats: ArrayRef = Arc::new(Float64Array::from(vec![1.5]));
    let ids: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    let float_batch = RecordBatch::try_from_iter([("id", ids), ("score", floats)]).unwrap();
    let mut plugin =
        Harness::<CdcUpsert>::new(json!({"key": ["id"], "order_by": "score"})).unwrap();
    let error = plugin
        .run(Inputs::new().with("in", float_batch))
        .unwrap_err();
    assert!(
        error
            .message
            .contains("ordering column `score` has type Float64"),
        "{}",
        error.message
    );
}

#[test]
fn many_changes_to_few_keys_reduce_to_one_row_per_key() {
    let rows = 100_000;
    let ids: ArrayRef = Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i % 1000)));
    let seq: ArrayRef = Arc::new(Int64Array::from_iter_values(
        (0..rows).map(|i| (i * 7919) % rows),
    ));
    let batch = RecordBatch::try_from_iter([("id", ids), ("seq", seq)]).unwrap();
    let (out, _) = run(json!({"key": ["id"], "order_by": "seq"}), batch);
    assert_eq!(out.num_rows(), 1000);
    let ids = out
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>();
    let seqs = out
        .column_by_name("seq")
        .unwrap()
        .as_primitive::<Int64Type>();
    for row in 0..out.num_rows() {
        let id = ids.value(row);
        let best = (0..rows)
            .filter(|i| i % 1000 == id)
            .map(|i| (i * 7919) % rows)
            .max()
            .unwrap();
        assert_eq!(seqs.value(row), best, "id {id}");
    }
}
