//! Unit tests of the join, run natively through the SDK harness.

use super::*;
use weir_sdk::arrow_array::cast::AsArray;
use weir_sdk::arrow_array::{Date32Array, LargeStringArray};
use weir_sdk::testing::Harness;

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, a)| (n, a, true)))
        .unwrap()
}

fn int(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

fn text(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

fn ints(batch: &RecordBatch, column: &str) -> Vec<Option<i64>> {
    let array = batch.column_by_name(column).unwrap();
    array.as_primitive::<Int64Type>().iter().collect()
}

fn texts(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = batch.column_by_name(column).unwrap();
    array
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(String::from))
        .collect()
}

fn names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

fn join(
    config: weir_sdk::serde_json::Value,
    stream: RecordBatch,
    lookup: RecordBatch,
) -> Result<RecordBatch, PluginError> {
    let port = config
        .get("lookup")
        .and_then(|l| l.as_str())
        .unwrap_or("lookup")
        .to_string();
    let mut plugin = Harness::<Join>::new(config)?;
    let out = plugin.run(Inputs::new().with("in", stream).with(port, lookup))?;
    Ok(out.get("out").expect("out is produced").clone())
}

/// Seed 002's gold step: heart-rate summaries per workout session joined with
/// the users' demographics (`.join(df_users, ["user_id"])`, an inner join).
fn workouts() -> RecordBatch {
    batch(vec![
        (
            "user_id",
            int(&[Some(14508), Some(14633), Some(99999), None, Some(14508)]),
        ),
        (
            "workout_id",
            int(&[Some(1), Some(1), Some(3), Some(2), Some(2)]),
        ),
        (
            "session_id",
            int(&[Some(0), Some(0), Some(1), Some(0), Some(1)]),
        ),
        (
            "min_bpm",
            Arc::new(Float64Array::from(vec![98.2, 101.5, 90.0, 88.0, 95.1])),
        ),
        (
            "avg_bpm",
            Arc::new(Float64Array::from(vec![131.7, 140.3, 120.0, 110.0, 128.4])),
        ),
        (
            "max_bpm",
            Arc::new(Float64Array::from(vec![162.4, 171.0, 150.0, 140.0, 158.9])),
        ),
    ])
}

fn users() -> RecordBatch {
    batch(vec![
        ("user_id", int(&[Some(14633), Some(14508), Some(14739)])),
        (
            "birth_date",
            Arc::new(Date32Array::from(vec![8_000, 10_500, 4_200])),
        ),
        ("age", text(&[Some("25-35"), Some("18-25"), Some("35-45")])),
        ("gender", text(&[Some("F"), Some("M"), Some("F")])),
        (
            "city",
            text(&[Some("Santa Ana"), Some("Los Angeles"), Some("Oakland")]),
        ),
        ("state", text(&[Some("CA"), Some("CA"), Some("CA")])),
    ])
}

#[test]
fn seed_002_workout_summaries_join_user_demographics() {
    let config =
        json!({"lookup": "users", "on": ["user_id"], "select": ["age", "gender", "city", "state"]});
    let out = join(config, workouts(), users()).unwrap();
    assert_eq!(
        names(&out),
        [
            "user_id",
            "workout_id",
            "session_id",
            "min_bpm",
            "avg_bpm",
            "max_bpm",
            "age",
            "gender",
            "city",
            "state"
        ]
    );
    // The unknown user 99999 and the null user are dropped; stream order is kept.
    assert_eq!(
        ints(&out, "user_id"),
        [Some(14508), Some(14633), Some(14508)]
    );
    assert_eq!(ints(&out, "workout_id"), [Some(1), Some(1), Some(2)]);
    assert_eq!(
        texts(&out, "city"),
        [
            Some("Los Angeles".into()),
            Some("Santa Ana".into()),
            Some("Los Angeles".into())
        ]
    );
    assert_eq!(
        texts(&out, "age"),
        [
            Some("18-25".into()),
            Some("25-35".into()),
            Some("18-25".into())
        ]
    );
}

#[test]
fn default_select_is_every_lookup_column_but_the_keys() {
    let out = join(
        json!({"lookup": "users", "on": ["user_id"]}),
        workouts(),
        users(),
    )
    .unwrap();
    assert_eq!(
        names(&out)[6..],
        ["birth_date", "age", "gender", "city", "state"]
    );
    let dates: Vec<_> = out
        .column_by_name("birth_date")
        .unwrap()
        .as_primitive::<Date32Type>()
        .iter()
        .collect();
    assert_eq!(dates, [Some(10_500), Some(8_000), Some(10_500)]);
}

#[test]
fn a_left_join_keeps_every_stream_row_with_nullable_lookup_columns() {
    let users = RecordBatch::try_from_iter_with_nullable([
        ("user_id", int(&[Some(14633), Some(14508)]), false),
        ("gender", text(&[Some("F"), Some("M")]), false),
    ])
    .unwrap();
    let inner = join(json!({"on": ["user_id"]}), workouts(), users.clone()).unwrap();
    assert!(
        !inner
            .schema()
            .field_with_name("gender")
            .unwrap()
            .is_nullable()
    );
    let out = join(
        json!({"on": ["user_id"], "type": "left"}),
        workouts(),
        users,
    )
    .unwrap();
    assert!(
        out.schema()
            .field_with_name("gender")
            .unwrap()
            .is_nullable()
    );
    assert_eq!(
        ints(&out, "user_id"),
        [Some(14508), Some(14633), Some(99999), None, Some(14508)]
    );
    assert_eq!(
        texts(&out, "gender"),
        [
            Some("M".into()),
            Some("F".into()),
            None,
            None,
            Some("M".into())
        ]
    );
}

#[test]
fn composite_keys_with_differently_named_columns() {
    let stream = batch(vec![
        ("uid", text(&[Some("a"), Some("a"), Some("b")])),
        ("day", Arc::new(Date32Array::from(vec![1, 2, 1]))),
        ("n", int(&[Some(10), Some(20), Some(30)])),
    ]);
    let lookup = batch(vec![
        (
            "user",
            Arc::new(LargeStringArray::from(vec!["a", "b", "a"])),
        ),
        ("date", Arc::new(Date32Array::from(vec![2, 1, 1]))),
        ("plan", text(&[Some("pro"), Some("free"), Some("basic")])),
    ]);
    let config =
        json!({"on": [{"stream": "uid", "lookup": "user"}, {"stream": "day", "lookup": "date"}]});
    let out = join(config, stream, lookup).unwrap();
    assert_eq!(names(&out), ["uid", "day", "n", "plan"]);
    assert_eq!(ints(&out, "n"), [Some(10), Some(20), Some(30)]);
    assert_eq!(
        texts(&out, "plan"),
        [
            Some("basic".into()),
            Some("pro".into()),
            Some("free".into())
        ]
    );
}

#[test]
fn null_keys_never_match_on_either_side() {
    let stream = batch(vec![
        ("k", int(&[Some(1), None, Some(2)])),
        ("c", text(&[Some("x"), None, Some("y")])),
    ]);
    let lookup = batch(vec![
        ("k", int(&[None, Some(1), Some(2), Some(2)])),
        ("c", text(&[Some("x"), Some("x"), None, Some("y")])),
        ("v", int(&[Some(0), Some(1), Some(2), Some(3)])),
    ]);
    let inner = join(json!({"on": ["k", "c"]}), stream.clone(), lookup.clone()).unwrap();
    assert_eq!(ints(&inner, "v"), [Some(1), Some(3)]);
    let left = join(json!({"on": ["k", "c"], "type": "left"}), stream, lookup).unwrap();
    assert_eq!(ints(&left, "k"), [Some(1), None, Some(2)]);
    assert_eq!(ints(&left, "v"), [Some(1), None, Some(3)]);
}

#[test]
fn each_duplicate_lookup_key_yields_a_row_in_lookup_order() {
    let stream = batch(vec![("k", int(&[Some(2), Some(1), Some(3)]))]);
    let lookup = batch(vec![
        ("k", int(&[Some(1), Some(2), Some(1), Some(2), Some(1)])),
        (
            "v",
            int(&[Some(10), Some(20), Some(11), Some(21), Some(12)]),
        ),
    ]);
    let out = join(json!({"on": ["k"], "type": "left"}), stream, lookup).unwrap();
    assert_eq!(
        ints(&out, "k"),
        [Some(2), Some(2), Some(1), Some(1), Some(1), Some(3)]
    );
    assert_eq!(
        ints(&out, "v"),
        [Some(20), Some(21), Some(10), Some(11), Some(12), None]
    );
}

#[test]
fn select_renames_and_orders_the_lookup_columns() {
    let config = json!({"lookup": "users", "on": ["user_id"],
        "select": ["state", {"column": "age", "as": "age_band"}, {"column": "user_id", "as": "users_id"}]});
    let out = join(config, workouts(), users()).unwrap();
    assert_eq!(names(&out)[6..], ["state", "age_band", "users_id"]);
    assert_eq!(ints(&out, "users_id"), ints(&out, "user_id"));
}

#[test]
fn a_name_collision_is_named_and_suggests_as() {
    let stream = batch(vec![("k", int(&[Some(1)])), ("city", text(&[Some("x")]))]);
    let lookup = batch(vec![("k", int(&[Some(1)])), ("city", text(&[Some("y")]))]);
    // The host's validation call: empty batches of both schemas.
    let err = join(json!({"on": ["k"]}), stream.slice(0, 0), lookup.slice(0, 0)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput);
    assert_eq!(err.input.as_deref(), Some("lookup"));
    assert!(
        err.message.contains("`city`") && err.message.contains("\"as\""),
        "{}",
        err.message
    );
    let renamed = json!({"on": ["k"], "select": [{"column": "city", "as": "lookup_city"}]});
    let out = join(renamed, stream, lookup).unwrap();
    assert_eq!(texts(&out, "lookup_city"), [Some("y".into())]);
}

#[test]
fn mismatched_unsupported_and_missing_keys_are_named() {
    let stream = batch(vec![("k", int(&[Some(1)]))]);
    let lookup = batch(vec![("id", text(&[Some("1")])), ("v", int(&[Some(1)]))]);
    let err = join(
        json!({"on": [{"stream": "k", "lookup": "id"}]}),
        stream,
        lookup,
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput);
    assert!(
        err.message
            .contains("`k` of `in` has type Int64 but `id` of `lookup` has type Utf8"),
        "{}",
        err.message
    );
    let floats = batch(vec![(
        "k",
        Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
    )]);
    let err = join(json!({"on": ["k"]}), floats.clone(), floats).unwrap_err();
    assert!(
        err.message
            .contains("`k` has type Float64, which cannot be a key"),
        "{}",
        err.message
    );
    let missing = join(json!({"on": ["nope"]}), workouts(), users()).unwrap_err();
    assert!(
        missing.message.contains("`nope` is missing"),
        "{}",
        missing.message
    );
}

#[test]
fn an_empty_lookup_or_stream_gives_the_output_schema() {
    let config = json!({"lookup": "users", "on": ["user_id"]});
    let out = join(config.clone(), workouts(), users().slice(0, 0)).unwrap();
    assert_eq!((out.num_rows(), out.num_columns()), (0, 11));
    let left = json!({"lookup": "users", "on": ["user_id"], "type": "left"});
    let out = join(left, workouts(), users().slice(0, 0)).unwrap();
    assert_eq!(out.num_rows(), 5);
    assert_eq!(out.column_by_name("city").unwrap().null_count(), 5);
    let out = join(config, workouts().slice(0, 0), users()).unwrap();
    assert_eq!((out.num_rows(), out.num_columns()), (0, 11));
}

#[test]
fn config_errors_name_the_key_and_ports_follow_the_lookup() {
    let key = |config| Harness::<Join>::new(config).unwrap_err().key;
    assert_eq!(key(json!({})).as_deref(), Some("(root)"));
    assert_eq!(key(json!({"on": []})).as_deref(), Some("on"));
    assert_eq!(key(json!({"on": [1]})).as_deref(), Some("on[0]"));
    assert_eq!(
        key(json!({"on": ["k"], "type": "outer"})).as_deref(),
        Some("type")
    );
    assert_eq!(
        key(json!({"on": ["k"], "lookup": "in"})).as_deref(),
        Some("lookup")
    );
    assert_eq!(
        key(json!({"on": ["k"], "how": "left"})).as_deref(),
        Some("how")
    );
    let twice = json!({"on": ["k"], "select": ["a", {"column": "b", "as": "a"}]});
    assert_eq!(key(twice).as_deref(), Some("select[1]"));
    let plugin = Harness::<Join>::new(json!({"on": ["user_id"], "lookup": "users"})).unwrap();
    let inputs: Vec<_> = plugin
        .ports()
        .inputs
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(inputs, ["in", "users"]);
}
