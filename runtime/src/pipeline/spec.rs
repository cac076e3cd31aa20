//! The pipeline file's format: serde structs mirroring the TOML, one per
//! table, every one with `deny_unknown_fields`. Paths are as written (they are
//! resolved against the file's directory in [`super::load`]); nothing here
//! touches the disk, Kafka or a plugin.

use crate::limits::PluginLimits;
use crate::units::serde_human;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The top level of a pipeline file, without its `[[pipeline]]` tables (each of
/// those is read separately so one bad pipeline does not hide another's errors).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// Where epoch plans and per-epoch state are kept, one subdirectory per pipeline.
    pub checkpoint_dir: PathBuf,
    /// The dead-letter Delta table for pipelines that do not name their own.
    #[serde(default)]
    pub dead_letters: Option<PathBuf>,
    /// The Kafka connection shared by every Kafka source.
    #[serde(default)]
    pub kafka: Option<KafkaConnection>,
    /// The operators' HTTP API (`docs/hot-swap.md`); none: no API.
    #[serde(default)]
    pub admin: Option<AdminSpec>,
}

/// `[admin]`: where the admin API listens and where its bearer token comes
/// from. Every endpoint but `/healthz` and `/readyz` needs the token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSpec {
    /// `IP:port` to listen on (default `127.0.0.1:9870`: this machine only).
    #[serde(default = "default_admin_address")]
    pub address: String,
    /// The environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// A file holding the token (surrounding whitespace ignored).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// The admin API's default address.
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9870";

fn default_admin_address() -> String {
    DEFAULT_ADMIN_ADDRESS.to_string()
}

/// How to reach a Kafka cluster.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConnection {
    /// `host:port[,host:port...]`, librdkafka's `bootstrap.servers`.
    pub brokers: String,
    /// Extra librdkafka client properties (`security.protocol`,
    /// `sasl.username`, `sasl.password`, ...). Values of secret-looking keys
    /// are never printed.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// How long to wait for the cluster before giving up at start.
    #[serde(default = "default_connect_timeout", with = "human_duration")]
    pub connect_timeout: Duration,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Whether a client property holds a secret that must not be logged.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "jaas",
        "private",
        ".key.pem",
        "credentials",
    ]
    .iter()
    .any(|word| key.contains(word))
}

impl fmt::Debug for KafkaConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(key, value)| {
                let shown = if is_secret_property(key) {
                    "***"
                } else {
                    value.as_str()
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConnection")
            .field("brokers", &self.brokers)
            .field("properties", &properties)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// One `[[pipeline]]` without its `[[pipeline.stage]]` and `[[pipeline.sink]]` tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineHeader {
    /// Unique within the file; names the checkpoint subdirectory and the
    /// Delta application ids of this pipeline's sinks.
    pub name: String,
    /// Where records come from.
    pub source: SourceSpec,
    /// How records are grouped into epochs.
    #[serde(default)]
    pub batch: BatchPolicy,
    /// This pipeline's dead-letter table (default: the file's `dead_letters`).
    #[serde(default)]
    pub dead_letters: Option<PathBuf>,
}

/// A pipeline's source: exactly one of `[pipeline.source.kafka]`,
/// `[pipeline.source.delta]`, `[pipeline.source.changes]` or `[pipeline.source.files]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SourceSpec {
    /// Messages from Kafka topics, read in a consumer group.
    Kafka(KafkaSourceSpec),
    /// The rows each new version of a Delta table adds.
    Delta(DeltaSourceSpec),
    /// Files dropped into a landing directory.
    Files(FilesSourceSpec),
    /// The Change Data Feed of one or more Delta tables.
    Changes(ChangesSourceSpec),
}

/// `[pipeline.source.changes]`: row-level changes (inserts, update
/// post-images, deletes, and pre-images on request) of Delta tables, read by
/// the Delta protocol's Change Data Feed rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesSourceSpec {
    /// Table name (the `_table` column's value) → the table's directory.
    pub tables: BTreeMap<String, PathBuf>,
    /// The columns kept from each table's rows, found by name in every
    /// table; required with several tables, default every column of a
    /// single table.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Where to begin when the sinks have no position yet.
    #[serde(default)]
    pub start: ChangesStart,
    /// Also deliver `update_preimage` rows (the row before an update).
    #[serde(default)]
    pub pre_images: bool,
    /// How often to look for new versions while streaming.
    #[serde(default = "default_poll_interval", with = "human_duration")]
    pub poll_interval: Duration,
}

/// Where a change source begins, for every table it reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChangesStart {
    /// Version 0: every change the log still holds.
    #[default]
    Earliest,
    /// Only versions committed after the first start.
    Latest,
    /// This version (inclusive) of every table.
    Version(u64),
    /// The first version committed at or after this time (µs since the Unix
    /// epoch; RFC 3339 in the file), as Spark's `startingTimestamp`.
    Timestamp(i64),
    /// Every row of the latest version at first start as an `insert`, then
    /// the changes of later versions (an initial load).
    Snapshot,
}

impl<'de> Deserialize<'de> for ChangesStart {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Version(u64),
            Word(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Version(v) => Ok(ChangesStart::Version(v)),
            Raw::Word(word) => match word.as_str() {
                "earliest" => Ok(ChangesStart::Earliest),
                "latest" => Ok(ChangesStart::Latest),
                "snapshot" => Ok(ChangesStart::Snapshot),
                _ => weir_sdk::fields::rfc3339::parse_micros(&word)
                    .map(ChangesStart::Timestamp)
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "`{word}` is not a start position; use \"earliest\", \"latest\", \"snapshot\", \
                             a version number (unquoted: start = 5) or an RFC 3339 time such as \"2026-12-01T00:00:00Z\""
                        ))
                    }),
            },
        }
    }
}

/// `[pipeline.source.files]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesSourceSpec {
    /// The landing directory.
    pub dir: PathBuf,
    /// `jsonl`, `csv` or `parquet`.
    pub format: crate::landing::read::Format,
    /// Which file names are read (default `*.jsonl`, `*.csv` or `*.parquet`).
    #[serde(default)]
    pub glob: Option<String>,
    /// How long a file's size and modification time must stay unchanged
    /// before it is read.
    #[serde(default = "default_stable_for", with = "human_duration")]
    pub stable_for: Duration,
    /// How often to look for new files while streaming.
    #[serde(default = "default_poll_interval", with = "human_duration")]
    pub poll_interval: Duration,
    /// `keep` (default), `delete` or `move` processed files once their epoch committed.
    #[serde(default)]
    pub after_commit: AfterCommitSpec,
    /// Where `after_commit = "move"` puts them.
    #[serde(default)]
    pub move_to: Option<PathBuf>,
    /// Parquet only: a Parquet file whose columns landed files must have.
    #[serde(default)]
    pub schema_from: Option<PathBuf>,
}

fn default_stable_for() -> Duration {
    Duration::from_secs(1)
}

/// `after_commit = "keep" | "delete" | "move"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterCommitSpec {
    /// Leave processed files where they are.
    #[default]
    Keep,
    /// Delete them.
    Delete,
    /// Move them to `move_to`.
    Move,
}

/// `[pipeline.sink.kafka]`: each row of the sink's port becomes one message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkSpec {
    /// The topic; created with `partitions` partitions if missing.
    pub topic: String,
    /// The column holding message keys (text, bytes or an integer, sent as
    /// its decimal text); none: messages without a key.
    #[serde(default)]
    pub key: Option<String>,
    /// The column holding message values: text and bytes are sent as they
    /// are, a struct as a JSON object; a null value is a tombstone.
    pub value: String,
    /// Message header name → the text or bytes column holding its value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Partitions of the topic when Weir creates it.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// Overrides the file's `[kafka]` connection for this sink.
    #[serde(default)]
    pub connection: Option<KafkaConnection>,
}

fn default_partitions() -> i32 {
    1
}

/// `[pipeline.source.kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceSpec {
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// The consumer group; its committed offsets show progress to lag tools.
    pub group_id: String,
    /// Where to begin when neither the sinks nor the group have a position.
    #[serde(default)]
    pub start: KafkaStart,
    /// Overrides the file's `[kafka]` connection for this source.
    #[serde(default)]
    pub connection: Option<KafkaConnection>,
    /// Whether offsets that retention deleted before they were read stop the
    /// pipeline (the default, as Spark's `failOnDataLoss`) or are skipped,
    /// with the loss recorded in the epoch's range.
    #[serde(default = "default_true")]
    pub fail_on_data_loss: bool,
}

fn default_true() -> bool {
    true
}

/// `start = "earliest" | "latest"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaStart {
    /// The oldest retained message (Spark's `startingOffsets = earliest`).
    #[default]
    Earliest,
    /// Only messages produced after the pipeline first starts.
    Latest,
}

/// `[pipeline.source.delta]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaSourceSpec {
    /// The table's directory.
    pub table: PathBuf,
    /// The first version to read when the sinks have no position yet:
    /// `"earliest"` (version 0), `"latest"` (only versions committed after
    /// the first start) or a version number.
    #[serde(default)]
    pub start: DeltaStart,
    /// How often to look for new versions while streaming.
    #[serde(default = "default_poll_interval", with = "human_duration")]
    pub poll_interval: Duration,
}

fn default_poll_interval() -> Duration {
    Duration::from_millis(500)
}

/// Where a Delta source begins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeltaStart {
    /// Version 0.
    #[default]
    Earliest,
    /// The first version after the one current at first start.
    Latest,
    /// This version (inclusive).
    Version(u64),
}

impl<'de> Deserialize<'de> for DeltaStart {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Version(u64),
            Word(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Version(v) => Ok(DeltaStart::Version(v)),
            Raw::Word(word) if word == "earliest" => Ok(DeltaStart::Earliest),
            Raw::Word(word) if word == "latest" => Ok(DeltaStart::Latest),
            Raw::Word(word) => Err(serde::de::Error::custom(format!(
                "`{word}` is not a start position; use \"earliest\", \"latest\" or a version number"
            ))),
        }
    }
}

/// `[pipeline.batch]`: an epoch closes at whichever limit is reached first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchPolicy {
    /// Most records per epoch.
    pub max_records: usize,
    /// Most bytes of message values (Kafka) or data files (Delta) per epoch.
    #[serde(deserialize_with = "serde_human::bytes")]
    pub max_bytes: usize,
    /// Longest an epoch waits for more records once it has one.
    #[serde(with = "human_duration")]
    pub max_wait: Duration,
}

impl Default for BatchPolicy {
    fn default() -> Self {
        BatchPolicy {
            max_records: 16_384,
            max_bytes: 16 * 1024 * 1024,
            max_wait: Duration::from_millis(500),
        }
    }
}

/// One `[[pipeline.stage]]`: a plugin and its config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Unique within the pipeline; names the stage in errors, metrics and `from`.
    pub name: String,
    /// The plugin's `.wasm` file.
    pub plugin: PathBuf,
    /// What feeds the stage's first input port: `"source"` or `"STAGE.PORT"`.
    /// Default: the previous stage's `out` (the source for the first stage).
    #[serde(default)]
    pub input: Option<String>,
    /// The plugin's config, inline (turned into JSON for `configure`).
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// The plugin's config as a JSON file, instead of `config`.
    #[serde(default)]
    pub config_file: Option<PathBuf>,
    /// Memory cap and time budget for this plugin.
    #[serde(default)]
    pub limits: PluginLimits,
    /// Host-kept dedupe of the stage's `out` across batches and restarts.
    #[serde(default)]
    pub dedupe: Option<DedupeSpec>,
    /// The largest share of an epoch's input rows (0.0 to 1.0) the stage may
    /// reject; past it the pipeline stops before committing the epoch.
    #[serde(default)]
    pub max_rejected_ratio: Option<f64>,
    /// The most rows of the stream input handed to the plugin in one call
    /// (the epoch's input is cut into calls of at most this many rows, their
    /// outputs joined); unset: one call per epoch.
    #[serde(default)]
    pub max_call_records: Option<usize>,
    /// Lookup inputs: input port name → the Delta table fed to it (whole,
    /// or only the rows of the keys in the epoch's input), as of the version
    /// recorded in each epoch's plan.
    #[serde(default)]
    pub lookup: BTreeMap<String, LookupSpec>,
    /// Swap in the plugin file whenever it is replaced (validated as `weir swap` does).
    #[serde(default)]
    pub watch: bool,
    /// When a swapped-in version is rolled back on its own.
    #[serde(default)]
    pub swap: SwapPolicy,
    /// How rows that make the plugin trap or time out are isolated.
    #[serde(default)]
    pub poison: PoisonPolicy,
}

/// `[pipeline.stage.swap]`: a version swapped in is on probation for its
/// first epochs; if it traps, times out or rejects more than
/// `max_rejected_ratio` of an epoch's rows then, the previous version takes
/// the epoch back (automatic rollback).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwapPolicy {
    /// How many epochs a new version is on probation.
    pub probation_epochs: u64,
    /// The largest share (0.0 to 1.0) of an epoch's rows a version on probation may reject.
    pub max_rejected_ratio: f64,
}

impl Default for SwapPolicy {
    fn default() -> Self {
        SwapPolicy {
            probation_epochs: 3,
            max_rejected_ratio: 0.1,
        }
    }
}

/// `[pipeline.stage.poison]`: when the plugin traps or times out on a batch
/// (after one retry on a fresh instance), the host bisects the batch to the
/// rows that make it fail, dead-letters exactly those and runs the rest.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoisonPolicy {
    /// The largest share (0.0 to 1.0) of an epoch's rows that may be poison;
    /// past it, `on_exceed` applies. 0 turns bisection off.
    pub max_ratio: f64,
    /// `stop` (default): the pipeline stops before committing the epoch;
    /// `quarantine`: the epoch's whole input goes to the dead-letter table.
    pub on_exceed: PoisonExceeded,
}

impl Default for PoisonPolicy {
    fn default() -> Self {
        PoisonPolicy {
            max_ratio: 0.001,
            on_exceed: PoisonExceeded::Stop,
        }
    }
}

/// What happens when more rows are poison than `max_ratio` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoisonExceeded {
    /// Stop the pipeline before the epoch commits.
    #[default]
    Stop,
    /// Send the epoch's input to the dead-letter table, as `weir quarantine` does.
    Quarantine,
}

/// `[pipeline.stage.lookup.PORT]`: a Delta table a stage reads beside its stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupSpec {
    /// The table's directory.
    pub table: PathBuf,
    /// A column of both the stage's input (which must be the source) and
    /// the table: only the table's rows whose value is among the epoch's
    /// input values are read (pushed down to the scan), instead of the
    /// whole table.
    #[serde(default)]
    pub key: Option<String>,
}

/// `[pipeline.stage.dedupe]`: drop `out` rows whose key was already seen,
/// remembering keys until the watermark passes them (Spark's
/// `withWatermark(...).dropDuplicates(...)`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupeSpec {
    /// Key columns.
    pub key: Vec<String>,
    /// The event-time column the watermark follows.
    pub event_time: String,
    /// How long after the newest event time a key is still remembered.
    #[serde(with = "human_duration")]
    pub retention: Duration,
}

/// One `[[pipeline.sink]]`: a Delta table fed by one stage output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// Unique within the pipeline; part of the sink's Delta application id.
    pub name: String,
    /// `"STAGE.PORT"` (default: the last stage's `out`).
    #[serde(default)]
    pub from: Option<String>,
    /// The table's directory; created from the port's schema if missing.
    /// Required unless the sink is a `[pipeline.sink.kafka]` topic.
    #[serde(default)]
    pub table: Option<PathBuf>,
    /// `append`, `merge` or `upsert` (Delta sinks; required with `table`).
    #[serde(default)]
    pub mode: Option<SinkMode>,
    /// A Kafka topic instead of a Delta table.
    #[serde(default)]
    pub kafka: Option<KafkaSinkSpec>,
    /// Required for `merge`: which rows match and what happens to them.
    #[serde(default)]
    pub merge: Option<MergeSpec>,
    /// Required for `upsert`: key, ordering and delete-marker columns.
    #[serde(default)]
    pub upsert: Option<UpsertSpec>,
    /// Partition columns used when the table is created.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Table properties used when the table is created.
    /// `delta.enableChangeDataFeed` defaults to `true`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// How a sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkMode {
    /// Add every row.
    Append,
    /// Upsert on key columns.
    Merge,
    /// SCD type 1 change application: the newest change per key wins,
    /// deletes remove rows and leave tombstones.
    Upsert,
}

/// `[pipeline.sink.merge]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeSpec {
    /// Key columns: a target row `t` matches a source row `s` when they are equal.
    pub on: Vec<String>,
    /// Update matched rows only when this SQL predicate over `s` and `t` holds,
    /// e.g. `"s.updated_at > t.updated_at"` (latest change wins).
    #[serde(default)]
    pub when: Option<String>,
    /// Column → SQL expression for matched rows, e.g. `revenue = "t.revenue +
    /// s.revenue"`. Default: every column takes the source value.
    #[serde(default)]
    pub update: BTreeMap<String, String>,
}

/// `[pipeline.sink.upsert]`: applies change events (one per key per epoch,
/// as `cdc-upsert` emits them) as Spark's SCD type 1 `MERGE` would, safe
/// against late and replayed events: a change is applied only when its
/// `order_by` value is newer than the stored row's, and a delete leaves a
/// tombstone (key and ordering value, in a table beside the target) so an
/// older change arriving later cannot bring the row back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertSpec {
    /// Key columns.
    pub key: Vec<String>,
    /// The ordering column (integer, decimal, timestamp or date): larger is newer.
    pub order_by: String,
    /// The Boolean column marking deletes (default `_deleted`); not stored.
    #[serde(default = "default_deleted_column")]
    pub deleted: String,
    /// The tombstone table's directory (default: the table's, plus `_tombstones`).
    #[serde(default)]
    pub tombstones: Option<PathBuf>,
}

fn default_deleted_column() -> String {
    "_deleted".into()
}

/// Serde adapter for `Duration` written as `"500ms"`.
mod human_duration {
    use serde::Deserializer;
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        crate::units::serde_human::duration(deserializer)
    }
}
