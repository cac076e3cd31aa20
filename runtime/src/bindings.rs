//! Host bindings of the `weir:plugin` world (generated from `wit/plugin.wit`)
//! and conversions from the generated types to the SDK's types.

use crate::error::{HostError, PluginIdentity};
use std::sync::Arc;
use weir_sdk::{ErrorKind, Manifest, PluginError, Port, Ports};

/// The code `bindgen!` generates, kept apart so its names do not clash with the SDK's.
#[allow(missing_docs)]
pub mod generated {
    wasmtime::component::bindgen!({
        world: "plugin",
        path: "../wit",
    });
}

pub use generated::weir::plugin::types as wit;
pub use generated::{Plugin, PluginPre};

/// Converts the manifest a plugin returned, decoding its port schemas.
pub fn manifest_from_wit(
    manifest: wit::Manifest,
    plugin: &Arc<PluginIdentity>,
) -> Result<Manifest, HostError> {
    let invalid = |reason: String| HostError::InvalidManifest {
        plugin: plugin.clone(),
        reason,
    };
    if manifest.name.trim().is_empty() {
        return Err(invalid("the name is empty".into()));
    }
    let config_schema = serde_json::from_str(&manifest.config_schema)
        .map_err(|e| invalid(format!("config-schema is not JSON: {e}")))?;
    let ports = ports_from_wit(manifest.inputs, manifest.outputs, plugin)?;
    Ok(Manifest {
        name: manifest.name,
        version: manifest.version,
        description: manifest.description,
        inputs: ports.inputs,
        outputs: ports.outputs,
        config_schema,
    })
}

/// Converts and checks ports: names unique per side, schemas decodable.
pub fn ports_from_wit(
    inputs: Vec<wit::Port>,
    outputs: Vec<wit::Port>,
    plugin: &Arc<PluginIdentity>,
) -> Result<Ports, HostError> {
    let convert = |side: &str, ports: Vec<wit::Port>| -> Result<Vec<Port>, HostError> {
        let mut seen = std::collections::HashSet::new();
        ports
            .into_iter()
            .map(|port| {
                let invalid = |reason: String| HostError::InvalidManifest {
                    plugin: plugin.clone(),
                    reason: format!("{side} port `{}`: {reason}", port.name),
                };
                if port.name.is_empty() || !seen.insert(port.name.clone()) {
                    return Err(invalid("the name is empty or used twice".into()));
                }
                let schema = match port.schema.clone() {
                    Some(bytes) => Some(
                        crate::untrusted::decode_schema(bytes)
                            .map_err(|e| invalid(format!("schema is not Arrow IPC: {e}")))?,
                    ),
                    None => None,
                };
                Ok(Port {
                    name: port.name,
                    description: port.description,
                    schema,
                })
            })
            .collect()
    };
    Ok(Ports {
        inputs: convert("input", inputs)?,
        outputs: convert("output", outputs)?,
    })
}

/// Converts a plugin's typed error.
pub fn error_from_wit(error: wit::PluginError) -> PluginError {
    PluginError {
        kind: match error.kind {
            wit::ErrorKind::BadConfig => ErrorKind::BadConfig,
            wit::ErrorKind::BadInput => ErrorKind::BadInput,
            wit::ErrorKind::Internal => ErrorKind::Internal,
        },
        message: error.message,
        key: error.key,
        input: error.input,
        row: error.row,
    }
}
