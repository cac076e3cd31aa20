//! Pipeline files: their format ([`spec`]), loading with `${VAR}`
//! substitution and every structural problem collected ([`load`]), the
//! resolved model ([`model`]) and the checks that need plugins and tables
//! ([`validate`]). `weir validate` runs all of it; `weir run` runs it first.

pub mod env;
pub mod load;
pub mod model;
pub mod spec;
pub mod validate;
mod validate_changes;

pub use model::{
    KafkaSink, Lookup, Pipeline, PipelineFile, PortRef, Problem, Sink, Source, Stage, Upsert,
};
pub use validate::{PreparedFile, PreparedPipeline, Upstream};

use crate::engine::PluginEngine;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Why a pipeline file cannot run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineFileError {
    /// The file cannot be read.
    #[error("cannot read pipeline file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file has problems; all of them are listed.
    #[error("{path}: {} problem{}:\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, list(problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a pipeline file, resolving `${VAR}`s from the process environment.
pub fn read(path: &Path) -> Result<PipelineFile, PipelineFileError> {
    read_with(path, &HashMap::new())
}

/// Reads a pipeline file, resolving `${VAR}`s from `overrides` first, then
/// from the process environment.
pub fn read_with(
    path: &Path,
    overrides: &HashMap<String, String>,
) -> Result<PipelineFile, PipelineFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PipelineFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let lookup = |name: &str| {
        overrides
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    };
    load::parse(path, &text, &lookup).map_err(|problems| PipelineFileError::Invalid {
        path: path.to_path_buf(),
        problems,
    })
}

/// Reads and fully validates a pipeline file.
pub async fn read_and_validate(
    path: &Path,
    engine: &PluginEngine,
) -> Result<PreparedFile, PipelineFileError> {
    validate_file(read(path)?, engine).await
}

/// Fully validates a loaded pipeline file.
pub async fn validate_file(
    file: PipelineFile,
    engine: &PluginEngine,
) -> Result<PreparedFile, PipelineFileError> {
    let path = file.path.clone();
    validate::validate(file, engine)
        .await
        .map_err(|problems| PipelineFileError::Invalid { path, problems })
}
