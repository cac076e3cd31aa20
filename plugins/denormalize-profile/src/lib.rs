//! `denormalize-profile`: seed 000's profile builder. For every key in the
//! epoch's changes (input `in`, e.g. the change rows of five tables carrying
//! `user_id`), one row: the key and a nested record built from lookup
//! inputs the host reads for exactly those keys — the profile table's row
//! (scalar fields) plus, per related table, the list of its rows for the key
//! as structs in a stable order (`order_by`, then every other sortable
//! column). A key the profile table no longer holds (a deleted user) gets a
//! null record: a Kafka sink sends it as a tombstone.
//!
//! Keys come out in order of first appearance in `in`. A key with a null
//! value, or one the profile table holds twice, is rejected (every `in` row
//! of it, with the reason); the other keys go on.

use serde::Deserialize;
use std::sync::Arc;
use weir_sdk::arrow_buffer::OffsetBuffer;
use weir_sdk::arrow_select::take::take;
use weir_sdk::key::{KeyColumns, KeyIndex};
use weir_sdk::prelude::*;

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The key column of `in` and of every lookup, e.g. `user_id`.
    pub key: String,
    /// The lookup port holding one row per key: the record's scalar fields.
    pub profile: String,
    /// The related tables, in the record's field order.
    #[serde(default)]
    pub lists: Vec<List>,
    /// The output column holding the record (default `profile`).
    #[serde(default = "default_output")]
    pub output: String,
}

fn default_output() -> String {
    "profile".into()
}

/// A related table: its lookup port (also the record's field name) and the
/// columns its rows are ordered by.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct List {
    /// The lookup port.
    pub port: String,
    /// Columns ordering the list, ascending, nulls last.
    #[serde(default)]
    pub order_by: Vec<String>,
}

/// The configured builder.
pub struct Denormalize(Config);

impl Plugin for Denormalize {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest {
            name: "denormalize-profile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "One nested record per changed key: the profile row plus lists of \
                          related rows; null when the profile row is gone."
                .into(),
            inputs: vec![
                Port::any("in", "Changes carrying the key column."),
                Port::any(
                    "PROFILE",
                    "The profile rows of the keys (named by `profile`).",
                ),
                Port::any(
                    "LIST",
                    "Related rows of the keys, one port per `lists` entry.",
                ),
            ],
            outputs: vec![
                Port::any("out", "The key, then the record (null: delete)."),
                rejected_port(),
            ],
            config_schema: json!({"type": "object", "required": ["key", "profile"],
                "additionalProperties": false, "properties": {
                    "key": {"type": "string"}, "profile": {"type": "string"},
                    "output": {"type": "string", "default": "profile"},
                    "lists": {"type": "array", "items": {"type": "object", "required": ["port"],
                        "additionalProperties": false, "properties": {"port": {"type": "string"},
                        "order_by": {"type": "array", "items": {"type": "string"}}}}}}}),
        }
    }

    fn configure(config: Config) -> Result<Self, PluginError> {
        let ports: Vec<&str> = std::iter::once(config.profile.as_str())
            .chain(config.lists.iter().map(|l| l.port.as_str()))
            .collect();
        for (i, port) in ports.iter().enumerate() {
            let key = if i == 0 {
                "profile".to_string()
            } else {
                format!("lists[{}]", i - 1)
            };
            if ["in", REJECTED_PORT, ""].contains(port) || ports[..i].contains(port) {
                let message =
                    format!("`{port}` is reserved or already used; name another lookup port");
                return Err(PluginError::bad_config(key, message));
            }
        }
        Ok(Denormalize(config))
    }

    fn ports(&self) -> Ports {
        let lookup = |name: &str| Port::any(name, "Rows of the changed keys.");
        let mut inputs = vec![
            Port::any("in", "Changes carrying the key column."),
            lookup(&self.0.profile),
        ];
        inputs.extend(self.0.lists.iter().map(|l| lookup(&l.port)));
        Ports {
            inputs,
            outputs: Self::manifest().outputs,
        }
    }

    fn process(&mut self, inputs: &Inputs) -> Result<Outputs, PluginError> {
        let key = self.0.key.as_str();
        let changes = inputs.get("in")?;
        let keys_of =
            |input: &Input<'_>| KeyColumns::new(input.name(), &[(key, input.column_any(key)?)]);
        let changed = keys_of(&changes)?;
        let firsts = KeyIndex::new(keys_of(&changes)?);
        let profiles = inputs.get(&self.0.profile)?;
        let by_key = KeyIndex::new(keys_of(&profiles)?);
        let mut rejects = Rejects::new();
        // Output rows: (first `in` row of the key, its profile row if any).
        let mut rows: Vec<(usize, Option<u32>)> = Vec::new();
        for row in 0..changes.num_rows() {
            let Some(first) = firsts.matches(&changed, row).next() else {
                rejects.push(row, None, Some(key), &format!("`{key}` is null"));
                continue;
            };
            let hits: Vec<usize> = by_key.matches(&changed, row).collect();
            if hits.len() > 1 {
                let reason = format!(
                    "`{}` holds {} rows for this `{key}`; it must hold one per key",
                    self.0.profile,
                    hits.len()
                );
                rejects.push(row, None, Some(key), &reason);
            } else if first == row {
                rows.push((row, hits.first().map(|&h| h as u32)));
            }
        }
        let picked = UInt32Array::from(rows.iter().map(|(r, _)| *r as u32).collect::<Vec<_>>());
        let profile_rows: UInt32Array = rows.iter().map(|(_, p)| *p).collect();
        let mut fields: Vec<Field> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (field, column) in profiles
            .batch()
            .schema()
            .fields()
            .iter()
            .zip(profiles.batch().columns())
        {
            fields.push(field.as_ref().clone());
            columns.push(take(column, &profile_rows, None)?);
        }
        for list in &self.0.lists {
            let related = inputs.get(&list.port)?;
            let (field, column) = nest(&related, key, &list.order_by, &changed, &rows)?;
            fields.push(field);
            columns.push(column);
        }
        let record = StructArray::try_new_with_length(
            fields.into(),
            columns,
            profile_rows.nulls().cloned(),
            rows.len(),
        )?;
        let key_column = take(changes.column_any(key)?, &picked, None)?;
        let key_field = changes
            .batch()
            .schema()
            .field_with_name(key)?
            .clone()
            .with_nullable(false);
        let schema = Schema::new(vec![
            key_field,
            Field::new(&self.0.output, record.data_type().clone(), true),
        ]);
        let out = RecordBatch::try_new(Arc::new(schema), vec![key_column, Arc::new(record)])?;
        Ok(Outputs::new()
            .with("out", out)
            .with(REJECTED_PORT, rejects.finish()))
    }
}

/// The rows of `related` for each output key as a list of structs (every
/// column but the key), ordered by `order_by` then every other sortable column.
fn nest(
    related: &Input<'_>,
    key: &str,
    order_by: &[String],
    changed: &KeyColumns,
    rows: &[(usize, Option<u32>)],
) -> Result<(Field, ArrayRef), PluginError> {
    let batch = related.batch();
    let index = KeyIndex::new(KeyColumns::new(
        related.name(),
        &[(key, related.column_any(key)?)],
    )?);
    let mut sort = Vec::new();
    for name in order_by {
        sort.push(related.column_any(name)?.clone());
    }
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if !order_by.contains(field.name()) && sortable(field.data_type()) {
            sort.push(column.clone());
        }
    }
    let options = Some(arrow_ord::sort::SortOptions {
        descending: false,
        nulls_first: false,
    });
    let columns: Vec<_> = sort
        .into_iter()
        .map(|values| arrow_ord::sort::SortColumn { values, options })
        .collect();
    let mut rank = vec![0u32; batch.num_rows()];
    if !columns.is_empty() {
        let order = arrow_ord::sort::lexsort_to_indices(&columns, None)?;
        for (at, row) in order.values().iter().enumerate() {
            rank[*row as usize] = at as u32;
        }
    }
    let (mut picked, mut offsets) = (Vec::new(), vec![0i32]);
    for (row, _) in rows {
        let mut hits: Vec<u32> = index.matches(changed, *row).map(|h| h as u32).collect();
        hits.sort_by_key(|&h| (rank[h as usize], h));
        picked.extend(hits);
        offsets.push(i32::try_from(picked.len()).map_err(|_| {
            PluginError::bad_input(related.name(), "more than 2^31 related rows in one batch")
        })?);
    }
    let picked = UInt32Array::from(picked);
    let (mut fields, mut values) = (Vec::new(), Vec::new());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if field.name() != key {
            fields.push(field.as_ref().clone());
            values.push(take(column, &picked, None)?);
        }
    }
    let items = StructArray::try_new_with_length(fields.into(), values, None, picked.len())?;
    let item = Arc::new(Field::new("item", items.data_type().clone(), false));
    let list = ListArray::try_new(
        item.clone(),
        OffsetBuffer::new(offsets.into()),
        Arc::new(items),
        None,
    )?;
    Ok((
        Field::new(related.name(), DataType::List(item), false),
        Arc::new(list),
    ))
}

/// Whether lexicographic sorting supports the type (nested types are left
/// out of the tie-break).
fn sortable(data_type: &DataType) -> bool {
    data_type.is_primitive()
        || matches!(
            data_type,
            DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Utf8View
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::Boolean
        )
}

weir_sdk::export!(Denormalize);

#[cfg(test)]
mod tests;
