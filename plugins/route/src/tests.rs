//! Unit tests of the router, run natively through the SDK harness.

use super::*;
use weir_sdk::testing::Harness;

fn multiplex(topics: &[Option<&str>]) -> RecordBatch {
    let offsets: ArrayRef = Arc::new(Int64Array::from_iter_values(0..topics.len() as i64));
    let topics: ArrayRef = Arc::new(StringArray::from(topics.to_vec()));
    RecordBatch::try_from_iter([("topic", topics), ("offset", offsets)]).unwrap()
}

fn offsets(outputs: &Outputs, port: &str) -> Vec<i64> {
    let batch = outputs
        .get(port)
        .unwrap_or_else(|| panic!("no port {port}"));
    let column = batch.column_by_name("offset").unwrap();
    column.as_primitive::<Int64Type>().values().to_vec()
}

fn router(config: weir_sdk::serde_json::Value) -> Result<Harness<Router>, PluginError> {
    Harness::<Router>::new(config)
}

use std::sync::Arc;
use weir_sdk::arrow_array::cast::AsArray;

#[test]
fn each_row_goes_to_exactly_one_port_in_input_order() {
    let mut plugin =
        router(json!({"column": "topic", "routes": ["user_info", "workout", "bpm"]})).unwrap();
    let batch = multiplex(&[
        Some("bpm"),
        Some("user_info"),
        None,
        Some("workout"),
        Some("user_info"),
        Some("USER_INFO"),
        Some("bpm"),
    ]);
    let out = plugin.run(Inputs::new().with("in", batch.clone())).unwrap();
    assert_eq!(offsets(&out, "user_info"), [1, 4]);
    assert_eq!(offsets(&out, "workout"), [3]);
    assert_eq!(offsets(&out, "bpm"), [0, 6]);
    // Null and a value that differs in case match no route.
    assert_eq!(offsets(&out, UNMATCHED_PORT), [2, 5]);
    for (_, rows) in out.iter() {
        assert_eq!(
            rows.schema(),
            batch.schema(),
            "routed rows keep every column"
        );
    }
}

#[test]
fn a_route_may_name_its_port() {
    let config = json!({"column": "topic", "routes": [{"value": "user-info", "port": "users"}]});
    let mut plugin = router(config).unwrap();
    let names: Vec<String> = plugin
        .ports()
        .outputs
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names, ["users", UNMATCHED_PORT]);
    let out = plugin
        .run(Inputs::new().with("in", multiplex(&[Some("user-info"), Some("users")])))
        .unwrap();
    assert_eq!(offsets(&out, "users"), [0]);
    assert_eq!(offsets(&out, UNMATCHED_PORT), [1]);
}

#[test]
fn bytes_columns_route_like_text() {
    let topics: ArrayRef = Arc::new(BinaryArray::from(vec![
        Some(b"bpm".as_ref()),
        Some(b"\xff".as_ref()),
    ]));
    let offsets_column: ArrayRef = Arc::new(Int64Array::from(vec![0, 1]));
    let batch =
        RecordBatch::try_from_iter([("topic", topics), ("offset", offsets_column)]).unwrap();
    let mut plugin = router(json!({"column": "topic", "routes": ["bpm"]})).unwrap();
    let out = plugin.run(Inputs::new().with("in", batch)).unwrap();
    assert_eq!(offsets(&out, "bpm"), [0]);
    assert_eq!(offsets(&out, UNMATCHED_PORT), [1]);
}

#[test]
fn bad_configs_name_the_route() {
    let cases = [
        (
            json!({"column": "t", "routes": ["a", "a"]}),
            "routes[1]",
            "already routed",
        ),
        (
            json!({"column": "t", "routes": ["unmatched"]}),
            "routes[0]",
            "reserved",
        ),
        (
            json!({"column": "t", "routes": ["user info"]}),
            "routes[0]",
            "cannot name a port",
        ),
        (
            json!({"column": "t", "routes": ["a", {"value": "b", "port": "a"}]}),
            "routes[1]",
            "already routed",
        ),
    ];
    for (config, key, words) in cases {
        let error = router(config.clone())
            .err()
            .unwrap_or_else(|| panic!("{config} was accepted"));
        assert_eq!(error.key.as_deref(), Some(key), "{config}: {error:?}");
        assert!(error.message.contains(words), "{config}: {}", error.message);
    }
}

#[test]
fn a_missing_or_numeric_column_is_bad_input_naming_it() {
    let mut plugin = router(json!({"column": "offset", "routes": ["1"]})).unwrap();
    let error = plugin
        .run(Inputs::new().with("in", multiplex(&[Some("a")])))
        .unwrap_err();
    assert_eq!(error.kind, weir_sdk::ErrorKind::BadInput);
    assert!(error.message.contains("`offset`"), "{}", error.message);
    let mut plugin = router(json!({"column": "partition", "routes": ["1"]})).unwrap();
    let error = plugin
        .run(Inputs::new().with("in", multiplex(&[Some("a")])))
        .unwrap_err();
    assert!(error.message.contains("partition"), "{}", error.message);
}
