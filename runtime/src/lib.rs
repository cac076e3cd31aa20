//! # weir-runtime: the Weir host
//!
//! The host owns all I/O and every guarantee; plugins own per-layer logic. This
//! crate loads plugins (WebAssembly components implementing `wit/plugin.wit`),
//! runs them in a sandbox with no capabilities, a memory cap and a time budget,
//! and moves Arrow data in and out of them. The `weir` binary is its CLI.

pub mod admin;
pub mod audit;
pub mod bindings;
pub mod cache;
pub mod connector;
pub mod control;
pub mod delta;
pub mod demo;
pub mod determinism;
pub mod engine;
pub mod error;
pub mod files;
pub mod kafka;
pub mod landing;
pub mod limits;
pub mod pipeline;
pub mod plugin;
pub mod plugin_build;
pub mod run;
mod stdio;
mod store;
pub mod units;
mod untrusted;

pub use cache::CacheOutcome;
pub use determinism::CallContext;
pub use engine::{EngineOptions, PluginEngine};
pub use error::{HostError, PluginIdentity};
pub use limits::PluginLimits;
pub use plugin::{LoadedPlugin, PluginInstance, PortBatch};
