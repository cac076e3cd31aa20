//! Unit tests of the CSV parser, run natively through the SDK harness.

use super::*;
use weir_sdk::testing::{Harness, take_logs};

/// A rejected row: input row index, the field to blame, the reason.
type Rejected = (u64, Option<String>, String);

fn rejected_rows(batch: &RecordBatch) -> Vec<Rejected> {
    let index = batch.column(0).as_primitive::<UInt64Type>();
    let field = batch.column(2).as_string::<i32>();
    let reason = batch.column(3).as_string::<i32>();
    (0..batch.num_rows())
        .map(|row| {
            (
                index.value(row),
                field.is_valid(row).then(|| field.value(row).to_string()),
                reason.value(row).to_string(),
            )
        })
        .collect()
}

/// Runs the plugin configured with `config` on one input batch.
fn parse(config: serde_json::Value, batch: RecordBatch) -> (RecordBatch, Vec<Rejected>) {
    let mut plugin = Harness::<ParseCsv>::new(config).expect("valid config");
    let outputs = plugin
        .run(Inputs::new().with("in", batch))
        .expect("process");
    let out = outputs.get("out").expect("an `out` batch").clone();
    let rejected = rejected_rows(outputs.get(REJECTED_PORT).expect("a `rejected` batch"));
    (out, rejected)
}

/// Records as Kafka gives them: one Binary `value` column.
fn messages(records: &[&str]) -> RecordBatch {
    let bytes: Vec<&[u8]> = records.iter().map(|record| record.as_bytes()).collect();
    weir_sdk::testing::binary_batch("value", &bytes)
}

/// Records as the file source gives them: `file`, `line` and Utf8 `value`.
fn file_records(records: &[(&str, i64, &str)]) -> RecordBatch {
    let file = StringArray::from_iter_values(records.iter().map(|r| r.0));
    let line = Int64Array::from_iter_values(records.iter().map(|r| r.1));
    let value = StringArray::from_iter_values(records.iter().map(|r| r.2));
    RecordBatch::try_from_iter([
        ("file", Arc::new(file) as ArrayRef),
        ("line", Arc::new(line) as ArrayRef),
        ("value", Arc::new(value) as ArrayRef),
    ])
    .expect("three columns")
}

fn strings(batch: &RecordBatch, column: usize) -> Vec<Option<String>> {
    batch
        .column(column)
        .as_string::<i32>()
        .iter()
        .map(|value| value.map(str::to_string))
        .collect()
}

fn text_fields(names: &[&str]) -> serde_json::Value {
    let fields: Vec<_> = names
        .iter()
        .map(|name| json!({"name": name, "type": "string"}))
        .collect();
    json!(fields)
}

#[test]
fn quoted_values_hold_delimiters_line_breaks_and_quotes() {
    let config = json!({"header": false, "fields": text_fields(&["a", "b", "c"])});
    let (out, rejected) = parse(
        config,
        messages(&[
            "plain,two words,3\n",
            "\"x,y\",\"line\nbreak\",\"say \"\"hi\"\"\"\r\n",
            "\"\",\"\"\"\",\"crlf\r\ninside\"",
            "é,日本,\"ü\"",
        ]),
    );
    assert!(rejected.is_empty(), "{rejected:?}");
    let column = |i| {
        strings(&out, i)
            .into_iter()
            .map(Option::unwrap)
            .collect::<Vec<_>>()
    };
    assert_eq!(column(0), ["plain", "x,y", "", "é"]);
    assert_eq!(column(1), ["two words", "line\nbreak", "\"", "日本"]);
    assert_eq!(column(2), ["3", "say \"hi\"", "crlf\r\ninside", "ü"]);
}

#[test]
fn other_delimiters_and_quote_characters() {
    let config = json!({"header": false, "delimiter": "\t", "quote": "'",
                        "fields": text_fields(&["a", "b"])});
    let (out, rejected) = parse(config, messages(&["x,1\t'it''s\ta tab'"]));
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(strings(&out, 0), [Some("x,1".into())]);
    assert_eq!(strings(&out, 1), [Some("it's\ta tab".into())]);
}

#[test]
fn header_columns_are_matched_by_name_in_any_order() {
    let config = json!({"fields": [
        {"name": "id", "type": "long", "required": true},
        {"name": "name", "type": "string"},
        {"name": "score", "type": "double"}]});
    let (out, rejected) = parse(
        config,
        file_records(&[
            ("a.csv", 1, "id,name,score\n"),
            ("a.csv", 2, "1,Ann,1.5\n"),
            ("b.csv", 1, "\u{feff}score,extra,id,name\r\n"),
            ("b.csv", 2, "2.5,ignored,2,Bob\r\n"),
            ("b.csv", 3, "3.5,\"also, ignored\",3,\r\n"),
        ]),
    );
    assert!(rejected.is_empty(), "{rejected:?}");
    let ids = out.column(0).as_primitive::<Int64Type>();
    assert_eq!(ids.values().to_vec(), [1, 2, 3]);
    assert_eq!(
        strings(&out, 1),
        [Some("Ann".into()), Some("Bob".into()), None]
    );
    let scores = out.column(2).as_primitive::<Float64Type>();
    assert_eq!(scores.values().to_vec(), [1.5, 2.5, 3.5]);
}

#[test]
fn a_file_without_a_required_column_has_every_row_rejected() {
    let config = json!({"fields": [
        {"name": "id", "type": "long", "required": true},
        {"name": "name", "type": "string"},
        {"name": "note", "type": "string"}]});
    let (out, rejected) = parse(
        config,
        file_records(&[
            ("bad.csv", 1, "name,note"),
            ("bad.csv", 2, "Ann,x"),
            ("bad.csv", 3, "Bob,y"),
            ("good.csv", 1, "name,id"),
            ("good.csv", 2, "Cy,3"),
        ]),
    );
    let reason = "required field `id` is missing from the header of file `bad.csv`";
    assert_eq!(
        rejected,
        [
            (1, Some("id".into()), reason.into()),
            (2, Some("id".into()), reason.into())
        ]
    );
    assert_eq!(strings(&out, 1), [Some("Cy".into())]);
    assert_eq!(
        strings(&out, 2),
        [None],
        "a missing optional column is null"
    );
    let logs = take_logs();
    assert!(
        logs.iter()
            .any(|(level, line)| *level == weir_sdk::Level::Warn
                && line.contains("file `good.csv` has no column for optional field(s) `note`")),
        "{logs:?}"
    );
}

#[test]
fn a_header_naming_a_field_twice_rejects_its_rows() {
    let config = json!({"fields": text_fields(&["a"])});
    let (_, rejected) = parse(
        config,
        file_records(&[("f.csv", 1, "a,b,a"), ("f.csv", 2, "1,2,3")]),
    );
    assert_eq!(
        rejected,
        [(
            1,
            Some("a".into()),
            "column `a` appears twice in the header of file `f.csv`".into()
        )]
    );
}

#[test]
fn without_file_and_line_columns_the_first_row_is_the_header() {
    let config = json!({"fields": [{"name": "n", "type": "int"}, {"name": "s", "type": "string"}]});
    let (out, rejected) = parse(config, messages(&["s,n", "x,1", "y,2"]));
    assert!(rejected.is_empty(), "{rejected:?}");
    let n = out.column(0).as_primitive::<Int32Type>();
    assert_eq!(n.values().to_vec(), [1, 2]);
}

#[test]
fn a_row_before_its_files_header_is_rejected() {
    let config = json!({"fields": text_fields(&["a"])});
    let (out, rejected) = parse(
        config,
        file_records(&[("f.csv", 2, "x"), ("f.csv", 1, "a"), ("f.csv", 3, "y")]),
    );
    assert_eq!(strings(&out, 0), [Some("y".into())]);
    assert_eq!(
        rejected,
        [(
            0,
            None,
            "no header: line 1 of file `f.csv` is not in the batch before this row".into()
        )]
    );
}

#[test]
fn a_broken_header_is_rejected_and_so_are_its_files_rows() {
    let config = json!({"fields": text_fields(&["a"])});
    let (_, rejected) = parse(
        config,
        file_records(&[("f.csv", 1, "a,\"b"), ("f.csv", 2, "x")]),
    );
    let header_reason = "bad quoting in column 2 of the header: `\"b` is not closed";
    assert_eq!(
        rejected,
        [
            (0, None, header_reason.into()),
            (
                1,
                None,
                format!("the header of file `f.csv` was rejected: {header_reason}")
            ),
        ]
    );
}

#[test]
fn a_record_with_the_wrong_number_of_values_is_rejected() {
    let (out, rejected) = parse(
        json!({"header": false, "fields": text_fields(&["a", "b"])}),
        messages(&["1,2", "1", "1,2,3", "", "\"1,2\""]),
    );
    assert_eq!(out.num_rows(), 1);
    let expected = |found| format!("expected 2 values (one per declared field), found {found}");
    assert_eq!(
        rejected,
        [
            (1, None, expected(1)),
            (2, None, expected(3)),
            (3, None, expected(1)),
            (4, None, expected(1)),
        ]
    );
    let (_, rejected) = parse(
        json!({"fields": text_fields(&["a"])}),
        file_records(&[("f.csv", 1, "a,b,c"), ("f.csv", 2, "1,2")]),
    );
    assert_eq!(
        rejected,
        [(
            1,
            None,
            "expected 3 values (as in the header), found 2".into()
        )]
    );
}

#[test]
fn broken_quoting_is_rejected_quoting_the_value() {
    let (_, rejected) = parse(
        json!({"fields": text_fields(&["a", "b"])}),
        file_records(&[
            ("f.csv", 1, "a,b"),
            ("f.csv", 2, "x,\"unclosed"),
            ("f.csv", 3, "\"x\"y,z"),
            ("f.csv", 4, "x,5'11\""),
            ("f.csv", 5, "x,two\nlines"),
        ]),
    );
    assert_eq!(
        rejected,
        [
            (
                1,
                Some("b".into()),
                "bad quoting in column 2 (`b`): `\"unclosed` is not closed".into()
            ),
            (
                2,
                Some("a".into()),
                "bad quoting in column 1 (`a`): `\"x\"y` has text after its closing quote".into()
            ),
            (
                3,
                Some("b".into()),
                "bad quoting in column 2 (`b`): `5'11\"` has a quote inside an unquoted value"
                    .into()
            ),
            (
                4,
                Some("b".into()),
                "bad quoting in column 2 (`b`): `two\nlines` has a line break outside quotes"
                    .into()
            ),
        ]
    );
}

fn every_type_config() -> serde_json::Value {
    json!({"header": false, "fields": [
        {"name": "s", "type": "string"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "bigint"},
        {"name": "f", "type": "double"},
        {"name": "b", "type": "boolean"},
        {"name": "ts", "type": "timestamp"},
        {"name": "ms", "type": "timestamp", "format": "epoch_millis"},
        {"name": "sec", "type": "timestamp", "format": "epoch_seconds"},
        {"name": "zoned", "type": "timestamp", "format": "%Y-%m-%d %H:%M:%S %z"},
        {"name": "d", "type": "date"},
        {"name": "dmy", "type": "date", "format": "%d/%m/%Y"}
    ]})
}

#[test]
fn parses_every_type() {
    let (out, rejected) = parse(
        every_type_config(),
        messages(&[
            "hi,-7,9007199254740993,9.5,true,2024-03-01T10:00:00Z,1500,1.25,1970-01-01 01:00:00 +0100,2024-03-01,02/01/1970",
            ",,,,,,,,,,",
        ]),
    );
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(strings(&out, 0), [Some("hi".into()), None]);
    assert_eq!(out.column(1).as_primitive::<Int32Type>().value(0), -7);
    assert_eq!(
        out.column(2).as_primitive::<Int64Type>().value(0),
        9_007_199_254_740_993
    );
    assert_eq!(out.column(3).as_primitive::<Float64Type>().value(0), 9.5);
    assert!(out.column(4).as_boolean().value(0));
    let micros = |i: usize| {
        out.column(i)
            .as_primitive::<TimestampMicrosecondType>()
            .value(0)
    };
    assert_eq!(micros(5), 1_709_287_200_000_000);
    assert_eq!(micros(6), 1_500_000);
    assert_eq!(micros(7), 1_250_000);
    assert_eq!(micros(8), 0);
    assert_eq!(out.column(9).as_primitive::<Date32Type>().value(0), 19_783);
    assert_eq!(out.column(10).as_primitive::<Date32Type>().value(0), 1);
    for column in out.columns() {
        assert!(column.is_null(1), "an empty value is null");
    }
}

#[test]
fn bad_values_are_rejected_with_exact_reasons() {
    let row = |position: usize, value: &str| {
        let mut values = [""; 11];
        values[position] = value;
        values.join(",")
    };
    let cases = [
        (1, "two", "i", "field `i`: `two` is not a 32-bit integer"),
        (1, "1.5", "i", "field `i`: `1.5` is not a 32-bit integer"),
        (
            1,
            "3000000000",
            "i",
            "field `i`: `3000000000` does not fit a 32-bit integer",
        ),
        (1, "0x10", "i", "field `i`: `0x10` is not a 32-bit integer"),
        (3, "9,5", "", ""), // an extra value: caught by the count
        (3, "abc", "f", "field `f`: `abc` is not a number"),
        (3, "Infinity", "f", "field `f`: `Infinity` is not a number"),
        (4, "yes", "b", "field `b`: `yes` is not true or false"),
        (
            5,
            "yesterday",
            "ts",
            "field `ts`: `yesterday` is not an ISO 8601 timestamp",
        ),
        (6, "1.5", "ms", "field `ms`: `1.5` is not a whole number"),
        (
            6,
            "99999999999999999999",
            "ms",
            "field `ms`: `99999999999999999999` is out of range",
        ),
        (
            7,
            "noon",
            "sec",
            "field `sec`: `noon` is not a number of seconds",
        ),
        (
            9,
            "01/03/2024",
            "d",
            "field `d`: `01/03/2024` is not a date in format `%Y-%m-%d` (input contains invalid characters)",
        ),
    ];
    let records: Vec<String> = cases
        .iter()
        .map(|(position, value, _, _)| row(*position, value))
        .collect();
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let (out, rejected) = parse(every_type_config(), messages(&records));
    assert_eq!(out.num_rows(), 0);
    let expected: Vec<Rejected> = cases
        .iter()
        .enumerate()
        .map(|(row, (_, _, field, reason))| match *field {
            "" => (
                row as u64,
                None,
                "expected 11 values (one per declared field), found 12".to_string(),
            ),
            field => (row as u64, Some(field.to_string()), reason.to_string()),
        })
        .collect();
    assert_eq!(rejected, expected);
}

/// As in parse-json: every form of a whole number is that integer, read from
/// its digits (2^53 + 1 survives); anything else is rejected quoting the
/// value as written, and an integer too large is rejected, never wrapped.
#[test]
fn integers_are_exact_in_any_form_and_never_wrap() {
    let config = json!({"header": false, "fields": [
        {"name": "q", "type": "int32"},
        {"name": "big", "type": "int64"},
        {"name": "ms", "type": "timestamp", "format": "epoch_millis"}]});
    let (out, rejected) = parse(
        config,
        messages(&[
            "3.0,9007199254740993.0,1.5e3",
            "1e1,9223372036854775807,0",
            "30e-1,-0,2000E-3",
            "-2147483648,-9223372036854775808,",
            "2.50e0,,",
            "4294967297,,",
            ",18446744073709551617,",
            ",9.3e18,",
            ",123456789012345678901234567890123456789012,",
            ",,1.5",
        ]),
    );
    assert_eq!(
        out.column(0)
            .as_primitive::<Int32Type>()
            .iter()
            .collect::<Vec<_>>(),
        [Some(3), Some(10), Some(3), Some(i32::MIN)]
    );
    assert_eq!(
        out.column(1)
            .as_primitive::<Int64Type>()
            .iter()
            .collect::<Vec<_>>(),
        [
            Some(9_007_199_254_740_993),
            Some(i64::MAX),
            Some(0),
            Some(i64::MIN)
        ]
    );
    let ms = out.column(2).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(
        ms.iter().collect::<Vec<_>>(),
        [Some(1_500_000), Some(0), Some(2_000), None]
    );
    let reasons: Vec<(u64, String)> = rejected.into_iter().map(|(row, _, r)| (row, r)).collect();
    assert_eq!(
        reasons,
        [
            (4, "field `q`: `2.50e0` is not a 32-bit integer".into()),
            (5, "field `q`: `4294967297` does not fit a 32-bit integer".into()),
            (
                6,
                "field `big`: `18446744073709551617` does not fit a 64-bit integer".into()
            ),
            (7, "field `big`: `9.3e18` does not fit a 64-bit integer".into()),
            (
                8,
                "field `big`: `123456789012345678901234567890123456789012` does not fit a 64-bit integer"
                    .into()
            ),
            (9, "field `ms`: `1.5` is not a whole number".into()),
        ]
    );
}

#[test]
fn null_values_apply_to_unquoted_values_only() {
    let config = json!({"header": false, "null_values": ["", "NA", "\\N"], "fields": [
        {"name": "s", "type": "string"},
        {"name": "n", "type": "int"},
        {"name": "id", "type": "string", "required": true}]});
    let (out, rejected) = parse(
        config,
        messages(&[
            "NA,\\N,a",
            "\"NA\",,b",
            "\"\",1,c",
            "x,\"\",d",
            "x,1,",
            "x,1,\"\"",
        ]),
    );
    assert_eq!(
        strings(&out, 0),
        [None, Some("NA".into()), Some("".into()), Some("x".into())]
    );
    assert_eq!(strings(&out, 2).last(), Some(&Some(String::new())));
    assert_eq!(
        rejected,
        [
            (
                3,
                Some("n".into()),
                "field `n`: `` is not a 32-bit integer".into()
            ),
            (4, Some("id".into()), "required field `id` is null".into()),
        ]
    );
}

#[test]
fn null_records_and_invalid_utf8_are_rejected_naming_the_value() {
    let records: Vec<Option<&[u8]>> = vec![
        Some(b"a,ignored"),
        None,
        Some(b"ok,\xff"),
        Some(b"\xff,x"),
        Some(b"\"caf\xc3\",x"),
    ];
    let batch = RecordBatch::try_from_iter([(
        "value",
        Arc::new(BinaryArray::from_opt_vec(records)) as ArrayRef,
    )])
    .unwrap();
    let (out, rejected) = parse(json!({"fields": text_fields(&["a"])}), batch);
    assert_eq!(
        strings(&out, 0),
        [Some("ok".into())],
        "only declared values must be UTF-8"
    );
    assert_eq!(
        rejected,
        [
            (1, None, "`value` is null".into()),
            (
                3,
                Some("a".into()),
                "field `a`: `\u{fffd}` is not valid UTF-8".into()
            ),
            (
                4,
                Some("a".into()),
                "field `a`: `caf\u{fffd}` is not valid UTF-8".into()
            ),
        ]
    );
}

#[test]
fn config_errors_name_the_key() {
    let cases = [
        (json!({"fields": []}), "fields"),
        (
            json!({"fields": [{"name": "a", "type": "struct", "fields": [{"name": "b", "type": "int"}]}]}),
            "fields[0].type",
        ),
        (
            json!({"fields": [{"name": "a", "type": "string"}, {"name": "l", "type": "array", "items": {"type": "int"}}]}),
            "fields[1].type",
        ),
        (
            json!({"fields": [{"name": "a", "type": "strin"}]}),
            "fields[0].type",
        ),
        (
            json!({"fields": [{"name": "a", "type": "string", "nullable": true}]}),
            "fields[0].nullable",
        ),
        (
            json!({"fields": [{"name": "a", "type": "date", "format": "dd/mm"}]}),
            "fields[0].format",
        ),
        (
            json!({"fields": [{"name": "a", "type": "string"}], "delimiter": ";;"}),
            "delimiter",
        ),
        (
            json!({"fields": [{"name": "a", "type": "string"}], "delimiter": "\n"}),
            "delimiter",
        ),
        (
            json!({"fields": [{"name": "a", "type": "string"}], "quote": ""}),
            "quote",
        ),
        (
            json!({"fields": [{"name": "a", "type": "string"}], "quote": ","}),
            "quote",
        ),
        (
            json!({"fields": [{"name": "a", "type": "string"}], "separator": ";"}),
            "separator",
        ),
        (
            json!({"fields": [{"name": "a", "type": "string"}], "null_values": "NA"}),
            "null_values",
        ),
    ];
    for (config, key) in cases {
        let err = Harness::<ParseCsv>::new(config.clone())
            .err()
            .unwrap_or_else(|| panic!("{config} should fail"));
        assert_eq!(err.kind, ErrorKind::BadConfig);
        assert_eq!(err.key.as_deref(), Some(key), "{config}: {err}");
    }
}

#[test]
fn input_columns_of_the_wrong_type_are_bad_input() {
    let config = json!({"fields": text_fields(&["a"])});
    let numbers =
        RecordBatch::try_from_iter([("value", Arc::new(Int64Array::from(vec![1])) as ArrayRef)])
            .unwrap();
    let mut plugin = Harness::<ParseCsv>::new(config).unwrap();
    let err = plugin.run(Inputs::new().with("in", numbers)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput);
    assert!(
        err.message
            .contains("column `value` has type Int64, expected Binary or Utf8"),
        "{err}"
    );
    let lines = RecordBatch::try_from_iter([
        ("value", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
        ("line", Arc::new(StringArray::from(vec!["1"])) as ArrayRef),
    ])
    .unwrap();
    let err = plugin.run(Inputs::new().with("in", lines)).unwrap_err();
    assert!(
        err.message
            .contains("column `line` has type Utf8, expected Int64"),
        "{err}"
    );
}

#[test]
fn an_empty_batch_gives_empty_outputs_of_the_declared_schema() {
    let (out, rejected) = parse(every_type_config(), messages(&[]));
    assert_eq!(out.num_rows(), 0);
    assert_eq!(out.num_columns(), 11);
    assert!(rejected.is_empty());
}

/// Values with every awkward character, written the way a CSV writer
/// writes them, read back unchanged.
#[test]
fn written_values_read_back_unchanged() {
    let awkward = [
        "",
        " ",
        "plain",
        "a,b",
        "\"",
        "\"\"",
        "say \"hi\"",
        "line\nbreak",
        "crlf\r\n",
        "\r",
        ",\",\n",
        "日本,é",
        "tab\there",
        "trailing space ",
        "NA",
    ];
    let quote = |value: &str| format!("\"{}\"", value.replace('"', "\"\""));
    let mut records = Vec::new();
    let mut expected = Vec::new();
    for a in awkward {
        for b in awkward {
            records.push(format!("{},{}\r\n", quote(a), quote(b)));
            expected.push((a.to_string(), b.to_string()));
        }
    }
    let records: Vec<&str> = records.iter().map(String::as_str).collect();
    let (out, rejected) = parse(
        json!({"header": false, "fields": text_fields(&["a", "b"])}),
        messages(&records),
    );
    assert!(rejected.is_empty(), "{rejected:?}");
    let got: Vec<(String, String)> = strings(&out, 0)
        .into_iter()
        .zip(strings(&out, 1))
        .map(|(a, b)| (a.unwrap(), b.unwrap()))
        .collect();
    assert_eq!(got, expected);
}

/// Every prefix and every one-byte deletion of some tricky records: each
/// row is either parsed or rejected, never lost, and nothing panics.
#[test]
fn damaged_records_are_parsed_or_rejected_never_lost() {
    let tricky = [
        "1,\"a \"\"quoted\"\" ,value\",2024-03-01T10:00:00Z,true",
        "-2,\"multi\nline\",1970-01-01 00:00:00,false",
        "3.0e0,,,",
    ];
    let config = json!({"header": false, "fields": [
        {"name": "n", "type": "int64", "required": true},
        {"name": "s", "type": "string"},
        {"name": "t", "type": "timestamp"},
        {"name": "b", "type": "boolean"}]});
    let mut records = Vec::new();
    for record in tricky {
        for cut in 0..=record.len() {
            if let Some(prefix) = record.get(..cut) {
                records.push(prefix.to_string());
            }
            if let (Some(head), Some(tail)) = (record.get(..cut), record.get(cut + 1..)) {
                records.push(format!("{head}{tail}"));
            }
        }
    }
    let rows: Vec<&str> = records.iter().map(String::as_str).collect();
    let (out, rejected) = parse(config, messages(&rows));
    assert_eq!(out.num_rows() + rejected.len(), rows.len());
    assert!(out.num_rows() > 0 && !rejected.is_empty());
}

/// Each value, read by parse-csv from CSV text and by parse-json from the
/// JSON a field of its type expects (the literal for numbers and booleans,
/// a string for text, timestamps and dates, `null` for an empty value), is
/// accepted by both as the same value or rejected by both. Floats are the
/// nearest double on both sides (`9007199254740993.0` is 2^53, not 2^53 + 2).
#[test]
fn values_are_read_as_parse_json_reads_them() {
    let numbers = [
        "0",
        "-0",
        "7",
        "-12",
        "3.0",
        "1e1",
        "1E+1",
        "30e-1",
        "2.50e0",
        "1.5",
        "0.1",
        "-0.0",
        "2147483647",
        "2147483648",
        "-2147483649",
        "9007199254740993",
        "9007199254740993.0",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "9.3e18",
        "1e18",
        "1e38",
        "1e39",
        "1e400",
        "0.30000000000000004",
        "1.7976931348623157e308",
        "5e-324",
        "123456789012345678901234567890",
        "1704096000000",
        "1704096000.5",
        "01",
        "+1",
        "1.",
        ".5",
        "0x10",
        "NaN",
        "true",
        "false",
        "yes",
        "",
    ];
    let texts = [
        "2024-03-01T10:00:00Z",
        "2024-03-01 10:00:00.5+02:00",
        "2024-03-01T10:00:00",
        "2024-02-30T10:00:00Z",
        "2024-03-01",
        "01/03/2024",
        "yesterday",
        "true",
        "7",
        "é \" \\ \t",
        "",
    ];
    let literal_types = [
        json!({"type": "int32"}),
        json!({"type": "int64"}),
        json!({"type": "float64"}),
        json!({"type": "boolean"}),
        json!({"type": "timestamp", "format": "epoch_seconds"}),
        json!({"type": "timestamp", "format": "epoch_millis"}),
        json!({"type": "timestamp", "format": "epoch_micros"}),
    ];
    let text_types = [
        json!({"type": "string"}),
        json!({"type": "timestamp"}),
        json!({"type": "timestamp", "format": "%d/%m/%Y %H:%M"}),
        json!({"type": "date"}),
        json!({"type": "date", "format": "%d/%m/%Y"}),
    ];
    let cases = literal_types
        .iter()
        .map(|ty| (ty, &numbers[..], true))
        .chain(text_types.iter().map(|ty| (ty, &texts[..], false)));
    for (ty, values, literal) in cases {
        let mut field = ty.clone();
        field["name"] = json!("v");
        let json_rows: Vec<String> = values
            .iter()
            .map(|value| match (*value, literal) {
                ("", _) => r#"{"v":null}"#.to_string(),
                (value, true) => format!(r#"{{"v":{value}}}"#),
                (value, false) => json!({ "v": value }).to_string(),
            })
            .collect();
        let json_rows: Vec<&[u8]> = json_rows.iter().map(|row| row.as_bytes()).collect();
        let mut parse_json =
            Harness::<parse_json::ParseJson>::new(json!({ "fields": [field] })).unwrap();
        let by_json = parse_json
            .run(Inputs::new().with("in", weir_sdk::testing::binary_batch("value", &json_rows)))
            .unwrap();
        let quoted: Vec<String> = values
            .iter()
            .map(|value| {
                if value.contains(['"', ',', '\n']) {
                    format!("\"{}\"", value.replace('"', "\"\""))
                } else {
                    value.to_string()
                }
            })
            .collect();
        let quoted: Vec<&str> = quoted.iter().map(String::as_str).collect();
        let (by_csv, csv_rejected) = parse(
            json!({"header": false, "fields": [field]}),
            messages(&quoted),
        );
        let json_rejected: Vec<u64> = rejected_rows(by_json.get(REJECTED_PORT).unwrap())
            .into_iter()
            .map(|(row, _, _)| row)
            .collect();
        let csv_rejected: Vec<u64> = csv_rejected.into_iter().map(|(row, _, _)| row).collect();
        let named =
            |rows: &[u64]| -> Vec<&str> { rows.iter().map(|&r| values[r as usize]).collect() };
        assert_eq!(
            named(&csv_rejected),
            named(&json_rejected),
            "{ty}: values rejected by parse-csv (left) and parse-json (right)"
        );
        let by_json = by_json.get("out").unwrap();
        let accepted = (0..values.len() as u64).filter(|row| !csv_rejected.contains(row));
        for (at, row) in accepted.enumerate() {
            let value = values[row as usize];
            let (csv, json) = (
                by_csv.column(0).slice(at, 1),
                by_json.column(0).slice(at, 1),
            );
            assert_eq!(
                &csv, &json,
                "{ty}: `{value}` read by parse-csv (left) and parse-json (right)"
            );
        }
    }
}
