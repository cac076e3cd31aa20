//! `join`: a stream–static join, like Spark's `stream.join(static_df, on,
//! "inner" | "left")`. Each row of the streaming input `in` is matched by key
//! against a lookup table — a Delta table the host reads as of the epoch's
//! recorded version and passes whole, on the input port named after the
//! lookup — and gets the selected lookup columns added. Null keys never
//! match (SQL); every matching lookup row yields one output row.

use serde::Deserialize;
use std::sync::Arc;
use weir_sdk::arrow_select::take::{take, take_record_batch};
use weir_sdk::key::{KeyColumns, KeyIndex, comparable_keys};
use weir_sdk::prelude::*;

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The lookup input port, named after the pipeline's lookup (default `lookup`).
    #[serde(default = "default_lookup")]
    pub lookup: String,
    /// `inner` (default) or `left`.
    #[serde(default, rename = "type")]
    pub kind: JoinType,
    /// The key columns: names on both sides, or `{stream, lookup}` pairs.
    pub on: Vec<On>,
    /// Lookup columns to add, in order (default: all but the key columns).
    #[serde(default)]
    pub select: Option<Vec<Select>>,
}

fn default_lookup() -> String {
    "lookup".into()
}

/// Which stream rows are kept.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinType {
    /// Only stream rows with a match.
    #[default]
    Inner,
    /// Every stream row; lookup columns are null where nothing matches.
    Left,
}

/// One key column: the same name on both sides, or a pair.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a column name or {\"stream\": \"...\", \"lookup\": \"...\"}"
)]
pub enum On {
    /// A column of this name on both sides.
    Same(String),
    /// Differently named columns.
    Pair(KeyPair),
}

/// `{"stream": "uid", "lookup": "user_id"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPair {
    /// The stream's column.
    pub stream: String,
    /// The lookup table's column.
    pub lookup: String,
}

/// One lookup column to add: a name, or `{"column": ..., "as": ...}`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a column name or {\"column\": \"...\", \"as\": \"...\"}"
)]
pub enum Select {
    /// Added under its own name.
    Column(String),
    /// Added under another name.
    Renamed(Rename),
}

/// `{"column": "age", "as": "user_age"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rename {
    /// The lookup column.
    pub column: String,
    /// Its name in the output.
    #[serde(rename = "as")]
    pub name: String,
}

/// The configured join.
pub struct Join {
    lookup: String,
    left: bool,
    /// (stream column, lookup column) per key column.
    on: Vec<(String, String)>,
    /// (lookup column, output name); `None` selects all but the key columns.
    select: Option<Vec<(String, String)>>,
}

impl Plugin for Join {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest {
            name: "join".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Stream–static join: adds the columns of the matching lookup-table rows \
                          to each streaming row (inner or left join; null keys never match)."
                .into(),
            inputs: vec![
                Port::any("in", "The streaming rows."),
                Port::any(
                    "lookup",
                    "The lookup table, whole (the port is named by `lookup`).",
                ),
            ],
            outputs: vec![Port::any(
                "out",
                "The stream columns, then the selected lookup columns.",
            )],
            config_schema: json!({"type": "object", "required": ["on"], "additionalProperties": false,
                "properties": {
                    "lookup": {"type": "string", "default": "lookup"},
                    "type": {"enum": ["inner", "left"], "default": "inner"},
                    "on": {"type": "array", "minItems": 1, "items": {"oneOf": [{"type": "string"},
                        {"type": "object", "required": ["stream", "lookup"], "additionalProperties": false,
                         "properties": {"stream": {"type": "string"}, "lookup": {"type": "string"}}}]}},
                    "select": {"type": "array", "items": {"oneOf": [{"type": "string"},
                        {"type": "object", "required": ["column", "as"], "additionalProperties": false,
                         "properties": {"column": {"type": "string"}, "as": {"type": "string"}}}]}}}}),
        }
    }

    fn configure(config: Config) -> Result<Self, PluginError> {
        if config.lookup.is_empty() || config.lookup == "in" {
            let message = format!("`{}` cannot name the lookup port", config.lookup);
            return Err(PluginError::bad_config("lookup", message));
        }
        if config.on.is_empty() {
            return Err(PluginError::bad_config(
                "on",
                "needs at least one key column",
            ));
        }
        let on = config.on.into_iter().map(|on| match on {
            On::Same(name) => (name.clone(), name),
            On::Pair(pair) => (pair.stream, pair.lookup),
        });
        let select = config.select.map(|select| {
            let pairs = select.into_iter().map(|s| match s {
                Select::Column(name) => (name.clone(), name),
                Select::Renamed(rename) => (rename.column, rename.name),
            });
            pairs.collect::<Vec<_>>()
        });
        for (i, (_, name)) in select.iter().flatten().enumerate() {
            if select
                .iter()
                .flatten()
                .take(i)
                .any(|(_, seen)| seen == name)
            {
                let message = format!("`{name}` is output twice; rename one with `as`");
                return Err(PluginError::bad_config(format!("select[{i}]"), message));
            }
        }
        Ok(Join {
            lookup: config.lookup,
            left: config.kind == JoinType::Left,
            on: on.collect(),
            select,
        })
    }

    fn ports(&self) -> Ports {
        let mut ports = Self::manifest().ports();
        ports.inputs[1].name = self.lookup.clone();
        ports
    }

    fn process(&mut self, inputs: &Inputs) -> Result<Outputs, PluginError> {
        let stream = inputs.get("in")?;
        let lookup = inputs.get(&self.lookup)?;
        let (probe, table) = self.keys(&stream, &lookup)?;
        let index = KeyIndex::new(table);
        // Output row i is stream row `from_stream[i]` with lookup row
        // `from_lookup[i]` (null: no match, in a left join).
        let (mut from_stream, mut from_lookup) = (UInt32Builder::new(), UInt32Builder::new());
        for row in 0..stream.num_rows() {
            let before = from_lookup.len();
            for hit in index.matches(&probe, row) {
                from_stream.append_value(row as u32);
                from_lookup.append_value(hit as u32);
            }
            if self.left && from_lookup.len() == before {
                from_stream.append_value(row as u32);
                from_lookup.append_null();
            }
        }
        let streamed = take_record_batch(stream.batch(), &from_stream.finish())?;
        let from_lookup = from_lookup.finish();
        let mut fields: Vec<Field> = streamed
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut columns = streamed.columns().to_vec();
        for (column, name) in self.selected(&lookup) {
            if fields.iter().any(|f| f.name() == name) {
                let port = &self.lookup;
                return Err(PluginError::bad_input(
                    port,
                    format!(
                        "output column `{name}` would come from both `in` and lookup column `{column}` of `{port}`; \
                     rename the lookup column in `select`, e.g. {{\"column\": \"{column}\", \"as\": \"{port}_{column}\"}}"
                    ),
                ));
            }
            let array = lookup.column_any(column)?; // names a missing column
            let field = lookup.batch().schema_ref().field_with_name(column)?;
            let nullable = self.left || field.is_nullable();
            fields.push(field.clone().with_name(name).with_nullable(nullable));
            columns.push(take(array, &from_lookup, None)?);
        }
        let out = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        Ok(Outputs::new().with("out", out))
    }
}

impl Join {
    /// The key columns of both sides, of comparable types.
    fn keys(
        &self,
        stream: &Input<'_>,
        lookup: &Input<'_>,
    ) -> Result<(KeyColumns, KeyColumns), PluginError> {
        let (mut left, mut right) = (Vec::new(), Vec::new());
        for (s, l) in &self.on {
            let (a, b) = (stream.column_any(s)?, lookup.column_any(l)?);
            if !comparable_keys(a.data_type(), b.data_type()) {
                return Err(PluginError::bad_input(
                    &self.lookup,
                    format!(
                        "key column `{s}` of `in` has type {} but `{l}` of `{}` has type {}; join keys must have the same type",
                        a.data_type(),
                        self.lookup,
                        b.data_type()
                    ),
                ));
            }
            left.push((s.as_str(), a));
            right.push((l.as_str(), b));
        }
        Ok((
            KeyColumns::new("in", &left)?,
            KeyColumns::new(&self.lookup, &right)?,
        ))
    }

    /// (lookup column, output name) of the columns to add.
    fn selected<'a>(&'a self, lookup: &Input<'a>) -> Vec<(&'a str, &'a str)> {
        match &self.select {
            Some(select) => select
                .iter()
                .map(|(c, n)| (c.as_str(), n.as_str()))
                .collect(),
            None => lookup
                .batch()
                .schema_ref()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .filter(|name| !self.on.iter().any(|(_, key)| key == name))
                .map(|name| (name, name))
                .collect(),
        }
    }
}

weir_sdk::export!(Join);

#[cfg(test)]
mod tests;
