//! The host's error type for everything that can go wrong with a plugin: loading,
//! compiling, instantiating, and each way a call can fail. A trap (timeout,
//! out-of-memory, panic, invalid output) is a *host* error; a typed error the
//! plugin returns is a *data* error. Both name the plugin, version and hash.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use weir_sdk::PluginError;

/// Who a plugin is: the name and version from its manifest and the SHA-256 of
/// its component bytes (the first 12 hex digits are shown in messages).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PluginIdentity {
    /// Manifest name (or the file stem before the manifest is known).
    pub name: String,
    /// Manifest version (`?` before the manifest is known).
    pub version: String,
    /// SHA-256 of the component bytes, hex.
    pub hash: String,
}

impl PluginIdentity {
    /// The short form of the content hash used in messages.
    pub fn short_hash(&self) -> &str {
        &self.hash[..self.hash.len().min(12)]
    }
}

impl std::fmt::Display for PluginIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "plugin {}@{} ({})",
            self.name,
            self.version,
            self.short_hash()
        )
    }
}

/// Everything that can fail in the plugin host.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The plugin file cannot be read.
    #[error("cannot read plugin {path}: {source}")]
    ReadPlugin {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid WebAssembly component, or do not implement the
    /// `weir:plugin` world.
    #[error("{path} is not a valid Weir plugin component: {reason}")]
    InvalidComponent {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The engine could not be set up (bad limits, pooling reservation refused).
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    /// A new instance could not be created (e.g. the instance pool is exhausted).
    #[error("{plugin}: cannot instantiate: {reason}")]
    Instantiate {
        /// The plugin.
        plugin: Arc<PluginIdentity>,
        /// Why.
        reason: String,
    },
    /// A `process` call ran past its time budget and was interrupted.
    #[error("{plugin}: `{call}` exceeded its time budget of {budget:?} and was stopped")]
    Timeout {
        /// The plugin.
        plugin: Arc<PluginIdentity>,
        /// The export called.
        call: &'static str,
        /// The budget.
        budget: Duration,
    },
    /// The plugin tried to grow its memory past its cap.
    #[error(
        "{plugin}: `{call}` tried to grow memory to {requested} bytes, over its cap of {cap} bytes"
    )]
    OutOfMemory {
        /// The plugin.
        plugin: Arc<PluginIdentity>,
        /// The export called.
        call: &'static str,
        /// Bytes requested.
        requested: usize,
        /// The cap.
        cap: usize,
    },
    /// The plugin trapped (panic, unreachable, out-of-bounds access...).
    #[error("{plugin}: `{call}` trapped: {reason}")]
    Trap {
        /// The plugin.
        plugin: Arc<PluginIdentity>,
        /// The export called.
        call: &'static str,
        /// The trap, plus the plugin's last stderr lines (its panic message).
        reason: String,
    },
    /// The plugin returned output that is not valid Arrow IPC, is on an
    /// undeclared port, or does not fit its declared schema.
    #[error("{plugin}: invalid output on port `{port}`: {reason}")]
    InvalidOutput {
        /// The plugin.
        plugin: Arc<PluginIdentity>,
        /// The output port.
        port: String,
        /// Why.
        reason: String,
    },
    /// An output batch no longer matches the schema the port had when the
    /// pipeline was validated at start (columns added, dropped, retyped or
    /// reordered). Downstream stages and sink tables were checked against
    /// that schema, so the batch is not passed on.
    #[error(
        "{plugin}: output port `{port}` no longer matches the schema validated at start: {reason}"
    )]
    SchemaChanged {
        /// The plugin.
        plugin: Arc<PluginIdentity>,
        /// The output port.
        port: String,
        /// Every column at fault.
        reason: String,
    },
    /// The manifest the plugin describes itself with is malformed.
    #[error("{plugin}: invalid manifest: {reason}")]
    InvalidManifest {
        /// The plugin.
        plugin: Arc<PluginIdentity>,
        /// Why.
        reason: String,
    },
    /// The host could not encode an input for the plugin, or the caller sent
    /// an input the plugin does not declare.
    #[error("{plugin}: invalid input `{port}`: {reason}")]
    InvalidInput {
        /// The plugin.
        plugin: Arc<PluginIdentity>,
        /// The input port.
        port: String,
        /// Why.
        reason: String,
    },
    /// The plugin returned a typed error (bad config, bad input, internal).
    #[error("{plugin}: {error}")]
    Plugin {
        /// The plugin.
        plugin: Arc<PluginIdentity>,
        /// The plugin's own error.
        error: Box<PluginError>,
    },
}

impl HostError {
    /// Whether the failure is in the data rather than the plugin: only a
    /// `bad-input` error the plugin returns. Everything else (traps, timeouts,
    /// invalid or drifted output, `internal` and `bad-config` errors) is a
    /// host error, which stops the pipeline after one retry.
    pub fn is_data_error(&self) -> bool {
        matches!(self, HostError::Plugin { error, .. } if error.kind == weir_sdk::ErrorKind::BadInput)
    }

    /// True for failures after which the instance was discarded (traps and
    /// their kin), false for data errors and load-time failures.
    pub fn discarded_instance(&self) -> bool {
        matches!(
            self,
            HostError::Timeout { .. }
                | HostError::OutOfMemory { .. }
                | HostError::Trap { .. }
                | HostError::InvalidOutput { .. }
        )
    }
}
