//! The wasm side of the contract (compiled for `wasm32` only): the per-instance
//! plugin state and conversions between the SDK's types and the generated ones.

use crate::bindings::weir::plugin::types as wit;
use crate::{Level, Plugin, PluginError, Port, Ports, guest, ipc};
use std::any::Any;
use std::cell::RefCell;

/// A configured plugin and its ports; one per wasm instance.
struct Configured<P> {
    plugin: P,
    ports: Ports,
}

thread_local! {
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

/// The `manifest` export.
pub fn manifest<P: Plugin>() -> wit::Manifest {
    let manifest = P::manifest();
    wit::Manifest {
        name: manifest.name,
        version: manifest.version,
        description: manifest.description,
        inputs: manifest.inputs.iter().map(port_to_wit).collect(),
        outputs: manifest.outputs.iter().map(port_to_wit).collect(),
        config_schema: manifest.config_schema.to_string(),
    }
}

/// The `configure` export: parses the config, keeps the plugin for `process`.
pub fn configure<P: Plugin>(config: String) -> Result<wit::Configured, wit::PluginError> {
    let (plugin, ports) = guest::configure::<P>(&config).map_err(error_to_wit)?;
    let configured = wit::Configured {
        inputs: ports.inputs.iter().map(port_to_wit).collect(),
        outputs: ports.outputs.iter().map(port_to_wit).collect(),
    };
    STATE.with_borrow_mut(|state| *state = Some(Box::new(Configured { plugin, ports })));
    Ok(configured)
}

/// The `process` export.
pub fn process<P: Plugin>(
    inputs: Vec<wit::NamedStream>,
) -> Result<Vec<wit::NamedStream>, wit::PluginError> {
    STATE.with_borrow_mut(|state| {
        let configured = state
            .as_mut()
            .and_then(|s| s.downcast_mut::<Configured<P>>())
            .ok_or_else(|| {
                error_to_wit(PluginError::internal("process was called before configure"))
            })?;
        let streams = inputs.into_iter().map(|s| (s.name, s.ipc)).collect();
        // SAFETY: inside the sandbox the only writer of input streams is the
        // host, which encodes them from valid Arrow arrays (the contract in
        // `wit/`). A host that broke that promise could only corrupt this
        // instance, which it owns anyway.
        let decode = |bytes| unsafe { ipc::decode_trusted_batch(bytes) };
        let outputs =
            guest::process_ipc(&mut configured.plugin, &configured.ports, streams, decode)
                .map_err(error_to_wit)?;
        Ok(outputs
            .into_iter()
            .map(|(name, ipc)| wit::NamedStream { name, ipc })
            .collect())
    })
}

/// Sends a log line to the host.
pub(crate) fn log(level: Level, message: &str) {
    use crate::bindings::weir::plugin::host::{self, LogLevel};
    let level = match level {
        Level::Trace => LogLevel::Trace,
        Level::Debug => LogLevel::Debug,
        Level::Info => LogLevel::Info,
        Level::Warn => LogLevel::Warn,
        Level::Error => LogLevel::Error,
    };
    host::log(level, message);
}

fn port_to_wit(port: &Port) -> wit::Port {
    wit::Port {
        name: port.name.clone(),
        description: port.description.clone(),
        schema: port
            .schema
            .as_ref()
            .map(|s| ipc::encode_schema(s).expect("a schema always encodes")),
    }
}

fn error_to_wit(err: PluginError) -> wit::PluginError {
    wit::PluginError {
        kind: match err.kind {
            crate::ErrorKind::BadConfig => wit::ErrorKind::BadConfig,
            crate::ErrorKind::BadInput => wit::ErrorKind::BadInput,
            crate::ErrorKind::Internal => wit::ErrorKind::Internal,
        },
        message: err.message,
        key: err.key,
        input: err.input,
        row: err.row,
    }
}
