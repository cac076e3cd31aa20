// The `tag` test plugins (`tag-v1`, `tag-v2`, `tag-trap`, `tag-narrow`):
// one source, included by each crate with its own `TAG` and `BEHAVIOUR`, so
// the hot-swap tests have versions with different hashes that tell their
// rows apart. Each Kafka record becomes one row: `value` (text), `partition`,
// `offset`, `tag` (which version produced it) and `clock` (the epoch's
// virtual clock, the same for every row of an epoch, so rows can be grouped
// by epoch). A record whose value is `poison` makes it trap (the bisection
// tests); `tag-trap` traps on any non-empty batch; `tag-narrow` drops `tag`.

use serde::Deserialize;
use std::sync::Arc;
use weir_sdk::arrow_array::cast::AsArray;
use weir_sdk::prelude::*;

/// How a variant behaves.
#[allow(dead_code)]
enum Behaviour {
    /// Tag every row.
    Tag,
    /// Trap on any non-empty batch.
    Trap,
    /// Leave out the `tag` column (an incompatible version).
    Narrow,
}

/// No settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

/// The plugin.
pub struct Tag;

impl Plugin for Tag {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest {
            name: "tag".into(),
            version: TAG.into(),
            description: "Tags each Kafka record with the version that processed it.".into(),
            inputs: vec![Port::any("in", "Kafka records.")],
            outputs: vec![Port::any("out", "value, partition, offset, tag, clock.")],
            config_schema: json!({"type": "object"}),
        }
    }

    fn configure(_: Config) -> Result<Self, PluginError> {
        Ok(Tag)
    }

    fn process(&mut self, inputs: &Inputs) -> Result<Outputs, PluginError> {
        let input = inputs.get("in")?;
        let rows = input.batch().num_rows();
        if matches!(BEHAVIOUR, Behaviour::Trap) && rows > 0 {
            panic!("{TAG} traps on every record");
        }
        let values: Vec<String> = input
            .column_any("value")?
            .as_binary::<i32>()
            .iter()
            .map(|v| String::from_utf8_lossy(v.unwrap_or_default()).into_owned())
            .collect();
        if values.iter().any(|v| v == "poison") {
            panic!("{TAG} cannot process a poison record");
        }
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as i64)
            .unwrap_or(0);
        let mut columns: Vec<(&str, ArrayRef)> = vec![
            ("value", Arc::new(StringArray::from_iter_values(&values))),
            ("partition", input.column_any("partition")?.clone()),
            ("offset", input.column_any("offset")?.clone()),
        ];
        if !matches!(BEHAVIOUR, Behaviour::Narrow) {
            columns.push(("tag", Arc::new(StringArray::from(vec![TAG; rows]))));
        }
        columns.push(("clock", Arc::new(Int64Array::from(vec![clock; rows]))));
        let batch = RecordBatch::try_from_iter(columns)
            .map_err(|e| PluginError::internal(e.to_string()))?;
        Ok(Outputs::new().with("out", batch))
    }
}

weir_sdk::export!(Tag);
