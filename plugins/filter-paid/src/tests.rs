//! Unit tests of the silver filter, run natively through the SDK harness.

use super::*;
use weir_sdk::arrow_array::builder::StructBuilder;
use weir_sdk::testing::Harness;

fn orders(rows: &[(&str, Option<&str>, Option<i64>)]) -> RecordBatch {
    let customer_fields = Fields::from(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("tier", DataType::Utf8, true),
    ]);
    let mut customer = StructBuilder::from_fields(customer_fields.clone(), rows.len());
    for (_, _, id) in rows {
        customer
            .field_builder::<Int64Builder>(0)
            .unwrap()
            .append_option(*id);
        customer
            .field_builder::<StringBuilder>(1)
            .unwrap()
            .append_value("gold");
        customer.append(id.is_some());
    }
    let event_ids: StringArray = rows.iter().map(|(e, _, _)| Some(*e)).collect();
    let statuses: StringArray = rows.iter().map(|(_, s, _)| *s).collect();
    let schema = Schema::new(vec![
        Field::new("event_id", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("customer", DataType::Struct(customer_fields), true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(event_ids),
            Arc::new(statuses),
            Arc::new(customer.finish()),
        ],
    )
    .unwrap()
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = batch.column_by_name(column).unwrap().as_string::<i32>();
    array.iter().map(|s| s.map(str::to_string)).collect()
}

#[test]
fn keeps_paid_drops_later_duplicates_and_flattens() {
    let input = orders(&[
        ("e1", Some("PAID"), Some(1)),
        ("e2", Some("NEW"), Some(2)),
        ("e1", Some("PAID"), Some(9)),
        ("e3", None, Some(3)),
        ("e4", Some("PAID"), None),
        ("e5", Some("paid"), Some(5)),
    ]);
    let config =
        json!({"flatten": [{"path": "customer.id"}, {"path": "customer.tier", "as": "tier"}]});
    let mut plugin = Harness::<FilterPaid>::new(config).unwrap();
    let out = plugin.run(Inputs::new().with("in", input)).unwrap();
    let out = out.get("out").unwrap();
    let names: Vec<_> = out
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names, vec!["event_id", "status", "customer_id", "tier"]);
    assert_eq!(
        strings(out, "event_id"),
        vec![Some("e1".into()), Some("e4".into())]
    );
    let ids = out
        .column_by_name("customer_id")
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!(ids.iter().collect::<Vec<_>>(), vec![Some(1), None]);
    assert!(
        out.column_by_name("tier").unwrap().is_null(1),
        "a null parent struct reads as null"
    );
}

#[test]
fn a_duplicate_of_a_filtered_row_is_kept() {
    let input = orders(&[
        ("e1", Some("PENDING"), Some(1)),
        ("e1", Some("PAID"), Some(1)),
    ]);
    let mut plugin = Harness::<FilterPaid>::new(json!({})).unwrap();
    let out = plugin.run(Inputs::new().with("in", input)).unwrap();
    assert_eq!(
        strings(out.get("out").unwrap(), "status"),
        vec![Some("PAID".into())]
    );
}

#[test]
fn keep_flattened_struct_and_disable_dedupe() {
    let input = orders(&[
        ("e1", Some("PAID"), Some(1)),
        ("e1", Some("SHIPPED"), Some(1)),
    ]);
    let config = json!({"keep": ["PAID", "SHIPPED"], "dedupe_on": null, "drop_flattened": false,
                        "flatten": [{"path": "customer.id"}]});
    let mut plugin = Harness::<FilterPaid>::new(config).unwrap();
    let out = plugin.run(Inputs::new().with("in", input)).unwrap();
    let out = out.get("out").unwrap();
    assert_eq!(out.num_rows(), 2);
    assert_eq!(out.schema().field(2).name(), "customer");
    assert_eq!(out.schema().field(3).name(), "customer_id");
}

#[test]
fn bad_config_and_bad_input_are_named() {
    let err = Harness::<FilterPaid>::new(json!({"flatten": [{"path": "customer"}]})).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("flatten[0].path"));
    let err = Harness::<FilterPaid>::new(json!({"keep": "PAID"})).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("keep"));

    let mut plugin =
        Harness::<FilterPaid>::new(json!({"flatten": [{"path": "customer.email"}]})).unwrap();
    let err = plugin
        .run(Inputs::new().with("in", orders(&[("e1", Some("PAID"), Some(1))])))
        .unwrap_err();
    assert!(err.message.contains("`customer.email` is missing"), "{err}");
    let mut plugin = Harness::<FilterPaid>::new(json!({"status_column": "state"})).unwrap();
    let err = plugin
        .run(Inputs::new().with("in", orders(&[])))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput);
    assert!(err.message.contains("`state` is missing"), "{err}");
}
