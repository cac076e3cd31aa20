//! A pipeline file after loading: names checked, references resolved, paths
//! made absolute, plugin configs turned into the JSON `configure` receives.
//! This is what validation checks and what `weir run` executes.

use super::spec::{
    BatchPolicy, ChangesStart, DedupeSpec, DeltaStart, KafkaConnection, KafkaStart, MergeSpec,
    PoisonPolicy, SinkMode, SwapPolicy,
};
use crate::limits::PluginLimits;
use arrow::datatypes::{Schema, SchemaRef};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Every pipeline of one file; they run together in one `weir run` process.
#[derive(Debug, Clone)]
pub struct PipelineFile {
    /// The file they were read from.
    pub path: PathBuf,
    /// Root of the per-pipeline checkpoint directories.
    pub checkpoint_dir: PathBuf,
    /// In file order.
    pub pipelines: Vec<Pipeline>,
    /// The admin API, if the file declares one.
    pub admin: Option<Admin>,
}

/// A resolved `[admin]`.
#[derive(Clone)]
pub struct Admin {
    /// Where the API listens.
    pub address: std::net::SocketAddr,
    /// The bearer token every protected endpoint requires.
    pub token: String,
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("address", &self.address)
            .field("token", &"***")
            .finish()
    }
}

/// One source, a chain (or fan-out) of plugin stages, and Delta sinks.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Unique in the file.
    pub name: String,
    /// Where records come from.
    pub source: Source,
    /// How records are grouped into epochs.
    pub batch: BatchPolicy,
    /// Where rejected and undecodable records go.
    pub dead_letters: PathBuf,
    /// In file order; a stage's input is the source or an earlier stage.
    pub stages: Vec<Stage>,
    /// Delta sinks, each fed by one stage output port.
    pub sinks: Vec<Sink>,
    /// Kafka sinks, each fed by one stage output port.
    pub kafka_sinks: Vec<KafkaSink>,
}

/// A Kafka sink: one message per row of its port.
#[derive(Debug, Clone)]
pub struct KafkaSink {
    /// Unique in the pipeline (among all its sinks).
    pub name: String,
    /// The stage output it writes.
    pub from: PortRef,
    /// The topic.
    pub topic: String,
    /// The key column, if any.
    pub key: Option<String>,
    /// The value column.
    pub value: String,
    /// `(header name, column)`, in name order.
    pub headers: Vec<(String, String)>,
    /// Partitions of the topic when Weir creates it.
    pub partitions: i32,
    /// Brokers and client properties.
    pub connection: KafkaConnection,
}

/// A resolved source.
#[derive(Debug, Clone)]
pub enum Source {
    /// Kafka topics read in a consumer group.
    Kafka {
        /// Topics to subscribe to.
        topics: Vec<String>,
        /// The consumer group.
        group_id: String,
        /// Where to begin without any recorded position.
        start: KafkaStart,
        /// Brokers and client properties.
        connection: KafkaConnection,
        /// Stop on offsets deleted by retention before they were read (else skip them).
        fail_on_data_loss: bool,
    },
    /// Files landing in a directory.
    Files(crate::landing::epoch_source::LandingSpec),
    /// New versions of a Delta table.
    Delta {
        /// The table's directory.
        table: PathBuf,
        /// Where to begin without any recorded position.
        start: DeltaStart,
        /// How often to look for new versions.
        poll_interval: Duration,
    },
    /// The Change Data Feed of Delta tables.
    Changes(Changes),
}

/// A resolved `[pipeline.source.changes]`.
#[derive(Debug, Clone)]
pub struct Changes {
    /// `(name, table directory)`, in name order: the order of every epoch's rows.
    pub tables: Vec<(String, PathBuf)>,
    /// The columns kept (`None`: every column of the single table).
    pub columns: Option<Vec<String>>,
    /// Where to begin without any recorded position.
    pub start: ChangesStart,
    /// Whether `update_preimage` rows are delivered.
    pub pre_images: bool,
    /// How often to look for new versions.
    pub poll_interval: Duration,
}

impl Source {
    /// `kafka topics a, b` or `delta table /x/y`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Source::Kafka { topics, .. } => format!("kafka topics {}", topics.join(", ")),
            Source::Delta { table, .. } => format!("delta table {}", table.display()),
            Source::Files(spec) => format!("files in {}", spec.dir.display()),
            Source::Changes(changes) => format!(
                "changes of delta tables {}",
                changes
                    .tables
                    .iter()
                    .map(|(_, t)| t.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// What feeds a stage input or a sink.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRef {
    /// The pipeline's source batch.
    Source,
    /// Output `port` of the stage at index `stage`.
    Stage {
        /// Index into [`Pipeline::stages`].
        stage: usize,
        /// The output port's name.
        port: String,
    },
}

/// A plugin stage.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Unique in the pipeline.
    pub name: String,
    /// The `.wasm` component.
    pub plugin: PathBuf,
    /// What feeds its input port.
    pub input: PortRef,
    /// The config passed to `configure`, as JSON.
    pub config_json: String,
    /// Memory cap and time budget.
    pub limits: PluginLimits,
    /// Cross-batch dedupe of `out`, if configured.
    pub dedupe: Option<DedupeSpec>,
    /// Stop when an epoch's rejected rows exceed this share of its input
    /// (`None`: no limit).
    pub max_rejected_ratio: Option<f64>,
    /// At most this many stream-input rows per plugin call (`None`: the
    /// whole epoch in one call). Only for row-wise plugins, whose output for
    /// a batch is the concatenation of their outputs for its parts.
    pub max_call_records: Option<usize>,
    /// Lookup inputs, in port order.
    pub lookups: Vec<Lookup>,
    /// Swap in the plugin file whenever it is replaced.
    pub watch: bool,
    /// Probation of swapped-in versions.
    pub swap: SwapPolicy,
    /// Poison-row bisection.
    pub poison: PoisonPolicy,
}

/// A stage's lookup input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The plugin's input port it feeds.
    pub port: String,
    /// The Delta table directory.
    pub table: PathBuf,
    /// Read only the rows whose value in this column (of the table and of
    /// the stage's input) is among the epoch's input values.
    pub key: Option<String>,
}

/// A Delta sink.
#[derive(Debug, Clone)]
pub struct Sink {
    /// Unique in the pipeline.
    pub name: String,
    /// The stage output it writes.
    pub from: PortRef,
    /// The table's directory.
    pub table: PathBuf,
    /// Append, merge or upsert.
    pub mode: SinkMode,
    /// Merge rules (present exactly when `mode` is merge).
    pub merge: Option<MergeSpec>,
    /// Upsert rules (present exactly when `mode` is upsert).
    pub upsert: Option<Upsert>,
    /// Partition columns for a new table.
    pub partition_by: Vec<String>,
    /// Table properties for a new table.
    pub properties: BTreeMap<String, String>,
}

/// A resolved `[pipeline.sink.upsert]` (see [`UpsertSpec`](super::spec::UpsertSpec)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    /// Key columns.
    pub key: Vec<String>,
    /// The ordering column: larger is newer.
    pub order_by: String,
    /// The Boolean column marking deletes; not stored in the table.
    pub deleted: String,
    /// The tombstone table's directory.
    pub tombstones: PathBuf,
}

impl Sink {
    /// The columns of the table this sink writes, given the schema of the
    /// port feeding it: the port's columns, but for an upsert sink without
    /// its delete marker.
    pub fn table_schema(&self, port: &SchemaRef) -> SchemaRef {
        match &self.upsert {
            Some(upsert) => {
                let kept: Vec<_> = (port.fields().iter())
                    .filter(|f| f.name() != &upsert.deleted)
                    .cloned()
                    .collect();
                Arc::new(Schema::new_with_metadata(kept, port.metadata().clone()))
            }
            None => port.clone(),
        }
    }
}

impl Pipeline {
    /// `source` or `STAGE.PORT`, as written in files.
    pub fn port_name(&self, port: &PortRef) -> String {
        match port {
            PortRef::Source => "source".into(),
            PortRef::Stage { stage, port } => format!("{}.{port}", self.stages[*stage].name),
        }
    }

    /// The Delta application id under which `sink`'s commits record epochs.
    pub fn app_id(&self, sink: &str) -> String {
        format!("weir:{}:{sink}", self.name)
    }
}

/// One thing wrong with a pipeline file, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `pipeline "bronze" > stage "parse"`, or a key path.
    pub location: String,
    /// What is wrong, and what would be right.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}
