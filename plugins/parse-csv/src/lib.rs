//! `parse-csv` (bronze): parses CSV records — one per input row, as a file
//! source or a Kafka topic delivers them — into typed columns following the
//! fields declared in the config: the same field spec, types and value rules
//! as `parse-json` ([`weir_sdk::fields`]), for flat values. Values are matched
//! to fields by the header of each file or by position. Every record that
//! does not parse or fit goes to `rejected` with its raw bytes, row index and
//! a reason naming the column; good rows go to `out`.

mod header;
mod record;
mod value;

use header::{HeaderError, Layout};
use record::{Span, Syntax};
use serde::Deserialize;
use std::sync::Arc;
use weir_sdk::arrow_array::cast::AsArray;
use weir_sdk::fields::{
    Column, FieldConfig, FieldSpec, TypeName, arrow_fields, field_schema, validate_fields,
};
use weir_sdk::key::same_bytes;
use weir_sdk::prelude::*;

/// The optional input column naming the file a record comes from (Utf8).
pub const FILE_COLUMN: &str = "file";
/// The optional input column giving the 1-based line a record starts at (Int64).
pub const LINE_COLUMN: &str = "line";

/// The UTF-8 byte order mark some tools write at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The input column holding one CSV record per row (default `value`).
    #[serde(default = "default_input_column")]
    pub input_column: String,
    /// The declared columns, as for `parse-json` (flat types only).
    pub fields: Vec<FieldConfig>,
    /// The character between values (one ASCII character, default `,`).
    #[serde(default = "default_delimiter")]
    pub delimiter: String,
    /// The character that encloses a quoted value (default `"`).
    #[serde(default = "default_quote")]
    pub quote: String,
    /// Whether the first line of each file names the columns (default true).
    #[serde(default = "default_header")]
    pub header: bool,
    /// Unquoted values that mean null (default: the empty value).
    #[serde(default = "default_null_values")]
    pub null_values: Vec<String>,
}

fn default_input_column() -> String {
    "value".into()
}

fn default_delimiter() -> String {
    ",".into()
}

fn default_quote() -> String {
    "\"".into()
}

fn default_header() -> bool {
    true
}

fn default_null_values() -> Vec<String> {
    vec![String::new()]
}

/// The configured parser.
pub struct ParseCsv {
    input_column: String,
    fields: Vec<FieldSpec>,
    header: bool,
    /// The fields by position, for `header = false`.
    positional: Layout,
    reader: Reader,
    out_schema: SchemaRef,
}

impl Plugin for ParseCsv {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest {
            name: "parse-csv".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Parses CSV records (one per row) into typed columns per a declared \
                          schema, matching columns by each file's header or by position; rows \
                          that do not parse or fit go to `rejected` with a reason."
                .into(),
            inputs: vec![Port::any(
                "in",
                "CSV records, one per row, in a Binary or Utf8 column (`input_column`); \
                 optionally `file` (Utf8) and `line` (Int64, 1-based) columns.",
            )],
            outputs: vec![
                Port::any(
                    "out",
                    "One typed row per valid record, columns as declared.",
                ),
                rejected_port(),
            ],
            config_schema: config_schema(),
        }
    }

    fn configure(config: Config) -> Result<Self, PluginError> {
        for (i, field) in config.fields.iter().enumerate() {
            let nested = match field.r#type {
                TypeName::Struct => "struct",
                TypeName::List => "list",
                _ => continue,
            };
            return Err(PluginError::bad_config(
                format!("fields[{i}].type"),
                format!(
                    "a CSV value is flat: type `{nested}` is not supported (use string, int32, \
                     int64, float64, boolean, timestamp or date)"
                ),
            ));
        }
        let fields = validate_fields(&config.fields, "fields")?;
        let syntax = Syntax {
            delimiter: one_character(&config.delimiter, "delimiter")?,
            quote: one_character(&config.quote, "quote")?,
        };
        if syntax.delimiter == syntax.quote {
            return Err(PluginError::bad_config(
                "quote",
                "the quote and the delimiter must be different characters",
            ));
        }
        Ok(ParseCsv {
            input_column: config.input_column,
            positional: Layout::positional(&fields),
            out_schema: Arc::new(Schema::new(arrow_fields(&fields))),
            fields,
            header: config.header,
            reader: Reader {
                syntax,
                null_values: config.null_values,
                spans: Vec::new(),
                unescaped: String::new(),
            },
        })
    }

    fn ports(&self) -> Ports {
        let mut ports = Self::manifest().ports();
        if let Some(out) = ports.outputs.iter_mut().find(|port| port.name == "out") {
            out.schema = Some(self.out_schema.clone());
        }
        ports
    }

    fn process(&mut self, inputs: &Inputs) -> Result<Outputs, PluginError> {
        let input = inputs.get("in")?;
        let values = Values::of(&input, &self.input_column)?;
        let files = optional_column(&input, FILE_COLUMN, "Utf8", |array| {
            array.as_string_opt::<i32>()
        })?;
        let lines = optional_column(&input, LINE_COLUMN, "Int64", |array| {
            array.as_primitive_opt::<Int64Type>()
        })?;
        let rows = input.num_rows();
        let mut columns = Column::for_fields(&self.fields, rows);
        let mut rejects = Rejects::new();
        let mut headers = Headers::default();
        let mut kept = 0;
        for row in 0..rows {
            let file = files.and_then(|files| files.is_valid(row).then(|| files.value(row)));
            let line = lines.and_then(|lines| lines.is_valid(row).then(|| lines.value(row)));
            // With a `line` column the header is line 1 of its file; without
            // one, the first row of its file (or of the batch) in the batch.
            let is_header = self.header
                && match lines {
                    Some(_) => line == Some(1),
                    None => headers.get(file).is_none(),
                };
            let Some(raw) = values.get(row) else {
                let reason = format!("`{}` is null", self.input_column);
                if is_header {
                    headers.set(file, Err(rejected_header(&reason, file)));
                }
                rejects.push(row, None, None, &reason);
                continue;
            };
            let record = raw.record(is_header || line == Some(1));
            if is_header {
                let layout = match self.reader.header(record) {
                    Ok(names) => Layout::from_header(names, &self.fields, file),
                    Err(reason) => {
                        rejects.push(row, Some(raw.bytes()), None, &reason);
                        Err(rejected_header(&reason, file))
                    }
                };
                if let Ok(layout) = &layout {
                    warn_absent(layout, &self.fields, file);
                }
                headers.set(file, layout);
                continue;
            }
            let layout = if self.header {
                match headers.layout(file) {
                    Ok(layout) => layout,
                    Err(problem) => {
                        let reason = problem.to_string();
                        rejects.push(row, Some(raw.bytes()), problem.field(), &reason);
                        continue;
                    }
                }
            } else {
                &self.positional
            };
            match self.reader.row(record, layout, &self.fields, &mut columns) {
                Ok(()) => kept += 1,
                Err(rejection) => {
                    columns.iter_mut().for_each(|column| column.truncate(kept));
                    rejects.push(
                        row,
                        Some(raw.bytes()),
                        rejection.field.as_deref(),
                        &rejection.reason,
                    );
                }
            }
        }
        let arrays = columns.iter_mut().map(Column::finish).collect();
        let out = RecordBatch::try_new(self.out_schema.clone(), arrays)?;
        Ok(Outputs::new()
            .with("out", out)
            .with(REJECTED_PORT, rejects.finish()))
    }
}

weir_sdk::export!(ParseCsv);

/// The one ASCII character of config key `key` (not a line break).
fn one_character(text: &str, key: &str) -> Result<u8, PluginError> {
    match text.as_bytes() {
        [byte] if !matches!(byte, b'\r' | b'\n') => Ok(*byte),
        _ => Err(PluginError::bad_config(
            key,
            format!("`{text}` is not one ASCII character (other than a line break)"),
        )),
    }
}

/// Input column `name` as the array `cast` gives, when the input has it; a
/// bad-input error naming it when it is not of the `expected` type.
fn optional_column<'a, T: 'a>(
    input: &Input<'a>,
    name: &str,
    expected: &str,
    cast: impl Fn(&'a dyn Array) -> Option<&'a T>,
) -> Result<Option<&'a T>, PluginError> {
    let Some(array) = input.batch().column_by_name(name) else {
        return Ok(None);
    };
    cast(array.as_ref()).map(Some).ok_or_else(|| {
        PluginError::bad_input(
            input.name(),
            format!(
                "column `{name}` has type {}, expected {expected}",
                array.data_type()
            ),
        )
    })
}

fn rejected_header(reason: &str, file: Option<&str>) -> HeaderError {
    HeaderError::Rejected {
        reason: reason.to_string(),
        file: file.map(str::to_string),
    }
}

/// Logs the optional fields a header has no column for (null in every row
/// of its file), since a misspelt column name would otherwise go unnoticed.
fn warn_absent(layout: &Layout, fields: &[FieldSpec], file: Option<&str>) {
    if layout.absent.is_empty() {
        return;
    }
    let names: Vec<String> = layout
        .absent
        .iter()
        .map(|&index| format!("`{}`", fields[index].name))
        .collect();
    let file = file.map_or_else(String::new, |file| format!(" of file `{file}`"));
    weir_sdk::log::warn(&format!(
        "the header{file} has no column for optional field(s) {}: null in every row",
        names.join(", ")
    ));
}

/// The record column, whichever of the accepted types it has.
#[derive(Clone, Copy)]
enum Values<'a> {
    Binary(&'a BinaryArray),
    LargeBinary(&'a weir_sdk::arrow_array::LargeBinaryArray),
    Utf8(&'a StringArray),
    LargeUtf8(&'a LargeStringArray),
}

impl<'a> Values<'a> {
    fn of(input: &Input<'a>, column: &str) -> Result<Self, PluginError> {
        let array = input.column_any(column)?;
        let values = match array.data_type() {
            DataType::Binary => array.as_binary_opt().map(Values::Binary),
            DataType::LargeBinary => array.as_binary_opt().map(Values::LargeBinary),
            DataType::Utf8 => array.as_string_opt().map(Values::Utf8),
            DataType::LargeUtf8 => array.as_string_opt().map(Values::LargeUtf8),
            _ => None,
        };
        values.ok_or_else(|| {
            PluginError::bad_input(
                input.name(),
                format!(
                    "column `{column}` has type {}, expected Binary or Utf8",
                    array.data_type()
                ),
            )
        })
    }

    /// Row `row`, or `None` when it is null.
    fn get(self, row: usize) -> Option<Raw<'a>> {
        let bytes =
            |bytes: &'a [u8]| std::str::from_utf8(bytes).map_or(Raw::Bytes(bytes), Raw::Text);
        match self {
            Values::Binary(array) => array.is_valid(row).then(|| bytes(array.value(row))),
            Values::LargeBinary(array) => array.is_valid(row).then(|| bytes(array.value(row))),
            Values::Utf8(array) => array.is_valid(row).then(|| Raw::Text(array.value(row))),
            Values::LargeUtf8(array) => array.is_valid(row).then(|| Raw::Text(array.value(row))),
        }
    }
}

/// One record: text when it is valid UTF-8 (checked once per record), else
/// bytes (then each value is checked alone, so only a declared value that is
/// not UTF-8 rejects the row).
#[derive(Debug, Clone, Copy)]
enum Raw<'a> {
    Text(&'a str),
    Bytes(&'a [u8]),
}

impl<'a> Raw<'a> {
    fn bytes(self) -> &'a [u8] {
        match self {
            Raw::Text(text) => text.as_bytes(),
            Raw::Bytes(bytes) => bytes,
        }
    }

    /// The record without its line terminator, and without a byte order
    /// mark when it is the first line of a file.
    fn record(self, first_line: bool) -> Raw<'a> {
        let bytes = record::strip_terminator(self.bytes());
        let start = if first_line && bytes.starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        let range = start..bytes.len();
        match self {
            // Both ends are at ASCII bytes or after the mark, so on
            // character boundaries: `get` always succeeds.
            Raw::Text(text) => text
                .get(range.clone())
                .map_or(Raw::Bytes(&bytes[range]), Raw::Text),
            Raw::Bytes(_) => Raw::Bytes(&bytes[range]),
        }
    }

    /// The text of the value at `span`, quotes undone (into `unescaped` when
    /// the value holds doubled quotes).
    fn value<'r>(
        self,
        span: &Span,
        quote: u8,
        unescaped: &'r mut String,
    ) -> Result<&'r str, value::Problem>
    where
        'a: 'r,
    {
        let bytes = &self.bytes()[span.range()];
        let text = match self {
            Raw::Text(text) => text.get(span.range()),
            Raw::Bytes(_) => std::str::from_utf8(bytes).ok(),
        }
        .ok_or_else(|| value::Problem::NotUtf8(String::from_utf8_lossy(bytes).into_owned()))?;
        if span.escaped {
            record::unescape(text, quote, unescaped);
            Ok(unescaped.as_str())
        } else {
            Ok(text)
        }
    }
}

/// Why a row was rejected: the field to blame, if one is, and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
struct Rejection {
    field: Option<String>,
    reason: String,
}

/// Reads records, reusing its buffers from row to row.
struct Reader {
    syntax: Syntax,
    null_values: Vec<String>,
    spans: Vec<Span>,
    unescaped: String,
}

impl Reader {
    /// The column names of a header record, or why it cannot be read.
    fn header(&mut self, record: Raw<'_>) -> Result<Vec<String>, String> {
        let Reader {
            syntax,
            spans,
            unescaped,
            ..
        } = self;
        record::split(record.bytes(), *syntax, spans).map_err(|error| {
            format!(
                "bad quoting in column {} of the header: `{}` {}",
                error.column + 1,
                String::from_utf8_lossy(&record.bytes()[error.written.clone()]),
                error.problem
            )
        })?;
        spans
            .iter()
            .enumerate()
            .map(|(column, span)| {
                record
                    .value(span, syntax.quote, unescaped)
                    .map(str::to_string)
                    .map_err(|problem| format!("column {} of the header: {problem}", column + 1))
            })
            .collect()
    }

    /// Appends the values of a data record to `columns`, as `layout` maps
    /// them to `fields`. On error the columns may hold part of the row.
    fn row(
        &mut self,
        record: Raw<'_>,
        layout: &Layout,
        fields: &[FieldSpec],
        columns: &mut [Column],
    ) -> Result<(), Rejection> {
        let Reader {
            syntax,
            null_values,
            spans,
            unescaped,
        } = self;
        let bytes = record.bytes();
        record::split(bytes, *syntax, spans).map_err(|error| Rejection {
            field: layout.names.get(error.column).cloned(),
            reason: format!(
                "bad quoting in {}: `{}` {}",
                layout.label(error.column),
                String::from_utf8_lossy(&bytes[error.written.clone()]),
                error.problem
            ),
        })?;
        if spans.len() != layout.names.len() {
            let per = if layout.from_header {
                "as in the header"
            } else {
                "one per declared field"
            };
            return Err(Rejection {
                field: None,
                reason: format!(
                    "expected {} ({per}), found {}",
                    count(layout.names.len(), "value"),
                    spans.len()
                ),
            });
        }
        for (span, target) in spans.iter().zip(&layout.targets) {
            let Some(index) = *target else { continue };
            let (field, column) = (&fields[index], &mut columns[index]);
            if !span.quoted && is_null(null_values, &bytes[span.range()]) {
                if field.required {
                    return Err(Rejection {
                        field: Some(field.name.clone()),
                        reason: format!("required field `{}` is null", field.name),
                    });
                }
                column.push_null();
                continue;
            }
            record
                .value(span, syntax.quote, unescaped)
                .and_then(|text| value::push(&field.ty, text, column))
                .map_err(|problem| Rejection {
                    field: Some(field.name.clone()),
                    reason: format!("field `{}`: {problem}", field.name),
                })?;
        }
        for &index in &layout.absent {
            columns[index].push_null();
        }
        Ok(())
    }
}

/// Whether the unquoted value `text` is one of `null_values`.
#[inline]
fn is_null(null_values: &[String], text: &[u8]) -> bool {
    null_values
        .iter()
        .any(|null| same_bytes(null.as_bytes(), text))
}

/// `1 value`, `3 values`.
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The header layout of each file seen so far in a batch.
#[derive(Default)]
struct Headers<'a> {
    files: Vec<(Option<&'a str>, Result<Layout, HeaderError>)>,
    /// The entry found last: rows of one file come together.
    last: usize,
}

impl<'a> Headers<'a> {
    fn find(&mut self, file: Option<&str>) -> Option<usize> {
        let same = |(name, _): &(Option<&str>, _)| match (*name, file) {
            (Some(a), Some(b)) => same_bytes(a.as_bytes(), b.as_bytes()),
            (None, None) => true,
            _ => false,
        };
        if self.files.get(self.last).is_some_and(same) {
            return Some(self.last);
        }
        self.last = self.files.iter().position(same)?;
        Some(self.last)
    }

    /// The header of `file`, if it was seen.
    fn get(&mut self, file: Option<&str>) -> Option<&Result<Layout, HeaderError>> {
        let at = self.find(file)?;
        Some(&self.files[at].1)
    }

    /// The layout of `file`'s rows, or why they cannot be read.
    fn layout(&mut self, file: Option<&str>) -> Result<&Layout, HeaderError> {
        match self.get(file) {
            Some(Ok(layout)) => Ok(layout),
            Some(Err(problem)) => Err(problem.clone()),
            None => Err(HeaderError::NotSeen {
                file: file.map(str::to_string),
            }),
        }
    }

    /// Sets the header of `file`, replacing any earlier one.
    fn set(&mut self, file: Option<&'a str>, header: Result<Layout, HeaderError>) {
        match self.find(file) {
            Some(at) => self.files[at].1 = header,
            None => {
                self.last = self.files.len();
                self.files.push((file, header));
            }
        }
    }
}

fn config_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["fields"],
        "properties": {
            "input_column": {"type": "string", "default": "value", "description": "Binary or Utf8 column holding one CSV record per row."},
            "fields": {"type": "array", "items": {"$ref": "#/$defs/field"}},
            "delimiter": {"type": "string", "minLength": 1, "maxLength": 1, "default": ","},
            "quote": {"type": "string", "minLength": 1, "maxLength": 1, "default": "\""},
            "header": {"type": "boolean", "default": true, "description": "Line 1 of each file (the first row without a `line` column) names the columns; false: values by position in declared order."},
            "null_values": {"type": "array", "items": {"type": "string"}, "default": [""], "description": "Unquoted values that mean null."}
        },
        "$defs": {"field": field_schema(false)}
    })
}

#[cfg(test)]
mod tests;
