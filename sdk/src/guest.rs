//! The plugin side of one `process` call over Arrow IPC: decode the input
//! streams, check them against the declared input ports, run the plugin, encode
//! the outputs. The wasm export and the native test harness both go through
//! here, so a plugin behaves the same in `cargo test` and in the sandbox.

use crate::{Inputs, Plugin, PluginError, Ports, ipc, schema};
use arrow_array::RecordBatch;
use arrow_schema::ArrowError;

/// An Arrow IPC stream with its port name, as it crosses the boundary.
pub type NamedIpc = (String, Vec<u8>);

/// Configures `P` from config JSON text, returning the plugin and its ports.
pub fn configure<P: Plugin>(config_json: &str) -> Result<(P, Ports), PluginError> {
    let config = crate::parse_config::<P::Config>(config_json)?;
    let plugin = P::configure(config)?;
    let ports = plugin.ports();
    Ok((plugin, ports))
}

/// Runs one `process` call from IPC streams to IPC streams, decoding each
/// input with `decode` ([`ipc::decode_batch`], or the trusted decoder where
/// the caller knows who encoded the streams).
pub fn process_ipc<P: Plugin>(
    plugin: &mut P,
    ports: &Ports,
    streams: Vec<NamedIpc>,
    decode: impl Fn(Vec<u8>) -> Result<RecordBatch, ArrowError>,
) -> Result<Vec<NamedIpc>, PluginError> {
    let mut inputs = Inputs::new();
    for (name, bytes) in streams {
        let batch = decode(bytes).map_err(|e| {
            PluginError::bad_input(&name, format!("not a valid Arrow IPC stream: {e}"))
        })?;
        let port = ports.input(&name).ok_or_else(|| {
            let declared: Vec<&str> = ports.inputs.iter().map(|p| p.name.as_str()).collect();
            PluginError::bad_input(
                &name,
                format!("no input port called `{name}` (declared: {declared:?})"),
            )
        })?;
        if let Some(declared) = &port.schema {
            schema::check_input_fits(declared, batch.schema_ref())
                .map_err(|problem| PluginError::bad_input(&name, problem))?;
        }
        inputs = inputs.with(name, batch);
    }
    let outputs = plugin.process(&inputs)?;
    // The inputs' buffers go back to the allocator before the outputs are
    // encoded, so the encoded outputs can reuse them: a wasm memory never
    // shrinks, and this keeps its peak near input + output, not input +
    // output + encoded output.
    drop(inputs);
    outputs
        .into_vec()
        .into_iter()
        .map(|(name, batch)| {
            let bytes = ipc::encode_batch(&batch)?;
            Ok((name, bytes))
        })
        .collect()
}
