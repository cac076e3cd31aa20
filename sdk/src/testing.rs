//! Run a plugin natively (no wasm) in unit tests. The harness goes through the
//! same path as the sandbox — config as JSON text, inputs and outputs as Arrow
//! IPC, outputs checked against the declared ports — so what passes here
//! behaves the same inside `weir`.

use crate::guest::{self, NamedIpc};
use crate::{Inputs, Outputs, Plugin, PluginError, Ports, ipc, schema};
use arrow_array::{BinaryArray, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;

pub use crate::log::Level;

/// A configured plugin under test.
pub struct Harness<P: Plugin> {
    plugin: P,
    ports: Ports,
}

impl<P: Plugin> std::fmt::Debug for Harness<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("ports", &self.ports)
            .finish_non_exhaustive()
    }
}

impl<P: Plugin> Harness<P> {
    /// Configures the plugin with `config` (serialised to JSON text, as the host does).
    pub fn new(config: serde_json::Value) -> Result<Self, PluginError> {
        Self::from_json(&config.to_string())
    }

    /// Configures the plugin with config JSON text.
    pub fn from_json(config: &str) -> Result<Self, PluginError> {
        let (plugin, ports) = guest::configure::<P>(config)?;
        Ok(Harness { plugin, ports })
    }

    /// The configured ports.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Runs one `process` call through Arrow IPC and checks every output
    /// against its declared port, as the host does.
    pub fn run(&mut self, inputs: Inputs) -> Result<Outputs, PluginError> {
        let streams = inputs
            .iter()
            .map(|input| Ok((input.name().to_string(), ipc::encode_batch(input.batch())?)))
            .collect::<Result<Vec<_>, PluginError>>()?;
        // SAFETY: the streams were encoded just above from `RecordBatch`es,
        // whose arrays are valid, exactly as the host encodes a plugin's inputs.
        let decode = |bytes| unsafe { ipc::decode_trusted_batch(bytes) };
        let mut outputs = Outputs::new();
        for (name, bytes) in guest::process_ipc(&mut self.plugin, &self.ports, streams, decode)? {
            let batch = ipc::decode_batch(bytes)?;
            self.check_output(&name, batch.schema_ref())?;
            outputs = outputs.with(name, batch);
        }
        Ok(outputs)
    }

    /// Runs one `process` call on raw IPC streams, checking outputs against ports.
    pub fn run_ipc(&mut self, streams: Vec<NamedIpc>) -> Result<Vec<NamedIpc>, PluginError> {
        let outputs =
            guest::process_ipc(&mut self.plugin, &self.ports, streams, ipc::decode_batch)?;
        for (name, bytes) in &outputs {
            let (actual, _) = ipc::decode_stream(bytes.clone())?;
            self.check_output(name, &actual)?;
        }
        Ok(outputs)
    }

    /// Checks that output `name` is declared and fits its port, as the host does.
    fn check_output(&self, name: &str, actual: &Schema) -> Result<(), PluginError> {
        let port = self.ports.output(name).ok_or_else(|| {
            PluginError::internal(format!(
                "the plugin returned output `{name}`, which it does not declare"
            ))
        })?;
        match &port.schema {
            Some(declared) => schema::check_output_fits(declared, actual).map_err(|problem| {
                PluginError::internal(format!("output `{name}` does not fit its port: {problem}"))
            }),
            None => Ok(()),
        }
    }
}

/// A one-column batch of raw bytes, like the `value` column of Kafka messages.
pub fn binary_batch(column: &str, rows: &[&[u8]]) -> RecordBatch {
    let schema = Schema::new(vec![Field::new(column, DataType::Binary, true)]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![Arc::new(BinaryArray::from_vec(rows.to_vec()))],
    )
    .expect("one binary column")
}

/// The log lines the plugin wrote on this thread since the last call.
pub fn take_logs() -> Vec<(Level, String)> {
    crate::log::native::take()
}
