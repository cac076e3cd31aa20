//! `drift`: a test plugin steered by its input. Each Kafka `value` passes
//! through as `value` (Utf8) with its `length` (Int64), unless the batch
//! holds one of these values, which makes the whole call:
//! `drift:add` / `drift:drop` / `drift:retype` / `drift:reorder` — return a
//! schema other than the validated one (an extra column, no `length`,
//! `length` as Utf8, columns swapped); `fail:internal` / `fail:bad-input` —
//! return that error; `panic` — trap. A value `reject` is rejected alone.

use serde::Deserialize;
use std::sync::Arc;
use weir_sdk::arrow_array::cast::AsArray;
use weir_sdk::prelude::*;

/// No settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

/// The plugin.
pub struct Drift;

impl Plugin for Drift {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest {
            name: "drift".into(),
            version: "0.1.0".into(),
            description: "Changes its output schema or fails when its input asks it to.".into(),
            inputs: vec![Port::any("in", "Kafka records (`value`).")],
            outputs: vec![Port::any("out", "`value` and `length`."), rejected_port()],
            config_schema: json!({"type": "object"}),
        }
    }

    fn configure(_: Config) -> Result<Self, PluginError> {
        Ok(Drift)
    }

    fn process(&mut self, inputs: &Inputs) -> Result<Outputs, PluginError> {
        let input = inputs.get("in")?;
        let values: Vec<String> = input
            .column_any("value")?
            .as_binary::<i32>()
            .iter()
            .map(|v| String::from_utf8_lossy(v.unwrap_or_default()).into_owned())
            .collect();
        let asks = |what: &str| values.iter().any(|v| v == what);
        if asks("panic") {
            panic!("drift was asked to panic");
        }
        if asks("fail:internal") {
            return Err(PluginError::internal("asked to fail"));
        }
        if asks("fail:bad-input") {
            return Err(PluginError::bad_input("in", "asked to fail"));
        }
        let mut rejects = Rejects::new();
        let kept: Vec<&String> = (values.iter().enumerate())
            .filter(|(row, v)| {
                let reject = *v == "reject";
                if reject {
                    rejects.push(*row, Some(v.as_bytes()), Some("value"), "asked to reject");
                }
                !reject
            })
            .map(|(_, v)| v)
            .collect();
        let value: ArrayRef = Arc::new(StringArray::from_iter_values(kept.iter().copied()));
        let length = kept.iter().map(|v| v.len() as i64);
        let length: ArrayRef = if asks("drift:retype") {
            Arc::new(StringArray::from_iter_values(length.map(|l| l.to_string())))
        } else {
            Arc::new(Int64Array::from_iter_values(length))
        };
        let mut columns = vec![("value", value), ("length", length)];
        if asks("drift:add") {
            columns.push((
                "extra",
                Arc::new(BooleanArray::from(vec![true; kept.len()])),
            ));
        }
        if asks("drift:drop") {
            columns.pop();
        }
        if asks("drift:reorder") {
            columns.reverse();
        }
        let batch = RecordBatch::try_from_iter(columns)
            .map_err(|e| PluginError::internal(e.to_string()))?;
        Ok(Outputs::new()
            .with("out", batch)
            .with(REJECTED_PORT, rejects.finish()))
    }
}

weir_sdk::export!(Drift);
