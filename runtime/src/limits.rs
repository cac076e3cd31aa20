//! Per-plugin resource limits (memory cap, time budget per call) and the
//! wasmtime limiter that enforces the memory cap and remembers a denial, so the
//! resulting trap can be reported as out-of-memory rather than a bare trap.

use serde::Deserialize;
use std::time::Duration;

/// Memory cap applied when none is configured.
pub const DEFAULT_MEMORY_BYTES: usize = 256 * 1024 * 1024;
/// Time budget per call applied when none is configured.
pub const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(5);
/// The largest memory cap the engine's instance pool is sized for.
pub const MAX_MEMORY_BYTES: usize = 4 * 1024 * 1024 * 1024;

/// Limits for one plugin instance. In config files: `memory = "512MiB"`,
/// `time_budget = "2s"`; either may be left out for its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Largest linear memory the plugin may grow to, in bytes.
    #[serde(
        rename = "memory",
        deserialize_with = "crate::units::serde_human::bytes"
    )]
    pub memory_bytes: usize,
    /// Longest a single `configure` or `process` call may run.
    #[serde(deserialize_with = "crate::units::serde_human::duration")]
    pub time_budget: Duration,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            time_budget: DEFAULT_TIME_BUDGET,
        }
    }
}

impl PluginLimits {
    /// Checks the limits are within what the engine supports.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.memory_bytes < 1024 * 1024 {
            problems.push(format!(
                "memory cap {} bytes is below the 1 MiB minimum",
                self.memory_bytes
            ));
        }
        if self.memory_bytes > MAX_MEMORY_BYTES {
            problems.push(format!(
                "memory cap {} bytes is above the 4 GiB maximum",
                self.memory_bytes
            ));
        }
        if self.time_budget.is_zero() {
            problems.push("time budget must be positive".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Enforces the memory cap and records the first growth it refused.
#[derive(Debug)]
pub struct MemoryLimiter {
    cap: usize,
    denied: Option<usize>,
    /// The largest linear memory granted so far, in bytes.
    granted: usize,
}

impl MemoryLimiter {
    /// A limiter for `cap` bytes.
    pub fn new(cap: usize) -> Self {
        MemoryLimiter {
            cap,
            denied: None,
            granted: 0,
        }
    }

    /// The cap in bytes.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The largest linear memory granted so far, in bytes (a wasm memory never shrinks).
    pub fn granted(&self) -> usize {
        self.granted
    }

    /// Takes the size of the refused growth, if one happened since the last take.
    pub fn take_denied(&mut self) -> Option<usize> {
        self.denied.take()
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.denied = Some(desired);
            // An error (rather than `Ok(false)`) traps right at the growth, instead
            // of letting the allocator turn a failed grow into an opaque abort.
            wasmtime::bail!(
                "memory growth to {desired} bytes exceeds the cap of {} bytes",
                self.cap
            );
        }
        self.granted = self.granted.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn refuses_growth_past_the_cap_and_remembers_it() {
        let mut limiter = MemoryLimiter::new(1 << 20);
        assert!(limiter.memory_growing(0, 1 << 19, None).unwrap());
        assert!(limiter.take_denied().is_none());
        assert!(limiter.memory_growing(0, 2 << 20, None).is_err());
        assert_eq!(limiter.take_denied(), Some(2 << 20));
        assert_eq!(limiter.take_denied(), None);
    }

    #[test]
    fn reads_human_units_and_names_unknown_keys() {
        let limits: PluginLimits =
            serde_json::from_str(r#"{"memory": "64MiB", "time_budget": "250ms"}"#).unwrap();
        assert_eq!(
            limits,
            PluginLimits {
                memory_bytes: 64 << 20,
                time_budget: Duration::from_millis(250)
            }
        );
        let defaults: PluginLimits = serde_json::from_str("{}").unwrap();
        assert_eq!(defaults, PluginLimits::default());
        let err =
            serde_json::from_str::<PluginLimits>(r#"{"time_budget": "5 fortnights"}"#).unwrap_err();
        assert!(
            err.to_string().contains("`5 fortnights` is not a duration"),
            "{err}"
        );
        let err = serde_json::from_str::<PluginLimits>(r#"{"memry": "1GiB"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `memry`"), "{err}");
    }

    #[test]
    fn validates_bounds() {
        assert!(PluginLimits::default().validate().is_ok());
        let bad = PluginLimits {
            memory_bytes: 10,
            time_budget: Duration::ZERO,
        };
        let err = bad.validate().unwrap_err();
        assert!(
            err.contains("below the 1 MiB minimum") && err.contains("time budget"),
            "{err}"
        );
    }
}
