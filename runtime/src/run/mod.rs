//! `weir run`: executes a validated pipeline file. Each pipeline advances in
//! numbered epochs (see `docs/exactly-once.md`): plan the source range, run
//! the stages, commit every sink with the epoch as its Delta `txn` version,
//! snapshot state, then move on. On start each pipeline first finishes any
//! epoch a crash interrupted, replaying exactly its recorded range.

pub mod active;
pub mod bisect;
pub mod checkpoint;
pub mod continuity;
pub mod dedupe;
pub mod epoch;
pub mod lookups;
pub mod pins;
pub mod pipeline_runner;
pub mod quarantine;
pub mod recovery;
pub mod shadow;
pub mod stages;
pub mod swap;

use crate::delta::DeltaError;
use crate::error::HostError;
use crate::kafka::KafkaError;
use epoch::EpochPlan;
use std::path::PathBuf;

pub use pipeline_runner::{PipelineReport, RunOptions, deployment_name, run_file, run_file_with};

/// Why a pipeline stopped with an error. Variants name the pipeline, file or table.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The checkpoint directory cannot be used.
    #[error("checkpoint {path}: cannot {action}: {source}")]
    Checkpoint {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another process runs this pipeline.
    #[error("checkpoint {path} is locked by another running `weir run`; one process per pipeline")]
    Locked {
        /// The checkpoint directory.
        path: PathBuf,
    },
    /// A checkpoint file cannot be read back.
    #[error("checkpoint {path}: {reason}")]
    CorruptCheckpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A plugin failed in a way that stops the pipeline.
    #[error("pipeline `{pipeline}`, stage `{stage}`{}: {source}{}", epoch_context(.epoch), quarantine_hint(.pipeline, .epoch))]
    Plugin {
        /// The pipeline.
        pipeline: String,
        /// The stage.
        stage: String,
        /// The epoch being processed, if any.
        epoch: Option<Box<EpochPlan>>,
        /// The host error (names plugin, version and hash).
        source: Box<HostError>,
    },
    /// A recorded epoch names a plugin version or config that is neither the
    /// current one nor kept in the checkpoint, so it cannot be replayed exactly.
    #[error(
        "pipeline `{pipeline}`: epoch {epoch} was planned with stage `{}` running {}@{} ({}) with config {}, but that {what} is neither the one the pipeline file names now nor kept in {}; put that plugin file back (or restore {}) to replay the epoch exactly",
        pin.stage, pin.plugin, pin.version, &pin.hash[..pin.hash.len().min(12)], &pin.config_hash[..pin.config_hash.len().min(12)], kept.display(), kept.display()
    )]
    RecordedVersionMissing {
        /// The pipeline.
        pipeline: String,
        /// The epoch being replayed.
        epoch: u64,
        /// What the plan recorded.
        pin: Box<epoch::StagePin>,
        /// `plugin` or `config`.
        what: &'static str,
        /// Where kept versions live.
        kept: PathBuf,
    },
    /// A stage rejected more of an epoch's rows than its `max_rejected_ratio`
    /// allows; the epoch was not committed.
    #[error(
        "pipeline `{pipeline}`, stage `{stage}`, epoch {epoch}: rejected {rejected} of {rows_in} rows, more than max_rejected_ratio = {ratio}; the epoch is not committed. Fix the plugin or the data and restart, or move past the epoch with `weir quarantine FILE --pipeline {pipeline} --epoch {epoch} --reason TEXT`"
    )]
    TooManyRejected {
        /// The pipeline.
        pipeline: String,
        /// The stage.
        stage: String,
        /// The epoch.
        epoch: u64,
        /// Rows rejected.
        rejected: usize,
        /// Rows given to the stage.
        rows_in: usize,
        /// The configured limit.
        ratio: f64,
    },
    /// A stage's running version no longer fits what feeds it (learnt when
    /// a replay or restart runs another version upstream).
    #[error(
        "pipeline `{pipeline}`, stage `{stage}`: the version it runs does not fit the pipeline: {reason}"
    )]
    VersionDoesNotFit {
        /// The pipeline.
        pipeline: String,
        /// The stage.
        stage: String,
        /// Why.
        reason: String,
    },
    /// More rows of an epoch made a stage's plugin fail than its
    /// `poison.max_ratio` allows (and its policy is to stop).
    #[error("{0}")]
    PoisonExceeded(Box<PoisonExceededError>),
    /// Dedupe state failed.
    #[error("dedupe: {reason}")]
    Dedupe {
        /// Why.
        reason: String,
    },
    /// Delta I/O failed.
    #[error("pipeline `{pipeline}`: {source}")]
    Delta {
        /// The pipeline.
        pipeline: String,
        /// The table error (names the table).
        source: DeltaError,
    },
    /// Kafka I/O failed.
    #[error("pipeline `{pipeline}`: {source}")]
    Kafka {
        /// The pipeline.
        pipeline: String,
        /// The Kafka error.
        source: KafkaError,
    },
    /// A new epoch's range does not continue the last committed one; its plan
    /// was not written.
    #[error(
        "pipeline `{pipeline}`: refusing to plan epoch {epoch}: its source range does not continue epoch {previous}: {}",
        problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Discontinuity {
        /// The pipeline.
        pipeline: String,
        /// The epoch that would have been planned.
        epoch: u64,
        /// The last committed or replayed epoch.
        previous: u64,
        /// Every violation found.
        problems: Vec<continuity::Discontinuity>,
    },
    /// A source or sink connector failed (its error names the file, table or topic).
    #[error("pipeline `{pipeline}`: {kind} source: {source}")]
    Connector {
        /// The pipeline.
        pipeline: String,
        /// The connector kind (`files`, ...).
        kind: &'static str,
        /// The connector's own error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A recorded range is of another source kind than the pipeline's source
    /// (the pipeline file's source was changed under an existing checkpoint).
    #[error(
        "pipeline `{pipeline}`: a recorded epoch range is not a {expected} range; the pipeline's source was changed under an existing checkpoint — use a new checkpoint directory and sink tables (or restore the old source)"
    )]
    WrongSourceKind {
        /// The pipeline.
        pipeline: String,
        /// The kind of the pipeline's source.
        expected: &'static str,
    },
    /// The pipeline was opened without the source schema validation learns
    /// (a prepared pipeline always has it).
    #[error(
        "pipeline `{pipeline}`: the source's schema was not validated before the source was opened"
    )]
    SourceSchemaUnknown {
        /// The pipeline.
        pipeline: String,
    },
    /// A lookup table no longer has the shape its input was validated with.
    #[error("{0}")]
    LookupSchemaChanged(Box<LookupDrift>),
    /// `weir quarantine` refused (see [`quarantine::Refusal`]).
    #[error("cannot quarantine: {0}")]
    Quarantine(Box<quarantine::Refusal>),
    /// An epoch committed to a sink has no plan anywhere.
    #[error(
        "pipeline `{pipeline}`: epoch {epoch} is committed to some sinks but its plan is neither in the checkpoint nor in their commits"
    )]
    LostPlan {
        /// The pipeline.
        pipeline: String,
        /// The epoch.
        epoch: u64,
    },
}

/// Too many poison rows in one epoch (see [`RunError::PoisonExceeded`]).
#[derive(Debug, thiserror::Error)]
#[error(
    "pipeline `{pipeline}`, stage `{stage}`, epoch {epoch}: {reason}; the epoch is not committed. Fix the plugin (or raise poison.max_ratio, or set poison.on_exceed = \"quarantine\") and restart, or move past the epoch with `weir quarantine FILE --pipeline {pipeline} --epoch {epoch} --reason TEXT`"
)]
pub struct PoisonExceededError {
    /// The pipeline.
    pub pipeline: String,
    /// The stage.
    pub stage: String,
    /// The epoch.
    pub epoch: u64,
    /// How many rows, of how many, and the plugin's error.
    pub reason: String,
}

/// A lookup table read at a version whose schema no longer fits the one
/// its input was validated with.
#[derive(Debug, thiserror::Error)]
#[error(
    "pipeline `{pipeline}`, stage `{stage}`: lookup `{port}` reads {} at version {version}, which no longer fits the schema validated at start: {reason}; if the table's schema changed on purpose, restart the pipeline so it validates against the table as it is now",
    table.display()
)]
pub struct LookupDrift {
    /// The pipeline.
    pub pipeline: String,
    /// The stage.
    pub stage: String,
    /// The lookup input port.
    pub port: String,
    /// The table.
    pub table: PathBuf,
    /// The version read.
    pub version: u64,
    /// Every column at fault.
    pub reason: String,
}

impl RunError {
    /// Whether the error says a recorded epoch's input no longer exists
    /// (landed files deleted or moved away after their epoch committed), as
    /// opposed to being unreadable right now.
    pub fn input_gone(&self) -> bool {
        match self {
            RunError::Connector { source, .. } => matches!(
                source.downcast_ref::<crate::landing::LandingError>(),
                Some(crate::landing::LandingError::Missing { .. })
            ),
            _ => false,
        }
    }
}

/// How to move past a failing epoch, for errors that name one.
fn quarantine_hint(pipeline: &str, epoch: &Option<Box<EpochPlan>>) -> String {
    match epoch {
        Some(plan) => format!(
            ". To move past this epoch while no sink holds it, send its input to the dead-letter table: weir quarantine FILE --pipeline {pipeline} --epoch {} --reason TEXT",
            plan.epoch
        ),
        None => String::new(),
    }
}

fn epoch_context(epoch: &Option<Box<EpochPlan>>) -> String {
    match epoch {
        Some(plan) => format!(
            ", epoch {} ({})",
            plan.epoch,
            serde_json::to_string(&plan.source).unwrap_or_default()
        ),
        None => String::new(),
    }
}
