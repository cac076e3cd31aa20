//! A loaded plugin (compiled once, manifest known) and its configured
//! instances. An instance runs calls under its memory cap and time budget; when
//! a call traps, times out, runs out of memory or returns invalid output, the
//! instance is discarded and the next call starts a fresh one with the same
//! config, so the host always serves the next call.

use crate::bindings::{self, wit};
use crate::determinism::CallContext;
use crate::engine::EPOCH_TICK;
use crate::error::{HostError, PluginIdentity};
use crate::limits::PluginLimits;
use crate::store::StoreData;
use crate::untrusted;
use arrow::record_batch::RecordBatch;
use std::sync::Arc;
use wasmtime::{Engine, Store, Trap};
use weir_sdk::{Manifest, Ports, ipc, schema};

/// An Arrow batch on a named port.
pub type PortBatch = (String, RecordBatch);

/// A compiled plugin whose manifest has been read. Cheap to clone.
#[derive(Clone)]
pub struct LoadedPlugin {
    inner: Arc<Shared>,
}

struct Shared {
    engine: Engine,
    pre: bindings::PluginPre<StoreData>,
    identity: Arc<PluginIdentity>,
    manifest: Manifest,
    /// The component as loaded (what its hash is of), kept so a pipeline can
    /// store the exact version an epoch ran with.
    bytes: Arc<[u8]>,
}

impl LoadedPlugin {
    pub(crate) fn new(
        engine: Engine,
        pre: bindings::PluginPre<StoreData>,
        provisional: PluginIdentity,
        bytes: Arc<[u8]>,
    ) -> Result<Self, HostError> {
        let limits = PluginLimits::default();
        let provisional = Arc::new(provisional);
        let mut live = Live::start(&engine, &pre, provisional.clone(), &limits)?;
        let raw = live.call("manifest", &limits, CallContext::default(), |b, s| {
            b.call_manifest(s)
        })?;
        let identity = Arc::new(PluginIdentity {
            name: raw.name.clone(),
            version: raw.version.clone(),
            hash: provisional.hash.clone(),
        });
        let manifest = bindings::manifest_from_wit(raw, &identity)?;
        Ok(LoadedPlugin {
            inner: Arc::new(Shared {
                engine,
                pre,
                identity,
                manifest,
                bytes,
            }),
        })
    }

    /// Name, version and content hash.
    pub fn identity(&self) -> &Arc<PluginIdentity> {
        &self.inner.identity
    }

    /// The component's bytes (their SHA-256 is the identity's hash).
    pub fn bytes(&self) -> &Arc<[u8]> {
        &self.inner.bytes
    }

    /// The manifest the plugin declared.
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// Starts an instance and configures it with `config_json` (a JSON object
    /// as text). A config the plugin refuses is a [`HostError::Plugin`] error
    /// of kind bad-config naming the key.
    pub fn instantiate(
        &self,
        config_json: &str,
        limits: PluginLimits,
    ) -> Result<PluginInstance, HostError> {
        limits.validate().map_err(|reason| HostError::Instantiate {
            plugin: self.identity().clone(),
            reason,
        })?;
        let mut instance = PluginInstance {
            plugin: self.clone(),
            config: config_json.to_string(),
            limits,
            ports: Ports {
                inputs: Vec::new(),
                outputs: Vec::new(),
            },
            live: None,
            starts: 0,
        };
        instance.live()?;
        Ok(instance)
    }
}

/// A configured plugin instance, ready to process batches.
pub struct PluginInstance {
    plugin: LoadedPlugin,
    config: String,
    limits: PluginLimits,
    ports: Ports,
    live: Option<Live>,
    starts: u64,
}

impl PluginInstance {
    /// The ports as resolved by `configure`.
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// Name, version and content hash.
    pub fn identity(&self) -> &Arc<PluginIdentity> {
        self.plugin.identity()
    }

    /// Drops the running wasm instance so the next call starts a fresh one
    /// (used to retry a call once after a host error).
    pub fn restart(&mut self) {
        self.live = None;
    }

    /// The running wasm instance's linear memory, in bytes (0 when none runs).
    pub fn memory_bytes(&self) -> usize {
        self.live
            .as_ref()
            .map_or(0, |live| live.store.data().limiter.granted())
    }

    /// How many times a fresh wasm instance was started after a failure.
    pub fn restarts(&self) -> u64 {
        self.starts.saturating_sub(1)
    }

    /// Runs `process` on batches: encodes them as Arrow IPC, calls the plugin,
    /// decodes and validates what it returns.
    pub fn process(
        &mut self,
        inputs: &[PortBatch],
        context: CallContext,
    ) -> Result<Vec<PortBatch>, HostError> {
        let streams = inputs
            .iter()
            .map(|(port, batch)| {
                ipc::encode_batch(batch)
                    .map(|bytes| (port.clone(), bytes))
                    .map_err(|e| HostError::InvalidInput {
                        plugin: self.identity().clone(),
                        port: port.clone(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.process_ipc(streams, context)
    }

    /// Runs `process` on already encoded Arrow IPC streams.
    pub fn process_ipc(
        &mut self,
        inputs: Vec<(String, Vec<u8>)>,
        context: CallContext,
    ) -> Result<Vec<PortBatch>, HostError> {
        let streams: Vec<wit::NamedStream> = inputs
            .into_iter()
            .map(|(name, ipc)| wit::NamedStream { name, ipc })
            .collect();
        let limits = self.limits;
        let result = self.live()?.call("process", &limits, context, |b, s| {
            b.call_process(s, &streams)
        });
        let outputs = match result {
            Err(host_error) => {
                self.discard(&host_error);
                return Err(host_error);
            }
            Ok(Err(error)) => {
                return Err(HostError::Plugin {
                    plugin: self.identity().clone(),
                    error: Box::new(bindings::error_from_wit(error)),
                });
            }
            Ok(Ok(outputs)) => outputs,
        };
        self.validate_outputs(outputs)
            .inspect_err(|error| self.discard(error))
    }

    fn validate_outputs(
        &self,
        outputs: Vec<wit::NamedStream>,
    ) -> Result<Vec<PortBatch>, HostError> {
        let mut seen = std::collections::HashSet::new();
        outputs
            .into_iter()
            .map(|stream| {
                let invalid = |reason: String| HostError::InvalidOutput {
                    plugin: self.identity().clone(),
                    port: stream.name.clone(),
                    reason,
                };
                let port = self.ports.output(&stream.name).ok_or_else(|| {
                    let declared: Vec<&str> =
                        self.ports.outputs.iter().map(|p| p.name.as_str()).collect();
                    invalid(format!("the port is not declared (declared: {declared:?})"))
                })?;
                if !seen.insert(stream.name.clone()) {
                    return Err(invalid("the port was returned twice".into()));
                }
                let batch = untrusted::decode_batch(stream.ipc)
                    .map_err(|e| invalid(format!("not a valid Arrow IPC stream: {e}")))?;
                if let Some(declared) = &port.schema {
                    schema::check_output_fits(declared, batch.schema_ref()).map_err(invalid)?;
                }
                Ok((stream.name.clone(), batch))
            })
            .collect()
    }

    /// The running wasm instance, starting and configuring one if needed.
    fn live(&mut self) -> Result<&mut Live, HostError> {
        if self.live.is_none() {
            let shared = &self.plugin.inner;
            self.starts += 1;
            if self.starts > 1 {
                tracing::warn!(plugin = %shared.identity, restarts = self.starts - 1, "starting a fresh instance after a failure");
            }
            let mut live = Live::start(
                &shared.engine,
                &shared.pre,
                shared.identity.clone(),
                &self.limits,
            )?;
            let context = CallContext::default();
            let config = self.config.as_str();
            let configured = live
                .call("configure", &self.limits, context, |b, s| {
                    b.call_configure(s, config)
                })?
                .map_err(|error| HostError::Plugin {
                    plugin: shared.identity.clone(),
                    error: Box::new(bindings::error_from_wit(error)),
                })?;
            self.ports =
                bindings::ports_from_wit(configured.inputs, configured.outputs, &shared.identity)?;
            self.live = Some(live);
        }
        Ok(self.live.as_mut().expect("started above"))
    }

    fn discard(&mut self, error: &HostError) {
        tracing::warn!(plugin = %self.identity(), "discarding the plugin instance: {error}");
        self.live = None;
    }
}

/// One wasm instance and its store.
struct Live {
    store: Store<StoreData>,
    bindings: bindings::Plugin,
    identity: Arc<PluginIdentity>,
}

impl Live {
    fn start(
        engine: &Engine,
        pre: &bindings::PluginPre<StoreData>,
        identity: Arc<PluginIdentity>,
        limits: &PluginLimits,
    ) -> Result<Self, HostError> {
        let mut store = Store::new(
            engine,
            StoreData::new(identity.clone(), limits.memory_bytes),
        );
        store.limiter(|data| &mut data.limiter);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(deadline_ticks(limits));
        let bindings = pre.instantiate(&mut store).map_err(|e| {
            let denied = store.data_mut().limiter.take_denied();
            match classify(&identity, "instantiate", limits, denied, &[], e) {
                HostError::Trap { plugin, reason, .. } => HostError::Instantiate { plugin, reason },
                other => other,
            }
        })?;
        Ok(Live {
            store,
            bindings,
            identity,
        })
    }

    fn call<T>(
        &mut self,
        call: &'static str,
        limits: &PluginLimits,
        context: CallContext,
        f: impl FnOnce(&bindings::Plugin, &mut Store<StoreData>) -> wasmtime::Result<T>,
    ) -> Result<T, HostError> {
        self.store.data_mut().begin_call(context);
        self.store.set_epoch_deadline(deadline_ticks(limits));
        let (bindings, store) = (&self.bindings, &mut self.store);
        let result = off_async_worker(|| f(bindings, store));
        let stderr = self.store.data_mut().end_call();
        result.map_err(|error| {
            let denied = self.store.data_mut().limiter.take_denied();
            classify(&self.identity, call, limits, denied, &stderr, error)
        })
    }
}

/// Runs a plugin call where it may block its thread. wasmtime-wasi's stdio
/// (a plugin writing to stderr, or its panic message) blocks on a runtime of
/// its own, which panics when started on a tokio async worker; on a
/// multi-threaded runtime the call therefore leaves the worker first (as
/// `tokio::task::block_in_place`; a no-op on a thread that is no worker).
fn off_async_worker<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn deadline_ticks(limits: &PluginLimits) -> u64 {
    (limits
        .time_budget
        .as_nanos()
        .div_ceil(EPOCH_TICK.as_nanos()) as u64)
        .max(1)
        + 1
}

/// Turns a failed call into the host error that says what happened.
fn classify(
    plugin: &Arc<PluginIdentity>,
    call: &'static str,
    limits: &PluginLimits,
    denied: Option<usize>,
    stderr: &[String],
    error: wasmtime::Error,
) -> HostError {
    let plugin = plugin.clone();
    if let Some(requested) = denied {
        return HostError::OutOfMemory {
            plugin,
            call,
            requested,
            cap: limits.memory_bytes,
        };
    }
    if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return HostError::Timeout {
            plugin,
            call,
            budget: limits.time_budget,
        };
    }
    let mut reason = match error.downcast_ref::<Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{error:#}")
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    let tail: Vec<&str> = stderr
        .iter()
        .rev()
        .take(5)
        .rev()
        .map(String::as_str)
        .collect();
    if !tail.is_empty() {
        reason = format!("{reason}; plugin stderr: {}", tail.join(" | "));
    }
    HostError::Trap {
        plugin,
        call,
        reason,
    }
}
