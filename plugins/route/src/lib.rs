//! `route`: splits one stream by the value of a column, as seed 002 splits its
//! Kafka multiplex (`topic` = `user_info` / `workout` / `bpm`) into one stream
//! per topic. Every route is an output port carrying the rows whose column
//! equals the route's value, unchanged and in input order; rows matching no
//! route (or whose column is null) go to `unmatched`. Each row goes to exactly
//! one port. Parsing a route's payload is the next stage's job: a sink or a
//! `parse-json` stage reads `route.user_info`.

use serde::Deserialize;
use weir_sdk::arrow_buffer::BooleanBuffer;
use weir_sdk::prelude::*;

/// The port for rows no route takes.
pub const UNMATCHED_PORT: &str = "unmatched";

/// The plugin's config.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The column whose value picks the route (text or bytes), e.g. `topic`.
    pub column: String,
    /// The routes, in port order.
    pub routes: Vec<Route>,
}

/// One route: a value that is also its port's name, or `{value, port}`.
#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "a value or {\"value\": \"...\", \"port\": \"...\"}"
)]
pub enum Route {
    /// Rows with this value go to the port of the same name.
    Same(String),
    /// Rows with `value` go to `port`.
    Named(NamedRoute),
}

/// `{"value": "user-info", "port": "user_info"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedRoute {
    /// The column value.
    pub value: String,
    /// The output port's name.
    pub port: String,
}

/// The configured router: (value, port) per route.
pub struct Router {
    column: String,
    routes: Vec<(String, String)>,
}

impl Plugin for Router {
    type Config = Config;

    fn manifest() -> Manifest {
        Manifest {
            name: "route".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Splits a stream into one output port per value of a column; \
                          other values and nulls go to `unmatched`."
                .into(),
            inputs: vec![Port::any("in", "The multiplexed stream.")],
            outputs: vec![
                Port::any(
                    "ROUTE",
                    "One port per configured route (named by `routes`).",
                ),
                Port::any(
                    UNMATCHED_PORT,
                    "Rows no route takes, and rows whose column is null.",
                ),
            ],
            config_schema: json!({"type": "object", "required": ["column", "routes"],
                "additionalProperties": false, "properties": {
                    "column": {"type": "string"},
                    "routes": {"type": "array", "minItems": 1, "items": {"oneOf": [{"type": "string"},
                        {"type": "object", "required": ["value", "port"], "additionalProperties": false,
                         "properties": {"value": {"type": "string"}, "port": {"type": "string"}}}]}}}}),
        }
    }

    fn configure(config: Config) -> Result<Self, PluginError> {
        let mut routes: Vec<(String, String)> = Vec::new();
        for (i, route) in config.routes.into_iter().enumerate() {
            let (value, port) = match route {
                Route::Same(value) => (value.clone(), value),
                Route::Named(NamedRoute { value, port }) => (value, port),
            };
            let key = format!("routes[{i}]");
            if !is_port_name(&port) {
                let message = format!(
                    "`{port}` cannot name a port: use letters, digits and `_`/`-`, or give {{\"value\", \"port\"}}"
                );
                return Err(PluginError::bad_config(key, message));
            }
            if port == UNMATCHED_PORT || port == REJECTED_PORT || port == "in" {
                let message = format!("`{port}` is reserved; give this route another port name");
                return Err(PluginError::bad_config(key, message));
            }
            if let Some((_, taken)) = routes.iter().find(|(v, p)| *v == value || *p == port) {
                let message =
                    format!("value `{value}` or port `{port}` is already routed (to `{taken}`)");
                return Err(PluginError::bad_config(key, message));
            }
            routes.push((value, port));
        }
        Ok(Router {
            column: config.column,
            routes,
        })
    }

    fn ports(&self) -> Ports {
        let mut outputs: Vec<Port> = (self.routes.iter())
            .map(|(value, port)| {
                Port::any(port, format!("Rows whose `{}` is `{value}`.", self.column))
            })
            .collect();
        outputs.push(Port::any(UNMATCHED_PORT, "Rows no route takes."));
        Ports {
            inputs: vec![Port::any("in", "The multiplexed stream.")],
            outputs,
        }
    }

    fn process(&mut self, inputs: &Inputs) -> Result<Outputs, PluginError> {
        let input = inputs.get("in")?;
        let column = input.column_any(&self.column)?;
        let values = weir_sdk::text::byte_values(column).ok_or_else(|| {
            let message = format!(
                "cannot route on column `{}` of type {}; it must be text or bytes",
                self.column,
                column.data_type()
            );
            PluginError::bad_input("in", message)
        })?;
        // The route of each row: an index into `routes`, or `routes.len()` for unmatched.
        let route_of: Vec<usize> = (0..input.num_rows())
            .map(|row| {
                values(row)
                    .and_then(|v| {
                        self.routes
                            .iter()
                            .position(|(value, _)| value.as_bytes() == v)
                    })
                    .unwrap_or(self.routes.len())
            })
            .collect();
        let ports = self
            .routes
            .iter()
            .map(|(_, port)| port.as_str())
            .chain([UNMATCHED_PORT]);
        let mut outputs = Outputs::new();
        for (index, port) in ports.enumerate() {
            let mask = BooleanBuffer::collect_bool(route_of.len(), |row| route_of[row] == index);
            let rows = filter_record_batch(input.batch(), &BooleanArray::new(mask, None))?;
            outputs = outputs.with(port, rows);
        }
        Ok(outputs)
    }
}

/// Letters, digits, `_` and `-`: a name a sink's `from = "STAGE.PORT"` can hold.
fn is_port_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

weir_sdk::export!(Router);

#[cfg(test)]
mod tests;
