//! The two extension points of the epoch runner: [`Source`] and [`Sink`].
//! The runner (`run/pipeline_runner.rs`) knows no connector by name; it
//! plans, replays and acknowledges through a `Box<dyn Source>` and commits
//! through `Box<dyn Sink>`s, both opened by the [`registry`]. Adding a
//! connector is one module implementing a trait, one entry in the registry
//! (the config variant, the opening call, the range variant) and its section
//! in `docs/pipeline.md`; `docs/architecture.md` walks through it.

pub mod reach;
pub mod registry;

use crate::delta::dead_letters::Origin;
use crate::pipeline::PortRef;
use crate::pipeline::spec::BatchPolicy;
use crate::run::RunError;
use crate::run::epoch::{EpochPlan, SourceRange};
use arrow::array::RecordBatch;
use std::sync::atomic::AtomicBool;

pub use reach::{Progress, Reach, Writers};
pub use registry::{open_sinks, open_source, prepare_sinks};

/// One epoch's input, as a source delivers it.
pub struct Fetched {
    /// The source rows, in the source's deterministic order.
    pub batch: RecordBatch,
    /// The exact range they cover; recorded in the epoch plan.
    pub range: SourceRange,
    /// Maps rows back to source records (for dead letters).
    pub rows: Box<dyn SourceRows + Send + Sync>,
}

/// Traces rows of a fetched batch back to their source records.
pub trait SourceRows {
    /// Where source row `row` came from (kind and position, e.g. Kafka topic,
    /// partition and offset).
    fn origin(&self, row: usize) -> Origin;
    /// The raw bytes of source row `row`, when the source has them.
    fn raw(&self, row: usize) -> Option<Vec<u8>>;
    /// The origin of rows that cannot be traced to one source record (a
    /// later stage's output): the source kind, at most its name.
    fn untraced(&self) -> Origin;
}

/// A source of epochs. Every range it returns is recorded in the epoch's plan
/// before the epoch runs; after a crash the runner hands the recorded range
/// back to [`Source::replay`], which must return exactly the same rows in the
/// same order. Ranges must tile the source: each starts where the last
/// acknowledged one ended (checked by `run/continuity.rs` before a plan is
/// written).
#[async_trait::async_trait]
pub trait Source: Send {
    /// Reads the next epoch under `policy`. `None` when `stop` is set, or,
    /// with `once`, when everything available at start has been read (Spark's
    /// `availableNow`). Never returns an empty batch.
    async fn next(
        &mut self,
        policy: &BatchPolicy,
        once: bool,
        stop: &AtomicBool,
    ) -> Result<Option<Fetched>, RunError>;

    /// Reads a recorded range again: the same rows in the same order, or an
    /// error naming what can no longer be read (retention, a vacuumed version).
    async fn replay(&mut self, range: &SourceRange) -> Result<Fetched, RunError>;

    /// Called once every sink holds the epoch covering `range`: the next
    /// epoch starts where it ended, and the source may tell the outside world
    /// (Kafka group offsets, moving processed files).
    async fn acknowledge(&mut self, range: &SourceRange) -> Result<(), RunError>;

    /// How far behind the source the pipeline is, in the source's unit
    /// (messages, versions, files); `None` when unknown.
    async fn lag(&mut self) -> Option<i64>;

    /// The lag per partition (`topic/partition` for Kafka); sources without
    /// partitions report their whole lag as partition `all`.
    async fn lag_by_partition(&mut self) -> Vec<(String, i64)> {
        self.lag()
            .await
            .map(|lag| vec![("all".to_string(), lag)])
            .unwrap_or_default()
    }

    /// Called once when the pipeline stops cleanly (flush what `acknowledge`
    /// queued).
    async fn close(&mut self) {}
}

/// A sink of epochs. A commit must be idempotent per epoch and atomic with
/// the record of which epoch it holds (Delta: the `txn` action
/// `(app id, epoch)` in the same commit), so recovery can ask each sink for
/// the last epoch it holds and write only what it lacks.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// The sink's name in the pipeline file (`dead_letters` for the dead-letter table).
    fn name(&self) -> &str;

    /// The port it takes rows from; `None` for the dead-letter sink.
    fn from(&self) -> Option<&PortRef>;

    /// The last epoch this sink holds, read from the sink itself (`None` if
    /// it never committed one).
    async fn last_epoch(&mut self) -> Result<Option<u64>, RunError>;

    /// The plan of `epoch` as recorded with the sink's commit of it, if the
    /// sink keeps one (Delta: Weir's `commitInfo` record).
    async fn recorded_plan(&mut self, epoch: u64) -> Result<Option<EpochPlan>, RunError>;

    /// Commits `batches` as epoch `epoch`, with Weir's `record` (the plan,
    /// plugin versions and counts) stored alongside. Called at most once per
    /// epoch per run, and only for epochs the sink lacks.
    async fn commit(
        &mut self,
        epoch: u64,
        batches: Vec<RecordBatch>,
        record: serde_json::Value,
    ) -> Result<(), RunError>;
}
