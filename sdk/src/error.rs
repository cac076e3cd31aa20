//! The typed error a plugin returns from `configure` or `process` (a *data* error,
//! as opposed to a trap, which the host treats as a fault of the plugin).

use std::fmt;

/// Which side is at fault, mirroring `error-kind` in the WIT contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The config is invalid; [`PluginError::key`] names the offending key.
    BadConfig,
    /// An input cannot be processed as a whole (missing column, wrong type).
    BadInput,
    /// A bug or broken invariant inside the plugin.
    Internal,
}

impl ErrorKind {
    /// The kebab-case name used in the WIT contract and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadConfig => "bad-config",
            ErrorKind::BadInput => "bad-input",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An error returned by a plugin. Row-level problems are not errors: send those
/// rows to a `rejected` output with [`crate::Rejects`] instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// Which side is at fault.
    pub kind: ErrorKind,
    /// What went wrong, in one sentence.
    pub message: String,
    /// For [`ErrorKind::BadConfig`]: the dotted path of the offending key.
    pub key: Option<String>,
    /// For [`ErrorKind::BadInput`]: the input port.
    pub input: Option<String>,
    /// For [`ErrorKind::BadInput`]: the row index within that input.
    pub row: Option<u64>,
}

impl PluginError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        PluginError {
            kind,
            message: message.into(),
            key: None,
            input: None,
            row: None,
        }
    }

    /// The config key at `key` (dotted path, e.g. `fields[2].type`) is invalid.
    pub fn bad_config(key: impl Into<String>, message: impl Into<String>) -> Self {
        PluginError {
            key: Some(key.into()),
            ..Self::new(ErrorKind::BadConfig, message)
        }
    }

    /// The input port `input` cannot be processed.
    pub fn bad_input(input: impl Into<String>, message: impl Into<String>) -> Self {
        PluginError {
            input: Some(input.into()),
            ..Self::new(ErrorKind::BadInput, message)
        }
    }

    /// A bug or broken invariant inside the plugin.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Names the row (index within the input) that caused the error.
    pub fn at_row(mut self, row: u64) -> Self {
        self.row = Some(row);
        self
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind.as_str())?;
        if let Some(key) = &self.key {
            write!(f, " at config key `{key}`")?;
        }
        if let Some(input) = &self.input {
            write!(f, " in input `{input}`")?;
        }
        if let Some(row) = self.row {
            write!(f, " row {row}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PluginError {}

impl From<arrow_schema::ArrowError> for PluginError {
    fn from(err: arrow_schema::ArrowError) -> Self {
        PluginError::internal(format!("arrow: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_key_input_and_row() {
        let err = PluginError::bad_config("fields[1].type", "unknown type `strin`");
        assert_eq!(
            err.to_string(),
            "bad-config at config key `fields[1].type`: unknown type `strin`"
        );
        let err = PluginError::bad_input("in", "column `value` is missing").at_row(7);
        assert_eq!(
            err.to_string(),
            "bad-input in input `in` row 7: column `value` is missing"
        );
    }
}
