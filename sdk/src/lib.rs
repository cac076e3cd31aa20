//! # weir-sdk: write Weir plugins
//!
//! A Weir plugin owns one layer of a pipeline's logic — parse, filter, upsert,
//! join, aggregate — and nothing else: the host owns all I/O. It receives Arrow
//! record batches on named input ports and returns batches on named output
//! ports. You implement one trait, [`Plugin`], and call one macro, [`export!`];
//! the SDK hides the WebAssembly bindings and the Arrow IPC encoding.
//!
//! ```
//! use weir_sdk::prelude::*;
//!
//! /// Keeps the rows whose `status` equals the configured value.
//! pub struct KeepStatus {
//!     status: String,
//! }
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! pub struct Config {
//!     status: String,
//! }
//!
//! impl Plugin for KeepStatus {
//!     type Config = Config;
//!
//!     fn manifest() -> Manifest {
//!         Manifest {
//!             name: "keep-status".into(),
//!             version: "0.1.0".into(),
//!             description: "Keeps rows with a given status.".into(),
//!             inputs: vec![Port::with_schema("in", "Orders.", Schema::new(vec![Field::new("status", DataType::Utf8, true)]))],
//!             outputs: vec![Port::any("out", "The kept rows, same columns as the input.")],
//!             config_schema: json!({"type": "object", "required": ["status"],
//!                                   "properties": {"status": {"type": "string"}}}),
//!         }
//!     }
//!
//!     fn configure(config: Config) -> Result<Self, PluginError> {
//!         Ok(KeepStatus { status: config.status })
//!     }
//!
//!     fn process(&mut self, inputs: &Inputs) -> Result<Outputs, PluginError> {
//!         let orders = inputs.get("in")?;
//!         let status = orders.column::<StringArray>("status")?;
//!         let keep: BooleanArray = status.iter().map(|s| Some(s == Some(self.status.as_str()))).collect();
//!         let kept = filter_record_batch(orders.batch(), &keep)?;
//!         Ok(Outputs::new().with("out", kept))
//!     }
//! }
//!
//! weir_sdk::export!(KeepStatus);
//!
//! // Unit-test it natively, through the same IPC path the sandbox uses:
//! use weir_sdk::testing::Harness;
//! let mut plugin = Harness::<KeepStatus>::new(json!({"status": "PAID"})).unwrap();
//! let batch = RecordBatch::try_from_iter([(
//!     "status",
//!     std::sync::Arc::new(StringArray::from(vec!["PAID", "NEW"])) as ArrayRef,
//! )]).unwrap();
//! let out = plugin.run(Inputs::new().with("in", batch)).unwrap();
//! assert_eq!(out.get("out").unwrap().num_rows(), 1);
//!
//! // A misspelt config key is reported by name:
//! let err = Harness::<KeepStatus>::new(json!({"statuss": "PAID"})).unwrap_err();
//! assert_eq!(err.kind, ErrorKind::BadConfig);
//! ```
//!
//! Build the plugin with `weir plugin build` (it targets `wasm32-wasip2`) and try
//! it on local files with `weir plugin run`.
#![deny(missing_docs)]

extern crate self as weir_sdk;

mod config;
mod error;
pub mod fields;
pub mod filter;
mod guest;
mod io;
pub mod ipc;
pub mod key;
pub mod log;
mod manifest;
mod rejected;
pub mod schema;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod text;

#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod bindings;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod wasm_export;

pub use arrow_array;
pub use arrow_buffer;
pub use arrow_schema;
pub use arrow_select;
pub use config::parse_config;
pub use error::{ErrorKind, PluginError};
pub use io::{Input, Inputs, Outputs};
pub use log::Level;
pub use manifest::{Manifest, Port, Ports};
pub use rejected::{REJECTED_PORT, Rejects, rejected_port, rejected_schema};
pub use serde_json;

/// What a plugin implements. See the crate docs for a complete example.
pub trait Plugin: Sized + 'static {
    /// The plugin's config, parsed from the JSON object in the pipeline file.
    /// Use `#[serde(deny_unknown_fields)]` so misspelt keys are reported.
    type Config: serde::de::DeserializeOwned;

    /// Describes the plugin: name, version, ports, config schema.
    fn manifest() -> Manifest;

    /// Validates the config and builds the plugin. Called once per instance.
    fn configure(config: Self::Config) -> Result<Self, PluginError>;

    /// The ports after configuration. Override when output schemas depend on
    /// the config (e.g. a parser whose output columns are configured).
    fn ports(&self) -> Ports {
        Self::manifest().ports()
    }

    /// Transforms one batch of inputs into outputs. Return rows that cannot be
    /// processed on a `rejected` output ([`Rejects`]) rather than failing.
    fn process(&mut self, inputs: &Inputs) -> Result<Outputs, PluginError>;
}

/// Everything a plugin usually needs, in one import.
pub mod prelude {
    pub use crate::filter::filter_record_batch;
    pub use crate::{
        ErrorKind, Input, Inputs, Manifest, Outputs, Plugin, PluginError, Port, Ports,
        REJECTED_PORT, Rejects, rejected_port, rejected_schema,
    };
    pub use arrow_array::ArrowPrimitiveType;
    pub use arrow_array::builder::*;
    pub use arrow_array::types::*;
    pub use arrow_array::{
        Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int32Array, Int64Array,
        LargeStringArray, ListArray, RecordBatch, StringArray, StructArray,
        TimestampMicrosecondArray, UInt32Array, UInt64Array,
    };
    pub use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
    pub use serde_json::json;
}

/// Exports a [`Plugin`] implementation as the component's `weir:plugin` world.
///
/// Call it once, at the top level of the plugin crate. Natively (unit tests) it
/// only checks that the type implements [`Plugin`].
#[macro_export]
macro_rules! export {
    ($plugin:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __WeirExport;
            impl $crate::__private::bindings::Guest for __WeirExport {
                fn manifest() -> $crate::__private::bindings::weir::plugin::types::Manifest {
                    $crate::__private::wasm_export::manifest::<$plugin>()
                }
                fn configure(
                    config: ::std::string::String,
                ) -> ::std::result::Result<
                    $crate::__private::bindings::weir::plugin::types::Configured,
                    $crate::__private::bindings::weir::plugin::types::PluginError,
                > {
                    $crate::__private::wasm_export::configure::<$plugin>(config)
                }
                fn process(
                    inputs: ::std::vec::Vec<$crate::__private::bindings::weir::plugin::types::NamedStream>,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::__private::bindings::weir::plugin::types::NamedStream>,
                    $crate::__private::bindings::weir::plugin::types::PluginError,
                > {
                    $crate::__private::wasm_export::process::<$plugin>(inputs)
                }
            }
            $crate::__private::bindings::__weir_export_world!(__WeirExport with_types_in $crate::__private::bindings);
        };
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() = || {
            fn assert_plugin<P: $crate::Plugin>() {}
            assert_plugin::<$plugin>();
        };
    };
}

#[doc(hidden)]
pub mod __private {
    #[cfg(target_arch = "wasm32")]
    pub use crate::{bindings, wasm_export};
    pub use wit_bindgen;
}
