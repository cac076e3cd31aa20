//! `filter-paid` (silver): keeps orders whose status is `PAID` (configurable),
//! drops duplicate `event_id`s within the batch (first wins, as Spark's
//! `dropDuplicates` after the filter), and flattens nested fields into top-level
//! columns (`customer.id` → `customer_id`).

use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use weir_sdk::arrow_array::cast::AsArray;
use weir_sdk::arrow_buffer::BooleanBuffer;
use weir_sdk::key::{ByteKey, same_bytes};
use weir_sdk::prelude::*;

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Column holding the order status (default `status`).
    #[serde(default = "default_status_column")]
    pub status_column: String,
    /// Statuses to keep (default `["PAID"]`).
    #[serde(default = "default_keep")]
    pub keep: Vec<String>,
    /// Column whose duplicates are dropped, first wins (default `event_id`; `null` disables).
    #[serde(default = "default_dedupe_on")]
    pub dedupe_on: Option<String>,
    /// Nested fields to lift to top-level columns.
    #[serde(default)]
    pub flatten: Vec<Flatten>,
    /// Drop a struct column once fields were lifted out of it (default true).
    #[serde(default = "default_true")]
    pub drop_flattened: bool,
}

/// One nested field to lift: `path` such as `customer.id`, named `as` (default
/// the path with dots replaced by underscores).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flatten {
    pub path: String,
    #[serde(rename = "as")]
    pub name: Option<String>,
}

fn default_status_column() -> String {
    "status".into()
}
fn default_keep() -> Vec<String> {
    vec!["PAID".into()]
}
fn default_dedupe_on() -> Option<String> {
    Some("event_id".into())
}
fn default_true() -> bool {
    true
}

/// The configured filter.
pub struct FilterPaid {
    config: Config,
    lifted: Vec<(String, String)>,
}

impl Plugin for FilterPaid {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest {
            name: "filter-paid".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Keeps PAID orders, drops duplicate event ids (first wins), flattens nested fields."
                    .into(),
            inputs: vec![Port::any("in", "Parsed orders (bronze rows).")],
            outputs: vec![Port::any(
                "out",
                "Kept orders with nested fields flattened.",
            )],
            config_schema: json!({"type": "object", "additionalProperties": false, "properties": {
                "status_column": {"type": "string", "default": "status"},
                "keep": {"type": "array", "items": {"type": "string"}, "default": ["PAID"]},
                "dedupe_on": {"type": ["string", "null"], "default": "event_id"},
                "flatten": {"type": "array", "items": {"type": "object", "required": ["path"],
                    "properties": {"path": {"type": "string"}, "as": {"type": "string"}}}},
                "drop_flattened": {"type": "boolean", "default": true}}}),
        }
    }

    fn configure(config: Config) -> Result<Self, PluginError> {
        let mut lifted = Vec::new();
        for (i, flatten) in config.flatten.iter().enumerate() {
            if !flatten.path.contains('.') || flatten.path.split('.').any(str::is_empty) {
                let message = format!("`{}` is not a nested path like `customer.id`", flatten.path);
                return Err(PluginError::bad_config(
                    format!("flatten[{i}].path"),
                    message,
                ));
            }
            let name = flatten
                .name
                .clone()
                .unwrap_or_else(|| flatten.path.replace('.', "_"));
            lifted.push((flatten.path.clone(), name));
        }
        Ok(FilterPaid { config, lifted })
    }

    fn process(&mut self, inputs: &Inputs) -> Result<Outputs, PluginError> {
        let orders = inputs.get("in")?;
        let status = orders.column::<StringArray>(&self.config.status_column)?;
        let wanted = |row: usize| {
            let value = status.value(row).as_bytes();
            status.is_valid(row)
                && self
                    .config
                    .keep
                    .iter()
                    .any(|k| same_bytes(k.as_bytes(), value))
        };
        let keep = match &self.config.dedupe_on {
            None => BooleanBuffer::collect_bool(status.len(), wanted),
            Some(key) => first_of_each_key(orders.column_any(key)?, wanted)
                .map_err(|m| PluginError::bad_input("in", m))?,
        };
        let (fields, columns) = self.project(&orders)?;
        let projected = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        let kept = filter_record_batch(&projected, &BooleanArray::new(keep, None))?;
        Ok(Outputs::new().with("out", kept))
    }
}

impl FilterPaid {
    /// Input columns in order, each struct that fields were lifted from replaced
    /// (or followed, with `drop_flattened = false`) by the lifted columns.
    fn project(&self, orders: &Input<'_>) -> Result<(Vec<Field>, Vec<ArrayRef>), PluginError> {
        let lifted = self
            .lifted
            .iter()
            .map(|(path, name)| Ok((path, name, orders.column_path(path)?)))
            .collect::<Result<Vec<_>, PluginError>>()?;
        let (mut fields, mut columns) = (Vec::new(), Vec::new());
        for (field, column) in orders
            .batch()
            .schema()
            .fields()
            .iter()
            .zip(orders.batch().columns())
        {
            let root = format!("{}.", field.name());
            let from_here: Vec<_> = lifted
                .iter()
                .filter(|(path, _, _)| path.starts_with(&root))
                .collect();
            if from_here.is_empty() || !self.config.drop_flattened {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
            }
            for (_, name, array) in from_here {
                fields.push(Field::new(name.as_str(), array.data_type().clone(), true));
                columns.push(array.clone());
            }
        }
        Ok((fields, columns))
    }
}

/// The rows that are `wanted` and whose key no earlier wanted row had (first
/// wins). Null keys count as one value, as in Spark's `dropDuplicates`. The
/// hash is fast and fixed-seed: output never depends on it, and a plugin must
/// not need the host's random source to be deterministic.
fn first_of_each_key(
    keys: &ArrayRef,
    wanted: impl Fn(usize) -> bool,
) -> Result<BooleanBuffer, String> {
    fn first<K: std::hash::Hash + Eq>(
        len: usize,
        key: impl Fn(usize) -> Option<K>,
        wanted: impl Fn(usize) -> bool,
    ) -> BooleanBuffer {
        let mut seen = HashSet::with_capacity_and_hasher(
            len,
            foldhash::fast::FixedState::with_seed(0x5745_4952),
        );
        BooleanBuffer::collect_bool(len, |row| wanted(row) && seen.insert(key(row)))
    }
    let len = keys.len();
    // The key of each row, read through the array's own type (text and bytes
    // as `ByteKey`s, which compare without `memcmp`).
    macro_rules! by {
        ($typed:expr, $key:expr) => {{
            let keys = $typed;
            first(
                len,
                |row| keys.is_valid(row).then(|| $key(keys.value(row))),
                wanted,
            )
        }};
    }
    Ok(match keys.data_type() {
        DataType::Utf8 => by!(keys.as_string::<i32>(), ByteKey::from),
        DataType::LargeUtf8 => by!(keys.as_string::<i64>(), ByteKey::from),
        DataType::Int64 => by!(keys.as_primitive::<Int64Type>(), std::convert::identity),
        DataType::Int32 => by!(keys.as_primitive::<Int32Type>(), std::convert::identity),
        DataType::Binary => by!(keys.as_binary::<i32>(), ByteKey::from),
        other => return Err(format!("cannot deduplicate on a column of type {other}")),
    })
}

weir_sdk::export!(FilterPaid);

#[cfg(test)]
mod tests;
