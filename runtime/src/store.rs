//! The per-instance store state: a WASI context that grants nothing (no
//! preopened directories, no environment, no sockets, no stdin), deterministic
//! clocks and random, captured stdio, the memory limiter, and the `host.log`
//! import.

use crate::bindings::generated::weir::plugin::host::{self, LogLevel};
use crate::determinism::{CallContext, SeededRandom, VirtualClock};
use crate::error::PluginIdentity;
use crate::limits::MemoryLimiter;
use crate::stdio::CapturedOutput;
use std::sync::Arc;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Log lines a plugin may write per call before the rest are dropped.
const MAX_LOG_LINES_PER_CALL: usize = 1000;

/// The data of one plugin store.
pub struct StoreData {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    identity: Arc<PluginIdentity>,
    clock: VirtualClock,
    random: SeededRandom,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
    log_lines: usize,
    dropped_log_lines: usize,
}

impl StoreData {
    /// A sandbox with no capabilities for `identity`, capped at `memory_bytes`.
    pub fn new(identity: Arc<PluginIdentity>, memory_bytes: usize) -> Self {
        let clock = VirtualClock::default();
        let random = SeededRandom::default();
        let (stdout, stderr) = (CapturedOutput::default(), CapturedOutput::default());
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .wall_clock(clock.clone())
            .monotonic_clock(clock.clone())
            .secure_random(random.clone())
            .insecure_random(random.clone())
            .insecure_random_seed(0x5745_4952)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        StoreData {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_bytes),
            identity,
            clock,
            random,
            stdout,
            stderr,
            log_lines: 0,
            dropped_log_lines: 0,
        }
    }

    /// Sets the clock and reseeds the random source before a call.
    pub fn begin_call(&mut self, context: CallContext) {
        self.clock.set(context.clock_nanos);
        self.random.reseed(context.seed);
        self.log_lines = 0;
        self.dropped_log_lines = 0;
        let _ = self.limiter.take_denied();
    }

    /// Forwards captured stdout/stderr to the host log; returns stderr's lines
    /// (a panicking plugin's message is there).
    pub fn end_call(&mut self) -> Vec<String> {
        let plugin = &self.identity;
        for line in self.stdout.drain_lines() {
            tracing::info!(target: "weir::plugin", plugin = %plugin.name, version = %plugin.version, stream = "stdout", "{line}");
        }
        let stderr = self.stderr.drain_lines();
        for line in &stderr {
            tracing::warn!(target: "weir::plugin", plugin = %plugin.name, version = %plugin.version, stream = "stderr", "{line}");
        }
        if self.dropped_log_lines > 0 {
            tracing::warn!(target: "weir::plugin", plugin = %plugin.name, "{} log lines over the per-call limit were dropped", self.dropped_log_lines);
        }
        stderr
    }
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl host::Host for StoreData {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES_PER_CALL {
            self.dropped_log_lines += 1;
            return;
        }
        let plugin = &self.identity;
        let (name, version) = (plugin.name.as_str(), plugin.version.as_str());
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "weir::plugin", plugin = name, version, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "weir::plugin", plugin = name, version, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "weir::plugin", plugin = name, version, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "weir::plugin", plugin = name, version, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "weir::plugin", plugin = name, version, "{message}")
            }
        }
    }
}

impl crate::bindings::generated::weir::plugin::types::Host for StoreData {}
