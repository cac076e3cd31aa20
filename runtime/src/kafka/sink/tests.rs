//! Encoding rows as messages: keys, JSON values, tombstones, headers.

use super::*;
use crate::pipeline::spec::KafkaConnection;
use arrow::array::{Int64Array, StringArray, StructArray};
use arrow::datatypes::{Field, Fields};
use std::sync::Arc;

fn sink(key: Option<&str>, headers: &[(&str, &str)]) -> KafkaSink {
    KafkaSink {
        name: "profiles".into(),
        from: PortRef::Stage {
            stage: 0,
            port: "out".into(),
        },
        topic: "profiles".into(),
        key: key.map(String::from),
        value: "profile".into(),
        headers: headers
            .iter()
            .map(|(h, c)| (h.to_string(), c.to_string()))
            .collect(),
        partitions: 1,
        connection: KafkaConnection {
            brokers: "127.0.0.1:1".into(),
            properties: Default::default(),
            connect_timeout: Duration::from_secs(1),
        },
    }
}

fn profiles() -> RecordBatch {
    let fields = Fields::from(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("age", DataType::Int64, true),
    ]);
    let record = StructArray::try_new(
        fields,
        vec![
            Arc::new(StringArray::from(vec![Some("Ann \"A\""), None, Some("x")])) as ArrayRef,
            Arc::new(Int64Array::from(vec![
                Some(9_007_199_254_740_993),
                Some(1),
                None,
            ])),
        ],
        Some(vec![true, false, true].into()),
    )
    .unwrap();
    RecordBatch::try_from_iter([
        (
            "user_id",
            Arc::new(Int64Array::from(vec![-7, 2, 3])) as ArrayRef,
        ),
        ("profile", Arc::new(record) as ArrayRef),
        (
            "source",
            Arc::new(StringArray::from(vec![Some("users"), None, Some("tags")])) as ArrayRef,
        ),
    ])
    .unwrap()
}

#[test]
fn rows_become_keyed_json_messages_with_tombstones_for_null_records() {
    let messages = encode(
        &sink(Some("user_id"), &[("source", "source")]),
        &profiles(),
        4,
        10,
    )
    .unwrap();
    let text = |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8(b.clone()).unwrap());
    assert_eq!(text(&messages[0].key).as_deref(), Some("-7"));
    // Exact integers (beyond 2^53), escaped text, explicit nulls.
    assert_eq!(
        text(&messages[0].value).as_deref(),
        Some(r#"{"name":"Ann \"A\"","age":9007199254740993}"#)
    );
    assert_eq!(messages[1].value, None, "a null record is a tombstone");
    assert_eq!(text(&messages[1].key).as_deref(), Some("2"));
    assert_eq!(
        text(&messages[2].value).as_deref(),
        Some(r#"{"name":"x","age":null}"#)
    );
    let headers: Vec<(String, Option<String>)> = messages[1]
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    assert_eq!(
        headers,
        [
            ("source".to_string(), None),
            ("weir-epoch".to_string(), Some("4".to_string())),
            ("weir-seq".to_string(), Some("11".to_string())),
        ]
    );
    // The same rows encode to the same bytes (a replay is byte-identical).
    assert_eq!(
        messages,
        encode(
            &sink(Some("user_id"), &[("source", "source")]),
            &profiles(),
            4,
            10
        )
        .unwrap()
    );
}

#[test]
fn unusable_columns_are_named() {
    let error = encode(&sink(Some("nope"), &[]), &profiles(), 1, 0).unwrap_err();
    assert_eq!(error, "the port has no column `nope`");
    let mut as_value = sink(None, &[]);
    as_value.value = "user_id".into();
    let error = encode(&as_value, &profiles(), 1, 0).unwrap_err();
    assert!(
        error.contains("column `user_id` has type Int64; a value must be text, bytes or a struct"),
        "{error}"
    );
    let error = encode(&sink(None, &[("h", "user_id")]), &profiles(), 1, 0).unwrap_err();
    assert!(error.contains("must be text or bytes"), "{error}");
    assert!(key_type(&DataType::UInt8) && !key_type(&DataType::Float64));
    assert!(value_type(&DataType::Binary) && !value_type(&DataType::Int64));
}
