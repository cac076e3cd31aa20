//! What a plugin declares about itself: name, version, ports and config schema.

use arrow_schema::{Schema, SchemaRef};
use std::sync::Arc;

/// A named input or output of a plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    /// The port's name, e.g. `in`, `out`, `rejected`.
    pub name: String,
    /// One sentence for `weir plugin inspect`.
    pub description: String,
    /// The columns the port carries; `None` means any schema. For inputs the
    /// listed columns must be present (more are allowed); outputs must match exactly.
    pub schema: Option<SchemaRef>,
}

impl Port {
    /// A port that accepts or produces any schema.
    pub fn any(name: impl Into<String>, description: impl Into<String>) -> Self {
        Port {
            name: name.into(),
            description: description.into(),
            schema: None,
        }
    }

    /// A port with a fixed schema.
    pub fn with_schema(
        name: impl Into<String>,
        description: impl Into<String>,
        schema: Schema,
    ) -> Self {
        Port {
            name: name.into(),
            description: description.into(),
            schema: Some(Arc::new(schema)),
        }
    }
}

/// Everything the host learns about a plugin before configuring it.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Stable identifier, lowercase with dashes.
    pub name: String,
    /// Semantic version.
    pub version: String,
    /// One paragraph for humans.
    pub description: String,
    /// Input ports (schemas may be `None` when they depend on config).
    pub inputs: Vec<Port>,
    /// Output ports (schemas may be `None` when they depend on config).
    pub outputs: Vec<Port>,
    /// A JSON Schema describing the config object.
    pub config_schema: serde_json::Value,
}

impl Manifest {
    /// The ports as declared, for plugins whose schemas do not depend on config.
    pub fn ports(&self) -> Ports {
        Ports {
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
        }
    }
}

/// The ports of a configured plugin, with config-dependent schemas resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Ports {
    /// Input ports.
    pub inputs: Vec<Port>,
    /// Output ports.
    pub outputs: Vec<Port>,
}

impl Ports {
    /// The output port called `name`, if declared.
    pub fn output(&self, name: &str) -> Option<&Port> {
        self.outputs.iter().find(|p| p.name == name)
    }

    /// The input port called `name`, if declared.
    pub fn input(&self, name: &str) -> Option<&Port> {
        self.inputs.iter().find(|p| p.name == name)
    }
}
