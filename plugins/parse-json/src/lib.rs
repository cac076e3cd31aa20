//! `parse-json` (bronze): parses raw JSON bytes (a Kafka message value) into
//! typed columns following the schema declared in the config. Every row that is
//! not valid JSON or breaks the schema goes to `rejected` with its raw bytes,
//! row index and a reason naming the field; good rows go to `out`.

mod convert;
mod fast;

use serde::Deserialize;
use std::sync::Arc;
use weir_sdk::fields::{Column, FieldConfig, FieldSpec};
use weir_sdk::prelude::*;

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The input column holding the JSON bytes (default `value`).
    #[serde(default = "default_input_column")]
    pub input_column: String,
    /// The declared schema of each document.
    pub fields: Vec<FieldConfig>,
    /// What to do with object keys the schema does not declare.
    #[serde(default)]
    pub unknown_fields: UnknownFields,
}

/// Treatment of undeclared keys.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UnknownFields {
    /// Drop them, as Spark's `from_json` does.
    #[default]
    Ignore,
    /// Reject the row.
    Reject,
}

fn default_input_column() -> String {
    "value".into()
}

/// The configured parser.
pub struct ParseJson {
    input_column: String,
    fields: Vec<FieldSpec>,
    strict: bool,
    out_schema: SchemaRef,
}

impl Plugin for ParseJson {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest {
            name: "parse-json".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Parses raw JSON bytes into typed columns per a declared schema; \
                          rows that do not parse or fit go to `rejected` with a reason."
                .into(),
            inputs: vec![Port::any(
                "in",
                "Raw messages; the JSON is in a Binary column (`input_column`).",
            )],
            outputs: vec![
                Port::any(
                    "out",
                    "One typed row per valid document, columns as declared.",
                ),
                rejected_port(),
            ],
            config_schema: config_schema(),
        }
    }

    fn configure(config: Config) -> Result<Self, PluginError> {
        let fields = weir_sdk::fields::validate_fields(&config.fields, "fields")?;
        let out_schema = Arc::new(Schema::new(weir_sdk::fields::arrow_fields(&fields)));
        Ok(ParseJson {
            input_column: config.input_column,
            fields,
            strict: config.unknown_fields == UnknownFields::Reject,
            out_schema,
        })
    }

    fn ports(&self) -> Ports {
        let input = Schema::new(vec![Field::new(&self.input_column, DataType::Binary, true)]);
        Ports {
            inputs: vec![Port::with_schema("in", "Raw JSON messages.", input)],
            outputs: vec![
                Port {
                    schema: Some(self.out_schema.clone()),
                    ..Port::any("out", "Typed rows.")
                },
                rejected_port(),
            ],
        }
    }

    fn process(&mut self, inputs: &Inputs) -> Result<Outputs, PluginError> {
        let input = inputs.get("in")?;
        let values = input.column::<BinaryArray>(&self.input_column)?;
        let mut columns = Column::for_fields(&self.fields, values.len());
        let mut rejects = Rejects::new();
        let text = BatchText::new(values);
        let mut kept = 0;
        for (row, raw) in values.iter().enumerate() {
            let Some(raw) = raw else {
                rejects.push(row, None, None, &format!("`{}` is null", self.input_column));
                continue;
            };
            let parsed = match text.row(values, row) {
                Some(text)
                    if fast::parse_row(text, &self.fields, &mut columns, kept, self.strict)
                        .is_some() =>
                {
                    Ok(())
                }
                row_text => {
                    // The fast path may have filled part of the row: undo it.
                    columns.iter_mut().for_each(|column| column.truncate(kept));
                    let json =
                        row_text.map_or(convert::RowJson::Bytes(raw), convert::RowJson::Text);
                    convert::parse_row(json, &self.fields, &mut columns, kept, self.strict)
                }
            };
            match parsed {
                Ok(()) => kept += 1,
                Err(rejection) => {
                    columns.iter_mut().for_each(|column| column.truncate(kept));
                    rejects.push(
                        row,
                        Some(raw),
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

weir_sdk::export!(ParseJson);

/// The bytes of a whole batch, validated as UTF-8 once (SIMD-accelerated)
/// instead of once per string by the JSON parser.
struct BatchText<'a> {
    text: Option<&'a str>,
    start: usize,
}

impl<'a> BatchText<'a> {
    fn new(values: &'a BinaryArray) -> Self {
        let offsets = values.value_offsets();
        let (start, end) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
        let text = simdutf8::basic::from_utf8(&values.value_data()[start..end]).ok();
        BatchText { text, start }
    }

    /// Row `row` as text, when the batch is valid UTF-8 and the row starts and
    /// ends on character boundaries (so the row alone is valid UTF-8 too).
    fn row(&self, values: &BinaryArray, row: usize) -> Option<&'a str> {
        let offsets = values.value_offsets();
        let (from, to) = (
            offsets[row] as usize - self.start,
            offsets[row + 1] as usize - self.start,
        );
        self.text?.get(from..to)
    }
}

fn config_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["fields"],
        "properties": {
            "input_column": {"type": "string", "default": "value", "description": "Binary column holding the JSON."},
            "unknown_fields": {"enum": ["ignore", "reject"], "default": "ignore"},
            "fields": {"type": "array", "items": {"$ref": "#/$defs/field"}}
        },
        "$defs": {"field": weir_sdk::fields::field_schema(true)}
    })
}

#[cfg(test)]
mod tests;
