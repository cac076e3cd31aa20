//! Unit tests of the gold aggregator, run natively through the SDK harness.

use super::*;
use weir_sdk::arrow_array::cast::AsArray;
use weir_sdk::testing::Harness;

/// (category, quantity, unit price, event time in seconds).
type OrderRow<'a> = (Option<&'a str>, Option<i32>, Option<f64>, Option<i64>);

fn orders(rows: &[OrderRow<'_>]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("category", DataType::Utf8, true),
        Field::new("quantity", DataType::Int32, true),
        Field::new("unit_price", DataType::Float64, true),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]);
    let categories: StringArray = rows.iter().map(|r| r.0).collect();
    let quantities: Int32Array = rows.iter().map(|r| r.1).collect();
    let prices: Float64Array = rows.iter().map(|r| r.2).collect();
    let times = TimestampMicrosecondArray::from(
        rows.iter()
            .map(|r| r.3.map(|s| s * 1_000_000))
            .collect::<Vec<_>>(),
    )
    .with_timezone("UTC");
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(categories),
            Arc::new(quantities),
            Arc::new(prices),
            Arc::new(times),
        ],
    )
    .unwrap()
}

fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    batch
        .column_by_name(column)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_string))
        .collect()
}

#[test]
fn revenue_by_category_in_first_seen_order_with_nulls_as_one_group() {
    let config = json!({"group_by": ["category"], "aggregates": [
        {"name": "revenue", "function": "sum", "of": "quantity * unit_price"},
        {"name": "orders", "function": "count"},
        {"name": "units", "function": "sum", "of": "quantity"},
        {"name": "largest", "function": "max", "of": "quantity"}]});
    let mut plugin = Harness::<Aggregate>::new(config).unwrap();
    let input = orders(&[
        (Some("Home"), Some(2), Some(10.0), Some(0)),
        (Some("Kitchen"), Some(1), Some(7.5), Some(0)),
        (None, Some(1), Some(1.0), Some(0)),
        (Some("Home"), Some(3), Some(1.5), Some(0)),
        (None, None, Some(2.0), Some(0)),
    ]);
    let out = plugin.run(Inputs::new().with("in", input)).unwrap();
    let out = out.get("out").unwrap();
    assert_eq!(
        strings(out, "category"),
        [Some("Home".into()), Some("Kitchen".into()), None]
    );
    let revenue: Vec<_> = out
        .column_by_name("revenue")
        .unwrap()
        .as_primitive::<Float64Type>()
        .iter()
        .collect();
    assert_eq!(revenue, [Some(24.5), Some(7.5), Some(1.0)]);
    let orders: Vec<_> = out
        .column_by_name("orders")
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect();
    assert_eq!(orders, [Some(2), Some(1), Some(2)]);
    let units = out.column_by_name("units").unwrap();
    assert_eq!(
        units.data_type(),
        &DataType::Int64,
        "integer measures stay integers"
    );
    assert_eq!(
        units.as_primitive::<Int64Type>().iter().collect::<Vec<_>>(),
        [Some(5), Some(1), Some(1)]
    );
    let largest: Vec<_> = out
        .column_by_name("largest")
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect();
    assert_eq!(largest, [Some(3), Some(1), Some(1)]);
}

#[test]
fn tumbling_windows_and_null_times_go_to_rejected() {
    let config = json!({"window": {"column": "event_time", "size": "1h"},
        "aggregates": [{"name": "orders", "function": "count"}]});
    let mut plugin = Harness::<Aggregate>::new(config).unwrap();
    let input = orders(&[
        (Some("a"), Some(1), Some(1.0), Some(3599)),
        (Some("a"), Some(1), Some(1.0), Some(3600)),
        (Some("a"), Some(1), Some(1.0), Some(10)),
        (Some("a"), Some(1), Some(1.0), None),
    ]);
    let out = plugin.run(Inputs::new().with("in", input)).unwrap();
    let rows = out.get("out").unwrap();
    let starts: Vec<_> = rows
        .column_by_name("window_start")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect();
    assert_eq!(starts, [Some(0), Some(3_600_000_000)]);
    let counts: Vec<_> = rows
        .column_by_name("orders")
        .unwrap()
        .as_primitive::<Int64Type>()
        .iter()
        .collect();
    assert_eq!(counts, [Some(2), Some(1)]);
    assert_eq!(out.get(REJECTED_PORT).unwrap().num_rows(), 1);
}

#[test]
fn an_empty_batch_gives_the_output_schema() {
    let config = json!({"group_by": ["category"], "aggregates": [{"name": "revenue", "function": "sum", "of": "quantity * unit_price"}]});
    let mut plugin = Harness::<Aggregate>::new(config).unwrap();
    let out = plugin.run(Inputs::new().with("in", orders(&[]))).unwrap();
    let out = out.get("out").unwrap();
    assert_eq!(out.num_rows(), 0);
    assert_eq!(out.schema().field(1).data_type(), &DataType::Float64);
}

#[test]
fn bad_config_and_bad_input_are_named() {
    let err = Harness::<Aggregate>::new(json!({"aggregates": [{"name": "x", "function": "sum"}]}))
        .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("aggregates[0].of"));
    let err = Harness::<Aggregate>::new(
        json!({"aggregates": [{"name": "x", "function": "sum", "of": "a +"}]}),
    )
    .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("aggregates[0].of"));
    let err = Harness::<Aggregate>::new(json!({"window": {"column": "t", "size": "1 fortnight"},
        "aggregates": [{"name": "n", "function": "count"}]}))
    .unwrap_err();
    assert_eq!(err.key.as_deref(), Some("window.size"));
    let mut plugin = Harness::<Aggregate>::new(
        json!({"aggregates": [{"name": "s", "function": "sum", "of": "category"}]}),
    )
    .unwrap();
    let err = plugin
        .run(Inputs::new().with("in", orders(&[(Some("a"), Some(1), Some(1.0), Some(1))])))
        .unwrap_err();
    assert!(err.message.contains("`category`"), "{}", err.message);
}

/// Issue 10: rows 9223372036854775000 and 1000 in one group summed to
/// -9223372036854775616. An integer sum beyond 64 bits is an error naming the
/// aggregate, the group and the row, never a wrapped value.
#[test]
fn regression_an_overflowing_integer_sum_is_an_error_naming_the_group() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("category", DataType::Utf8, true),
        Field::new("n", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["safe", "big", "safe", "big"])),
            Arc::new(Int64Array::from(vec![
                1,
                9_223_372_036_854_775_000,
                2,
                1_000,
            ])),
        ],
    )
    .unwrap();
    let config = json!({"group_by": ["category"], "aggregates": [{"name": "total", "function": "sum", "of": "n"}]});
    let mut plugin = Harness::<Aggregate>::new(config).unwrap();
    let err = plugin
        .run(Inputs::new().with("in", batch.clone()))
        .unwrap_err();
    assert_eq!(
        err.message,
        "`total` (sum of `n`) overflows a 64-bit integer in group category=\"big\": 9223372036854775000 + 1000"
    );
    assert_eq!(err.row, Some(3));

    // Negating i64::MIN and integer literals beyond 64 bits are errors too.
    let config = json!({"aggregates": [{"name": "neg", "function": "sum", "of": "-n"}]});
    let mut plugin = Harness::<Aggregate>::new(config).unwrap();
    let min = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![7, i64::MIN]))],
    )
    .unwrap();
    let err = plugin.run(Inputs::new().with("in", min)).unwrap_err();
    assert_eq!(err.message, "integer overflow computing `-n`");
    assert_eq!(err.row, Some(1));
    let err = Harness::<Aggregate>::new(
        json!({"aggregates": [{"name": "x", "function": "sum", "of": "n * 99999999999999999999"}]}),
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("`99999999999999999999` is not a 64-bit integer"),
        "{}",
        err.message
    );
}

/// Integer literals are exact: `n + 9007199254740993` is not rounded through a double.
#[test]
fn integer_literals_are_exact() {
    let config =
        json!({"aggregates": [{"name": "x", "function": "max", "of": "n + 9007199254740993"}]});
    let mut plugin = Harness::<Aggregate>::new(config).unwrap();
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![0]))],
    )
    .unwrap();
    let out = plugin.run(Inputs::new().with("in", batch)).unwrap();
    let out = out.get("out").unwrap();
    assert_eq!(
        out.column(0).as_primitive::<Int64Type>().value(0),
        9_007_199_254_740_993
    );
}
