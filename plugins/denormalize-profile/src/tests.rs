//! Unit tests of the profile builder, run natively through the SDK harness.

use super::*;
use weir_sdk::arrow_array::cast::AsArray;
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

fn plugin() -> Harness<Denormalize> {
    Harness::new(json!({
        "key": "user_id",
        "profile": "users",
        "lists": [
            {"port": "accounts", "order_by": ["opened"]},
            {"port": "tags"}
        ]
    }))
    .unwrap()
}

fn users() -> RecordBatch {
    batch(vec![
        ("user_id", int(&[Some(1), Some(2)])),
        ("name", text(&[Some("Ann"), Some("Bo")])),
    ])
}

fn accounts() -> RecordBatch {
    batch(vec![
        ("user_id", int(&[Some(1), Some(2), Some(1), Some(1)])),
        (
            "account",
            text(&[
                Some("a-late"),
                Some("b"),
                Some("a-early"),
                Some("a-undated"),
            ]),
        ),
        ("opened", int(&[Some(20), Some(5), Some(10), None])),
    ])
}

fn tags() -> RecordBatch {
    batch(vec![
        ("user_id", int(&[Some(2), Some(2), Some(9)])),
        ("tag", text(&[Some("vip"), Some("beta"), Some("stray")])),
    ])
}

fn changes(ids: &[Option<i64>]) -> RecordBatch {
    let tables: Vec<Option<&str>> = ids.iter().map(|_| Some("users")).collect();
    batch(vec![("user_id", int(ids)), ("_table", text(&tables))])
}

/// `key: name [accounts] [tags]`, or `key: null`, per output row.
fn render(out: &RecordBatch) -> Vec<String> {
    let keys = out.column(0).as_primitive::<Int64Type>();
    let record = out.column_by_name("profile").unwrap().as_struct();
    let names = record.column_by_name("name").unwrap().as_string::<i32>();
    let list = |field: &str, column: &'static str| {
        let lists = record.column_by_name(field).unwrap().as_list::<i32>();
        move |row: usize| {
            let items = lists.value(row);
            let items = items.as_struct();
            let values = items.column_by_name(column).unwrap().as_string::<i32>();
            (0..items.len())
                .map(|i| values.value(i).to_string())
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let (accounts, tags) = (list("accounts", "account"), list("tags", "tag"));
    (0..out.num_rows())
        .map(|r| match record.is_valid(r) {
            true => format!(
                "{}: {} [{}] [{}]",
                keys.value(r),
                names.value(r),
                accounts(r),
                tags(r)
            ),
            false => format!("{}: null", keys.value(r)),
        })
        .collect()
}

fn run(plugin: &mut Harness<Denormalize>, input: RecordBatch, users: RecordBatch) -> Outputs {
    plugin
        .run(
            Inputs::new()
                .with("in", input)
                .with("users", users)
                .with("accounts", accounts())
                .with("tags", tags()),
        )
        .unwrap()
}

#[test]
fn one_record_per_changed_key_in_first_seen_order_with_ordered_lists_and_null_for_gone_keys() {
    let out = run(
        &mut plugin(),
        changes(&[Some(2), Some(1), Some(2), Some(3), None]),
        users(),
    );
    assert_eq!(
        render(out.get("out").unwrap()),
        [
            "2: Bo [b] [beta,vip]",
            // order_by `opened` ascending, nulls last.
            "1: Ann [a-early,a-late,a-undated] []",
            // Not in the profile table: deleted.
            "3: null",
        ]
    );
    let rejected = out.get(REJECTED_PORT).unwrap();
    assert_eq!(rejected.num_rows(), 1);
    assert_eq!(rejected.column(0).as_primitive::<UInt64Type>().value(0), 4);
    let schema = out.get("out").unwrap().schema();
    assert!(!schema.field(0).is_nullable(), "the key is never null");
    let DataType::Struct(fields) = schema.field(1).data_type() else {
        panic!("a struct record")
    };
    let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["user_id", "name", "accounts", "tags"]);
}

#[test]
fn the_same_inputs_in_another_row_order_give_the_same_lists() {
    let mut shuffled = plugin();
    let reversed = |b: RecordBatch| {
        let order = UInt32Array::from((0..b.num_rows() as u32).rev().collect::<Vec<_>>());
        weir_sdk::arrow_select::take::take_record_batch(&b, &order).unwrap()
    };
    let out = shuffled
        .run(
            Inputs::new()
                .with("in", changes(&[Some(2), Some(1)]))
                .with("users", reversed(users()))
                .with("accounts", reversed(accounts()))
                .with("tags", reversed(tags())),
        )
        .unwrap();
    assert_eq!(
        render(out.get("out").unwrap()),
        [
            "2: Bo [b] [beta,vip]",
            "1: Ann [a-early,a-late,a-undated] []"
        ]
    );
}

#[test]
fn a_key_the_profile_table_holds_twice_is_rejected_and_the_others_go_on() {
    let twice = batch(vec![
        ("user_id", int(&[Some(1), Some(2), Some(2)])),
        ("name", text(&[Some("Ann"), Some("Bo"), Some("Bob")])),
    ]);
    let out = run(&mut plugin(), changes(&[Some(2), Some(1), Some(2)]), twice);
    assert_eq!(
        render(out.get("out").unwrap()),
        ["1: Ann [a-early,a-late,a-undated] []"]
    );
    let rejected = out.get(REJECTED_PORT).unwrap();
    let rows: Vec<u64> = rejected
        .column(0)
        .as_primitive::<UInt64Type>()
        .values()
        .to_vec();
    assert_eq!(rows, [0, 2]);
    let reason = rejected
        .column_by_name("reason")
        .unwrap()
        .as_string::<i32>()
        .value(0);
    assert_eq!(
        reason,
        "`users` holds 2 rows for this `user_id`; it must hold one per key"
    );
}

#[test]
fn an_empty_epoch_gives_an_empty_batch_of_the_record_schema() {
    let empty = |b: RecordBatch| b.slice(0, 0);
    let out = plugin()
        .run(
            Inputs::new()
                .with("in", empty(changes(&[Some(1)])))
                .with("users", empty(users()))
                .with("accounts", empty(accounts()))
                .with("tags", empty(tags())),
        )
        .unwrap();
    let out = out.get("out").unwrap();
    assert_eq!(out.num_rows(), 0);
    assert_eq!(out.schema().field(1).name(), "profile");
}

#[test]
fn reserved_or_repeated_ports_and_missing_columns_are_named() {
    let error = Harness::<Denormalize>::new(json!({"key": "id", "profile": "users",
        "lists": [{"port": "users"}]}))
    .err()
    .unwrap();
    assert_eq!(error.kind, ErrorKind::BadConfig);
    assert!(
        error
            .message
            .contains("`users` is reserved or already used"),
        "{}",
        error.message
    );
    let mut plugin = Harness::<Denormalize>::new(json!({"key": "id", "profile": "users"})).unwrap();
    let error = plugin
        .run(
            Inputs::new()
                .with("in", changes(&[Some(1)]))
                .with("users", users()),
        )
        .unwrap_err();
    assert!(error.message.contains("`id`"), "{}", error.message);
}
