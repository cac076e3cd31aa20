//! A pipeline's source as the epoch loop sees it: fetch the next epoch's
//! batch under the batch policy, replay a recorded range exactly, remember
//! what is committed, and report lag. Kafka and Delta sources differ only here.

use super::RunError;
use super::epoch::{PartitionPosition, SourceRange};
use super::stages::SourceRows;
use crate::delta::dead_letters::Origin;
use crate::delta::{self, table};
use crate::kafka::records::{self, Record};
use crate::kafka::source::{EpochRecords, KafkaSource, Mode, Positions};
use crate::pipeline::spec::{BatchPolicy, DeltaStart, KafkaConnection};
use crate::pipeline::{Pipeline, Source};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use deltalake::DeltaTable;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// One epoch's input.
pub struct Fetched {
    /// The source batch.
    pub batch: RecordBatch,
    /// The exact range it covers.
    pub range: SourceRange,
    /// Maps rows back to source records.
    pub rows: Box<dyn SourceRows + Send + Sync>,
}

/// Kafka rows carry their own topic/partition/offset and value.
struct KafkaRows(RecordBatch);

impl SourceRows for KafkaRows {
    fn origin(&self, row: usize) -> Origin {
        let batch = &self.0;
        Origin::Kafka {
            topic: batch.column(2).as_string::<i32>().value(row).to_string(),
            partition: batch.column(3).as_primitive::<Int32Type>().value(row),
            offset: batch.column(4).as_primitive::<Int64Type>().value(row),
        }
    }
    fn raw(&self, row: usize) -> Option<Vec<u8>> {
        let values = self.0.column(1).as_binary::<i32>();
        values.is_valid(row).then(|| values.value(row).to_vec())
    }
    fn untraced(&self) -> Origin {
        Origin::Unknown
    }
}

/// Delta rows know their table and, from per-version row counts, their version.
struct DeltaRows {
    table: String,
    /// (first row index, version), ascending.
    version_starts: Vec<(usize, u64)>,
}

impl SourceRows for DeltaRows {
    fn origin(&self, row: usize) -> Origin {
        let version = self
            .version_starts
            .iter()
            .rev()
            .find(|(start, _)| *start <= row)
            .map(|(_, v)| *v as i64);
        Origin::Delta {
            table: self.table.clone(),
            version,
        }
    }
    fn raw(&self, _row: usize) -> Option<Vec<u8>> {
        None
    }
    fn untraced(&self) -> Origin {
        Origin::Delta {
            table: self.table.clone(),
            version: None,
        }
    }
}

/// The source of one running pipeline.
pub enum EpochSource {
    /// A consumer-group Kafka source.
    Kafka {
        /// The consumer.
        source: Box<KafkaSource>,
        /// For replays.
        connection: KafkaConnection,
    },
    /// A Delta table read version by version.
    Delta {
        /// The table directory.
        path: PathBuf,
        /// The open table.
        table: Box<DeltaTable>,
        /// The first version of the next epoch.
        next_version: u64,
        /// The first version not yet looked at (versions before it, from
        /// `next_version` on, held no rows).
        unscanned: u64,
        /// Last version known to exist when `--once` started.
        until: Option<u64>,
        /// Sleep between looks for new versions.
        poll_interval: Duration,
    },
}

fn kafka_error(pipeline: &Pipeline) -> impl Fn(crate::kafka::KafkaError) -> RunError + '_ {
    |source| RunError::Kafka {
        pipeline: pipeline.name.clone(),
        source,
    }
}

fn delta_error(pipeline: &Pipeline) -> impl Fn(delta::DeltaError) -> RunError + '_ {
    |source| RunError::Delta {
        pipeline: pipeline.name.clone(),
        source,
    }
}

impl EpochSource {
    /// Opens the source, positioned after `resume` (the last committed epoch's range).
    pub async fn open(
        pipeline: &Pipeline,
        resume: Option<&SourceRange>,
        once: bool,
    ) -> Result<Self, RunError> {
        match &pipeline.source {
            Source::Kafka {
                topics,
                group_id,
                start,
                connection,
                fail_on_data_loss,
            } => {
                let positions: Positions = match resume {
                    Some(SourceRange::Kafka { positions, .. }) => positions
                        .iter()
                        .map(|p| ((p.topic.clone(), p.partition), p.offset))
                        .collect(),
                    _ => Positions::new(),
                };
                let source = KafkaSource::connect(
                    connection,
                    topics,
                    group_id,
                    *start,
                    positions,
                    !fail_on_data_loss,
                )
                .await
                .map_err(kafka_error(pipeline))?;
                Ok(EpochSource::Kafka {
                    source: Box::new(source),
                    connection: connection.clone(),
                })
            }
            Source::Delta {
                table: path,
                start,
                poll_interval,
            } => {
                let mut opened = table::open_existing(path)
                    .await
                    .map_err(delta_error(pipeline))?;
                let latest = delta::source::latest_version(path, &mut opened)
                    .await
                    .map_err(delta_error(pipeline))?;
                let next_version = match (resume, start) {
                    (Some(SourceRange::Delta { last, .. }), _) => last + 1,
                    (_, DeltaStart::Earliest) => 0,
                    (_, DeltaStart::Version(v)) => *v,
                    (_, DeltaStart::Latest) => latest + 1,
                };
                Ok(EpochSource::Delta {
                    path: path.clone(),
                    table: Box::new(opened),
                    next_version,
                    unscanned: next_version,
                    until: once.then_some(latest),
                    poll_interval: *poll_interval,
                })
            }
        }
    }

    /// Fetches the next epoch; `None` when `stop` is set, or, with `--once`,
    /// when everything available at start has been read.
    pub async fn next(
        &mut self,
        pipeline: &Pipeline,
        policy: &BatchPolicy,
        once: bool,
        stop: &AtomicBool,
    ) -> Result<Option<Fetched>, RunError> {
        match self {
            EpochSource::Kafka { source, .. } => {
                let mode = if once {
                    Mode::UntilStartWatermarks
                } else {
                    Mode::Stream
                };
                loop {
                    let epoch = source
                        .next_epoch(policy, mode, stop)
                        .await
                        .map_err(kafka_error(pipeline))?;
                    if !epoch.records.is_empty() {
                        // Positions as the epoch began, with partitions it discovered.
                        let range = kafka_range(&epoch, &source.positions());
                        return Ok(Some(kafka_fetched(&epoch.records, range)));
                    }
                    if stop.load(Ordering::SeqCst) || (once && source.reached_start_watermarks()) {
                        return Ok(None);
                    }
                }
            }
            EpochSource::Delta {
                path,
                table,
                next_version,
                unscanned,
                until,
                poll_interval,
            } => loop {
                if stop.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                let latest = delta::source::latest_version(path, table)
                    .await
                    .map_err(delta_error(pipeline))?;
                let limit = until.map_or(latest, |u| u.min(latest));
                let from = (*unscanned).max(*next_version);
                if from > limit {
                    if until.is_some() {
                        return Ok(None);
                    }
                    tokio::time::sleep(*poll_interval).await;
                    continue;
                }
                let first = *next_version;
                let (batch, version_starts, last) =
                    read_versions(path, table, from, limit, Some(policy))
                        .await
                        .map_err(delta_error(pipeline))?;
                *unscanned = last + 1;
                if batch.num_rows() == 0 {
                    // Only empty versions: nothing to process. They are covered by the next
                    // epoch's range; until then a restart simply reads them again.
                    continue;
                }
                return Ok(Some(Fetched {
                    batch,
                    range: SourceRange::Delta {
                        table: path.display().to_string(),
                        first,
                        last,
                    },
                    rows: Box::new(DeltaRows {
                        table: path.display().to_string(),
                        version_starts,
                    }),
                }));
            },
        }
    }

    /// Reads a recorded range again.
    pub async fn replay(
        &mut self,
        pipeline: &Pipeline,
        range: &SourceRange,
    ) -> Result<Fetched, RunError> {
        match (self, range) {
            (EpochSource::Kafka { connection, .. }, SourceRange::Kafka { ranges, .. }) => {
                let records = crate::kafka::source::read_range(connection, ranges)
                    .await
                    .map_err(kafka_error(pipeline))?;
                Ok(kafka_fetched(&records, range.clone()))
            }
            (EpochSource::Delta { path, table, .. }, SourceRange::Delta { first, last, .. }) => {
                let (batch, version_starts, _) = read_versions(path, table, *first, *last, None)
                    .await
                    .map_err(delta_error(pipeline))?;
                Ok(Fetched {
                    batch,
                    range: range.clone(),
                    rows: Box::new(DeltaRows {
                        table: path.display().to_string(),
                        version_starts,
                    }),
                })
            }
            _ => Err(RunError::CorruptCheckpoint {
                path: PathBuf::from(&pipeline.name),
                reason: "a recorded epoch range does not match the pipeline's source kind".into(),
            }),
        }
    }

    /// Notes that the epoch covering `range` is committed: the next epoch
    /// starts where it ended.
    pub fn committed(&mut self, pipeline: &Pipeline, range: &SourceRange) -> Result<(), RunError> {
        match (self, range) {
            (EpochSource::Kafka { source, .. }, SourceRange::Kafka { positions, .. }) => {
                let next = positions
                    .iter()
                    .map(|p| ((p.topic.clone(), p.partition), p.offset))
                    .collect();
                tokio::task::block_in_place(|| source.committed(&next))
                    .map_err(kafka_error(pipeline))?;
            }
            (
                EpochSource::Delta {
                    next_version,
                    unscanned,
                    ..
                },
                SourceRange::Delta { last, .. },
            ) => {
                *next_version = last + 1;
                *unscanned = (*unscanned).max(*next_version);
            }
            _ => {}
        }
        Ok(())
    }
}

/// The range of a newly read epoch: its offset ranges, and every
/// partition's next offset once it is done (`before` for partitions it did
/// not read from).
fn kafka_range(epoch: &EpochRecords, before: &Positions) -> SourceRange {
    let mut after = before.clone();
    for range in &epoch.ranges {
        after.insert((range.topic.clone(), range.partition), range.end);
    }
    SourceRange::Kafka {
        ranges: epoch.ranges.clone(),
        positions: after
            .into_iter()
            .map(|((topic, partition), offset)| PartitionPosition {
                topic,
                partition,
                offset,
            })
            .collect(),
    }
}

fn kafka_fetched(records: &[Record], range: SourceRange) -> Fetched {
    let batch = records::to_batch(records);
    Fetched {
        range,
        rows: Box::new(KafkaRows(batch.clone())),
        batch,
    }
}

/// Reads versions `first..=limit` one at a time (stopping early once the
/// policy's row or byte limit is reached, when given). Returns the rows as
/// one batch, where each version's rows start, and the last version read.
async fn read_versions(
    path: &std::path::Path,
    table: &DeltaTable,
    first: u64,
    limit: u64,
    policy: Option<&BatchPolicy>,
) -> Result<(RecordBatch, Vec<(usize, u64)>, u64), delta::DeltaError> {
    let mut batches = Vec::new();
    let mut starts = Vec::new();
    let mut rows = 0usize;
    let mut bytes = 0usize;
    let mut last = first;
    for version in first..=limit {
        let read = delta::source::read_added_rows(path, table.clone(), version, version).await?;
        starts.push((rows, version));
        for batch in read {
            rows += batch.num_rows();
            bytes += batch.get_array_memory_size();
            batches.push(batch);
        }
        last = version;
        if policy.is_some_and(|p| rows >= p.max_records || bytes >= p.max_bytes) {
            break;
        }
    }
    let schema = table::arrow_schema(path, table)?;
    let batch = arrow::compute::concat_batches(&schema, &batches).map_err(|e| {
        delta::DeltaError::Schema {
            table: path.to_path_buf(),
            reason: e.to_string(),
        }
    })?;
    Ok((batch, starts, last))
}
