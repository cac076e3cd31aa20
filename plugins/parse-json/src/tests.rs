//! Unit tests of the parser, run natively through the SDK harness.

use super::*;
use weir_sdk::arrow_array::cast::AsArray;
use weir_sdk::fields::ValueType;
use weir_sdk::testing::{Harness, binary_batch};

fn orders_config() -> serde_json::Value {
    json!({"fields": [
        {"name": "event_id", "type": "string", "required": true},
        {"name": "qty", "type": "int"},
        {"name": "amount", "type": "double"},
        {"name": "paid", "type": "boolean"},
        {"name": "ts", "type": "timestamp"},
        {"name": "day", "type": "date"},
        {"name": "customer", "type": "struct", "fields": [
            {"name": "id", "type": "long", "required": true},
            {"name": "name", "type": "string"}]},
        {"name": "tags", "type": "array", "items": {"type": "string"}}
    ]})
}

fn run(config: serde_json::Value, rows: &[&[u8]]) -> (RecordBatch, RecordBatch) {
    let mut plugin = Harness::<ParseJson>::new(config).expect("valid config");
    let out = plugin
        .run(Inputs::new().with("in", binary_batch("value", rows)))
        .expect("process");
    (
        out.get("out").unwrap().clone(),
        out.get(REJECTED_PORT).unwrap().clone(),
    )
}

fn reasons(rejected: &RecordBatch) -> Vec<(u64, String)> {
    let rows = rejected.column(0).as_primitive::<UInt64Type>();
    let reasons = rejected.column(3).as_string::<i32>();
    rows.values()
        .iter()
        .zip(reasons.iter())
        .map(|(r, s)| (*r, s.unwrap().to_string()))
        .collect()
}

#[test]
fn parses_every_declared_type() {
    let row = br#"{"event_id":"e1","qty":2,"amount":9.5,"paid":true,"ts":"2024-03-01T10:00:00Z",
                   "day":"2024-03-01","customer":{"id":7,"name":"Ann"},"tags":["a","b"],"extra":1}"#;
    let (out, rejected) = run(orders_config(), &[row]);
    assert_eq!(rejected.num_rows(), 0, "{:?}", reasons(&rejected));
    assert_eq!(out.num_rows(), 1);
    assert_eq!(out.column(0).as_string::<i32>().value(0), "e1");
    assert_eq!(out.column(1).as_primitive::<Int32Type>().value(0), 2);
    assert_eq!(out.column(2).as_primitive::<Float64Type>().value(0), 9.5);
    assert!(out.column(3).as_boolean().value(0));
    assert_eq!(
        out.column(4)
            .as_primitive::<TimestampMicrosecondType>()
            .value(0),
        1_709_287_200_000_000
    );
    assert_eq!(out.column(5).as_primitive::<Date32Type>().value(0), 19_783);
    let customer = out.column(6).as_struct();
    assert_eq!(customer.column(0).as_primitive::<Int64Type>().value(0), 7);
    let tags = out.column(7).as_list::<i32>().value(0);
    assert_eq!(
        tags.as_string::<i32>().iter().collect::<Vec<_>>(),
        vec![Some("a"), Some("b")]
    );
}

#[test]
fn optional_fields_may_be_missing_or_null() {
    let (out, rejected) = run(
        orders_config(),
        &[br#"{"event_id":"e1","customer":null,"qty":null}"#],
    );
    assert_eq!(rejected.num_rows(), 0);
    assert!(out.column(1).is_null(0));
    assert!(out.column(6).is_null(0));
    assert!(out.column(7).is_null(0));
}

#[test]
fn every_bad_row_is_rejected_with_a_reason_naming_the_field() {
    let rows: Vec<&[u8]> = vec![
        br#"{"event_id":"ok"}"#,
        br#"{"event_id": "e2""#,
        br#"{"qty": 1}"#,
        br#"{"event_id":"e4","qty":"two"}"#,
        br#"{"event_id":"e5","qty":3000000000}"#,
        br#"{"event_id":"e6","ts":"yesterday"}"#,
        br#"{"event_id":"e7","customer":{"name":"x"}}"#,
        br#"[1,2]"#,
        br#"{"event_id":"e9","tags":["a",3]}"#,
        br#"{"event_id":null}"#,
        br#"{"event_id":"e11","qty":1.5}"#,
    ];
    let (out, rejected) = run(orders_config(), &rows);
    assert_eq!(out.num_rows(), 1);
    let got = reasons(&rejected);
    let expect_prefixes = [
        (1, "invalid JSON: EOF while parsing an object"),
        (2, "required field `event_id` is missing"),
        (3, "field `qty`: expected a 32-bit integer, found a string"),
        (4, "field `qty`: 3000000000 does not fit a 32-bit integer"),
        (5, "field `ts`: `yesterday` is not an ISO 8601 timestamp"),
        (6, "required field `customer.id` is missing"),
        (7, "expected a JSON object, found an array"),
        (8, "field `tags[1]`: expected a string, found a number"),
        (9, "required field `event_id` is null"),
        (10, "field `qty`: 1.5 is not a 32-bit integer"),
    ];
    assert_eq!(got.len(), expect_prefixes.len(), "{got:?}");
    for ((row, reason), (want_row, want)) in got.iter().zip(expect_prefixes) {
        assert_eq!(*row, want_row);
        assert!(
            reason.starts_with(want),
            "row {row}: {reason:?} should start with {want:?}"
        );
    }
    let fields = rejected.column(2).as_string::<i32>();
    assert_eq!(fields.value(5), "customer.id");
    let raw = rejected.column(1).as_binary::<i32>();
    assert_eq!(raw.value(0), rows[1]);
}

/// Issue 10: `3.0` and `1e1` for an `int32` field were rejected as "3 is not
/// a 32-bit integer", quoting a number not in the input. Every form of a
/// whole number is that integer, read from its digits (2^53 + 1 survives);
/// anything else is rejected quoting the literal as written.
#[test]
fn regression_whole_numbers_in_any_json_form_are_integers() {
    let config = json!({"fields": [
        {"name": "q", "type": "int32"},
        {"name": "big", "type": "int64"},
        {"name": "ms", "type": "timestamp", "format": "epoch_millis"}
    ]});
    let rows: Vec<&[u8]> = vec![
        br#"{"q": 3.0, "big": 9007199254740993.0, "ms": 1.5e3}"#,
        br#"{"q": 1e1, "big": 9223372036854775807, "ms": 0}"#,
        br#"{"q": 30e-1, "big": -0, "ms": 2000E-3}"#,
        br#"{"q": 2.50e0}"#,
        br#"{"q": 3000000000.0}"#,
        br#"{"big": 9.3e18}"#,
        br#"{"ms": 1.5}"#,
        br#"{"q": "3"}"#,
        br#"{"q": null, "big": 1E+2}"#,
    ];
    let (out, rejected) = run(config, &rows);
    let q = out.column(0).as_primitive::<Int32Type>();
    let big = out.column(1).as_primitive::<Int64Type>();
    assert_eq!(out.num_rows(), 4, "{:?}", reasons(&rejected));
    assert_eq!(
        q.iter().collect::<Vec<_>>(),
        [Some(3), Some(10), Some(3), None]
    );
    assert_eq!(
        big.iter().collect::<Vec<_>>(),
        [
            Some(9_007_199_254_740_993),
            Some(i64::MAX),
            Some(0),
            Some(100)
        ]
    );
    let ms = out
        .column(2)
        .as_primitive::<weir_sdk::arrow_array::types::TimestampMicrosecondType>();
    assert_eq!(ms.value(0), 1_500_000);
    assert_eq!(ms.value(2), 2_000);
    assert_eq!(
        reasons(&rejected),
        [
            (3, "field `q`: 2.50e0 is not a 32-bit integer".to_string()),
            (
                4,
                "field `q`: 3000000000.0 does not fit a 32-bit integer".to_string()
            ),
            (
                5,
                "field `big`: 9.3e18 does not fit a 64-bit integer".to_string()
            ),
            (6, "field `ms`: 1.5 is not a whole number".to_string()),
            (
                7,
                "field `q`: expected a 32-bit integer, found a string".to_string()
            ),
        ]
    );
}

#[test]
fn null_values_are_rejected_not_dropped() {
    let batch = RecordBatch::try_from_iter([(
        "value",
        Arc::new(BinaryArray::from_opt_vec(vec![
            None,
            Some(br#"{"event_id":"a"}"#),
        ])) as ArrayRef,
    )])
    .unwrap();
    let mut plugin = Harness::<ParseJson>::new(orders_config()).unwrap();
    let out = plugin.run(Inputs::new().with("in", batch)).unwrap();
    assert_eq!(
        reasons(out.get(REJECTED_PORT).unwrap()),
        vec![(0, "`value` is null".to_string())]
    );
}

#[test]
fn strict_mode_rejects_undeclared_keys() {
    let config = json!({"unknown_fields": "reject", "fields": [{"name": "a", "type": "string"},
        {"name": "s", "type": "struct", "fields": [{"name": "b", "type": "int"}]}]});
    let (_, rejected) = run(config, &[br#"{"a":"x","z":1}"#, br#"{"s":{"b":1,"c":2}}"#]);
    assert_eq!(
        reasons(&rejected),
        vec![
            (0, "unexpected field `z`".to_string()),
            (1, "unexpected field `s.c`".to_string())
        ]
    );
}

#[test]
fn timestamp_formats() {
    let config = json!({"fields": [
        {"name": "iso", "type": "timestamp"},
        {"name": "ms", "type": "timestamp", "format": "epoch_millis"},
        {"name": "s", "type": "timestamp", "format": "epoch_seconds"},
        {"name": "pat", "type": "timestamp", "format": "%d/%m/%Y %H:%M"},
        {"name": "zoned", "type": "timestamp", "format": "%Y-%m-%d %H:%M:%S %z"}]});
    let row = br#"{"iso":"2024-01-01 00:00:01.5","ms":1000,"s":1.25,"pat":"02/01/1970 00:00","zoned":"1970-01-01 01:00:00 +0100"}"#;
    let (out, rejected) = run(config, &[row]);
    assert_eq!(rejected.num_rows(), 0, "{:?}", reasons(&rejected));
    let micros: Vec<i64> = (0..5)
        .map(|i| {
            out.column(i)
                .as_primitive::<TimestampMicrosecondType>()
                .value(0)
        })
        .collect();
    assert_eq!(
        micros,
        vec![
            1_704_067_201_500_000,
            1_000_000,
            1_250_000,
            86_400_000_000,
            0
        ]
    );
}

#[test]
fn config_errors_name_the_key() {
    let cases = [
        (json!({"fields": []}), "fields"),
        (
            json!({"fields": [{"name": "a", "type": "strin"}]}),
            "fields[0].type",
        ),
        (
            json!({"fields": [{"name": "a", "type": "string"}, {"name": "a", "type": "int"}]}),
            "fields[1].name",
        ),
        (
            json!({"fields": [{"name": "a", "type": "struct"}]}),
            "fields[0].fields",
        ),
        (
            json!({"fields": [{"name": "a", "type": "string", "format": "%Y"}]}),
            "fields[0].format",
        ),
        (
            json!({"fields": [{"name": "a", "type": "timestamp", "format": "yyyy-MM-dd"}]}),
            "fields[0].format",
        ),
        (
            json!({"fields": [{"name": "a", "type": "list", "items": {"type": "struct", "fields": [{"type": "int"}]}}]}),
            "fields[0].items.fields[0].name",
        ),
        (
            json!({"fields": [{"name": "a", "type": "string"}], "input": "value"}),
            "input",
        ),
    ];
    for (config, key) in cases {
        let err = Harness::<ParseJson>::new(config.clone())
            .err()
            .unwrap_or_else(|| panic!("{config} should fail"));
        assert_eq!(err.kind, ErrorKind::BadConfig);
        assert_eq!(err.key.as_deref(), Some(key), "{config}: {err}");
    }
}

#[test]
fn a_text_input_column_is_a_bad_input_naming_the_column() {
    let batch = RecordBatch::try_from_iter([(
        "value",
        Arc::new(StringArray::from(vec!["{}"])) as ArrayRef,
    )])
    .unwrap();
    let mut plugin = Harness::<ParseJson>::new(orders_config()).unwrap();
    let err = plugin.run(Inputs::new().with("in", batch)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput);
    assert!(
        err.message
            .contains("`value` has type Utf8, expected Binary"),
        "{err}"
    );
}

/// Regression: rolling back a row rejected inside a struct that was still being
/// filled in left its children one value longer than the struct.
#[test]
fn regression_rejected_row_inside_nested_values_leaves_no_trace() {
    let config = json!({"fields": [
        {"name": "id", "type": "int", "required": true},
        {"name": "s", "type": "struct", "fields": [{"name": "name", "type": "string"}, {"name": "n", "type": "int"}]},
        {"name": "l", "type": "list", "items": {"type": "struct", "fields": [{"name": "x", "type": "string"}]}}]});
    let rows: Vec<&[u8]> = vec![
        br#"{"id":1,"s":{"name":"kept","n":1},"l":[{"x":"a"}]}"#,
        br#"{"id":2,"s":{"name":"gone","n":"bad"}}"#,
        br#"{"id":3,"l":[{"x":"gone"},{"x":7}]}"#,
        br#"{"s":{"name":"gone"},"l":[{"x":"gone"}]}"#,
        br#"{"id":5,"s":{"name":"kept too"},"l":[]}"#,
    ];
    let (out, rejected) = run(config, &rows);
    assert_eq!(rejected.num_rows(), 3, "{:?}", reasons(&rejected));
    let names = out.column(1).as_struct().column(0).as_string::<i32>();
    assert_eq!(
        names.iter().collect::<Vec<_>>(),
        vec![Some("kept"), Some("kept too")]
    );
    let lists = out.column(2).as_list::<i32>();
    assert_eq!(lists.value(0).len(), 1);
    assert_eq!(lists.value(1).len(), 0);
    assert_eq!(
        lists.values().len(),
        1,
        "elements of rejected rows are rolled back"
    );
}

#[test]
fn a_repeated_key_takes_its_last_value() {
    let config = json!({"fields": [{"name": "a", "type": "string"}, {"name": "s", "type": "struct",
        "fields": [{"name": "b", "type": "int"}]}]});
    let (out, rejected) = run(
        config,
        &[br#"{"a":"first","s":{"b":1},"a":"last","s":{"b":2}}"#],
    );
    assert_eq!(rejected.num_rows(), 0);
    assert_eq!(out.column(0).as_string::<i32>().value(0), "last");
    assert_eq!(
        out.column(1)
            .as_struct()
            .column(0)
            .as_primitive::<Int32Type>()
            .value(0),
        2
    );
    assert_eq!(out.column(1).as_struct().column(0).len(), 1);
}

#[test]
fn escaped_strings_and_keys_are_decoded() {
    let config = json!({"fields": [{"name": "a\"b", "type": "string"}]});
    let (out, rejected) = run(config, &[br#"{"a\"b":"line\nbreak \u00e9"}"#]);
    assert_eq!(rejected.num_rows(), 0, "{:?}", reasons(&rejected));
    assert_eq!(
        out.column(0).as_string::<i32>().value(0),
        "line\nbreak \u{e9}"
    );
}

#[test]
fn invalid_utf8_is_rejected_without_spoiling_the_batch() {
    // "é" split across two rows: the batch as a whole is valid UTF-8, each row is not.
    let split_a: &[u8] = b"{\"event_id\":\"a\xc3";
    let split_b: &[u8] = b"\xa9\"}";
    let rows: Vec<&[u8]> = vec![
        br#"{"event_id":"ok"}"#,
        split_a,
        split_b,
        b"{\"event_id\":\"\xff\"}",
        br#"{"event_id":"ok too"}"#,
    ];
    let (out, rejected) = run(orders_config(), &rows);
    assert_eq!(
        out.column(0).as_string::<i32>().iter().collect::<Vec<_>>(),
        vec![Some("ok"), Some("ok too")]
    );
    let got = reasons(&rejected);
    assert_eq!(
        got.iter().map(|(row, _)| *row).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(
        got.iter()
            .all(|(_, reason)| reason.starts_with("invalid JSON")),
        "{got:?}"
    );
}

/// Parses `text` with the fast path and with the full parser; when the fast
/// path accepts the row, both must give the same columns. Returns whether the
/// fast path accepted it, and whether the full parser did.
fn fast_agrees(fields: &[FieldSpec], text: &str, strict: bool) -> (bool, bool) {
    let mut fast_columns = Column::for_fields(fields, 1);
    let accepted = fast::parse_row(text, fields, &mut fast_columns, 0, strict).is_some();
    let mut full_columns = Column::for_fields(fields, 1);
    let full = convert::parse_row(
        convert::RowJson::Text(text),
        fields,
        &mut full_columns,
        0,
        strict,
    );
    if accepted {
        assert!(
            full.is_ok(),
            "fast path accepted {text:?}, full parser: {full:?}"
        );
        let finish = |columns: &mut Vec<Column>| -> Vec<_> {
            columns.iter_mut().map(Column::finish).collect()
        };
        assert_eq!(
            finish(&mut fast_columns),
            finish(&mut full_columns),
            "fast and full parsers differ on {text:?}"
        );
    }
    (accepted, full.is_ok())
}

fn differential_fields() -> Vec<FieldSpec> {
    let mut config = orders_config();
    config["fields"].as_array_mut().unwrap().extend([
        json!({"name": "millis", "type": "timestamp", "format": "epoch_millis"}),
        json!({"name": "big", "type": "long"}),
        json!({"name": "flags", "type": "array", "items": {"type": "boolean", "required": true}}),
    ]);
    let config: Config = serde_json::from_value(config).unwrap();
    weir_sdk::fields::validate_fields(&config.fields, "fields").unwrap()
}

#[test]
fn the_fast_path_agrees_with_the_full_parser_on_tricky_rows() {
    let fields = differential_fields();
    let numbers = [
        "0",
        "-0",
        "7",
        "-12",
        "0.1",
        "-0.0",
        "9.5",
        "1e2",
        "1E-2",
        "-1.5e+3",
        "2.50",
        "1e22",
        "1e23",
        "1e-22",
        "123456789012345",
        "1234567890123456",
        "12345678901234567890",
        "0.30000000000000004",
        "1.7976931348623157e308",
        "5e-324",
        "1e400",
        "01",
        "1.",
        ".5",
        "-",
        "1e",
        "1e+",
        "--1",
        "2147483648",
        "-2147483649",
        "1.0",
    ];
    let mut rows = Vec::new();
    for n in numbers {
        for field in ["qty", "amount", "big", "millis", "event_id"] {
            rows.push(format!(r#"{{"event_id":"e","{field}":{n}}}"#));
        }
    }
    rows.extend(
        [
            r#"{"event_id":"e"}"#,
            r#"  { "event_id" : "e" , "qty" : 1 }  "#,
            "{\"event_id\":\"e\",\n\t\"qty\":\r1}",
            r#"{"event_id":"e\"q"}"#,
            r#"{"event_id":"e\u00e9"}"#,
            r#"{"event_id":"é ü 日本"}"#,
            "{\"event_id\":\"tab\there\"}",
            r#"{"event_id":"a-long-identifier-of-many-bytes-0123456789"}"#,
            r#"{"event_id":"e","event_id":"f"}"#,
            r#"{"event_id":null}"#,
            r#"{"qty":1}"#,
            r#"{}"#,
            r#"[]"#,
            r#""e""#,
            r#"{"event_id":"e",}"#,
            r#"{"event_id":"e"} x"#,
            r#"{"event_id":"e"}{"#,
            r#"{"event_id":"e","paid":true,"tags":["a",null,"b"],"flags":[true,false]}"#,
            r#"{"event_id":"e","flags":[true,null]}"#,
            r#"{"event_id":"e","tags":[]}"#,
            r#"{"event_id":"e","tags":null,"customer":null}"#,
            r#"{"event_id":"e","customer":{"id":7,"name":"Ann","extra":[1,{"x":[]}]}}"#,
            r#"{"event_id":"e","customer":{"name":"Ann"}}"#,
            r#"{"event_id":"e","customer":{"id":7,"id":8}}"#,
            r#"{"event_id":"e","ts":"2024-03-01T10:00:00Z","day":"2024-03-01"}"#,
            r#"{"event_id":"e","ts":"2024-03-01T10:00:00.123456+02:00"}"#,
            r#"{"event_id":"e","ts":"yesterday"}"#,
            r#"{"event_id":"e","ts":17}"#,
            r#"{"event_id":"e","paid":"yes"}"#,
            r#"{"event_id":"e","unknown":{"deep":[[[[1,2,{"a":"b"}]]]]},"qty":3}"#,
            r#"{"event_id":"e","unknown":tru}"#,
            r#"{"event_id":"e","unknown":"\n"}"#,
            r#"{"event_id":"e" "qty":1}"#,
            r#"{"event_id":"e","qty":1"#,
        ]
        .map(String::from),
    );
    for row in &rows {
        for strict in [false, true] {
            fast_agrees(&fields, row, strict);
        }
    }
    // And it must actually take the common rows.
    for common in [
        r#"{"event_id":"e","qty":-12,"amount":2.50,"big":123456789012345,"millis":17}"#,
        r#"  { "event_id" : "é ü 日本" , "qty" : 1 }  "#,
        r#"{"event_id":"a-long-identifier-of-many-bytes-0123456789","paid":false}"#,
        r#"{"event_id":"e","tags":["a",null,"b"],"flags":[true,false],"customer":null}"#,
        r#"{"event_id":"e","customer":{"id":7,"name":"Ann"},"ts":"2024-03-01T10:00:00Z"}"#,
    ] {
        assert_eq!(
            fast_agrees(&fields, common, false),
            (true, true),
            "{common}"
        );
    }
}

#[test]
fn the_fast_path_agrees_with_the_full_parser_on_damaged_golden_rows() {
    let config: Config = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/golden/parse-json/orders/config.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let fields = weir_sdk::fields::validate_fields(&config.fields, "fields").unwrap();
    let input = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/golden/parse-json/orders/input/in.jsonl"
    ))
    .unwrap();
    for line in input.lines() {
        // Every row the full parser accepts is a common one: the fast path
        // must take it.
        let (fast, full) = fast_agrees(&fields, line, false);
        assert_eq!(fast, full, "{line}");
        // Every prefix and every single-character deletion of the line.
        let cuts: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
        for &cut in &cuts {
            fast_agrees(&fields, &line[..cut], false);
            let next = line[cut..].chars().next().map_or(0, char::len_utf8);
            fast_agrees(
                &fields,
                &format!("{}{}", &line[..cut], &line[cut + next..]),
                false,
            );
        }
    }
}

#[test]
fn the_fast_path_agrees_with_the_full_parser_on_objects_wider_than_64_fields() {
    // Fields 0..70; every fifth one is required. The fast path tracks the
    // first 64 by bits and the rest by column length: cover both sides.
    let fields: Vec<FieldSpec> = (0..70)
        .map(|i| FieldSpec::new(format!("f{i}"), ValueType::Int64, i % 5 == 0))
        .collect();
    let object = |keys: &[usize]| {
        let body: Vec<String> = keys.iter().map(|k| format!("\"f{k}\":{k}")).collect();
        format!("{{{}}}", body.join(","))
    };
    let all: Vec<usize> = (0..70).collect();
    let required: Vec<usize> = (0..70).step_by(5).collect();
    let reversed: Vec<usize> = (0..70).rev().collect();
    let without = |gone: usize| {
        all.iter()
            .copied()
            .filter(|&k| k != gone)
            .collect::<Vec<_>>()
    };
    let with_repeat = |again: usize| all.iter().copied().chain([again]).collect::<Vec<_>>();
    let cases = [
        (object(&all), true),
        (object(&reversed), true),
        (object(&required), true),
        (object(&without(63)), true),
        (object(&without(66)), true),
        (object(&without(65)), false), // required, past the bits
        (object(&without(60)), false), // required, within the bits
        (object(&with_repeat(3)), false),
        (object(&with_repeat(67)), false),
    ];
    for (text, fast_should_accept) in cases {
        let (fast, _) = fast_agrees(&fields, &text, true);
        assert_eq!(fast, fast_should_accept, "{text}");
    }
}

/// Regression (issue 10, "a number is never changed on its way through"):
/// a float64 field is the double nearest to the literal as written, also
/// past 15 significant digits and for large exponents, in the fast path
/// and through the full parser (serde_json with `float_roundtrip`; without
/// it `9007199254740993.0` read as 2^53 + 2).
#[test]
fn regression_issue_10_float64_is_the_nearest_double_to_the_literal() {
    let literals = [
        "9007199254740993.0",
        "0.1000000000000000055511151231257827",
        "2.2250738585072011e-308",
        "1.7976931348623157e308",
        "4.9406564584124654e-324",
        "123456789012345678901234567890.5",
        "1.0000000000000002",
        "7.2057594037927933e16",
        "-3.0517578125e-5",
        "1e23",
    ];
    let config = json!({"fields": [{"name": "x", "type": "double"}]});
    let plain: Vec<String> = literals.iter().map(|l| format!(r#"{{"x":{l}}}"#)).collect();
    // An escaped key sends the row past the fast path to the full parser.
    let escaped: Vec<String> = literals
        .iter()
        .map(|l| format!(r#"{{"\u0078":{l}}}"#))
        .collect();
    for rows in [plain, escaped] {
        let bytes: Vec<&[u8]> = rows.iter().map(|r| r.as_bytes()).collect();
        let (out, rejected) = run(config.clone(), &bytes);
        assert_eq!(rejected.num_rows(), 0, "{:?}", reasons(&rejected));
        let got = out.column(0).as_primitive::<Float64Type>();
        for (i, literal) in literals.iter().enumerate() {
            let nearest: f64 = literal.parse().unwrap();
            assert_eq!(
                got.value(i).to_bits(),
                nearest.to_bits(),
                "{literal} in {}",
                rows[i]
            );
        }
    }
}

/// The fast path learns the order keys come in (sorted keys, as many
/// generators write them, are not the declared order); a record in another
/// order, with a key missing or an unknown key, is still read right, and
/// the guesses it leaves behind mislead no later record.
#[test]
fn keys_in_a_learned_order_then_another_order_parse_the_same() {
    let fields = differential_fields();
    let orders = [
        // Sorted keys, twice: the second record runs on learned guesses.
        r#"{"amount":9.5,"customer":{"id":7,"name":"Ann"},"event_id":"e1","qty":2,"tags":["a"]}"#,
        r#"{"amount":1.5,"customer":{"id":8,"name":"Bo"},"event_id":"e2","qty":3,"tags":[]}"#,
        // Declared order, then reversed, then with a gap and an unknown key.
        r#"{"event_id":"e3","qty":4,"amount":2.5,"customer":{"id":9,"name":"Cy"},"tags":["b"]}"#,
        r#"{"tags":["c"],"customer":{"name":"Di","id":10},"amount":3.5,"qty":5,"event_id":"e4"}"#,
        r#"{"amount":4.5,"zzz":1,"event_id":"e5","customer":{"id":11}}"#,
        r#"{"amount":9.5,"customer":{"id":7,"name":"Ann"},"event_id":"e1","qty":2,"tags":["a"]}"#,
    ];
    for text in orders {
        let (fast, full) = fast_agrees(&fields, text, false);
        assert!(fast && full, "{text}");
    }
    // Strict mode still refuses the unknown key whatever was learned.
    assert_eq!(fast_agrees(&fields, orders[4], true), (false, false));
    // And the whole batch through the plugin: every record, in order.
    let rows: Vec<&[u8]> = orders.iter().map(|t| t.as_bytes()).collect();
    let (out, rejected) = run(orders_config(), &rows);
    assert_eq!(rejected.num_rows(), 0, "{:?}", reasons(&rejected));
    let ids: Vec<_> = out.column(0).as_string::<i32>().iter().flatten().collect();
    assert_eq!(ids, ["e1", "e2", "e3", "e4", "e5", "e1"]);
    let customer = out.column(6).as_struct();
    let names: Vec<_> = customer.column(1).as_string::<i32>().iter().collect();
    assert_eq!(
        names,
        [
            Some("Ann"),
            Some("Bo"),
            Some("Cy"),
            Some("Di"),
            None,
            Some("Ann")
        ]
    );
}
