//! Kafka as an epoch [`Source`]: epochs are half-open offset ranges per
//! partition (plus every partition's next offset), read by the self-assigned
//! consumer of [`super::source`]; replays read a recorded range exactly
//! ([`super::exact`]); acknowledging commits the group offsets so lag tools
//! see progress.

use super::KafkaError;
use super::records::{self, Record};
use super::source::{EpochRecords, KafkaSource, Mode, Positions};
use crate::connector::{Fetched, Source, SourceRows};
use crate::delta::dead_letters::Origin;
use crate::pipeline::spec::{BatchPolicy, KafkaConnection, KafkaStart};
use crate::run::RunError;
use crate::run::epoch::{PartitionPosition, SourceRange};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use std::sync::atomic::{AtomicBool, Ordering};

/// The source kind recorded in dead letters.
pub const KIND: &str = "kafka";

/// A pipeline's Kafka source.
pub struct KafkaEpochSource {
    pipeline: String,
    source: Box<KafkaSource>,
    connection: KafkaConnection,
}

/// What `[pipeline.source.kafka]` resolves to.
pub struct KafkaSourceSpec<'a> {
    /// Topics to read.
    pub topics: &'a [String],
    /// The consumer group offsets are committed to.
    pub group_id: &'a str,
    /// Where to begin without a recorded position.
    pub start: KafkaStart,
    /// Brokers and client properties.
    pub connection: &'a KafkaConnection,
    /// Stop on offsets lost to retention (else skip and record them).
    pub fail_on_data_loss: bool,
}

impl KafkaEpochSource {
    /// Connects, positioned after `resume` (the last committed epoch's range).
    pub async fn open(
        pipeline: &str,
        spec: KafkaSourceSpec<'_>,
        resume: Option<&SourceRange>,
    ) -> Result<Self, RunError> {
        let positions: Positions = match resume {
            Some(SourceRange::Kafka { positions, .. }) => positions
                .iter()
                .map(|p| ((p.topic.clone(), p.partition), p.offset))
                .collect(),
            _ => Positions::new(),
        };
        let source = KafkaSource::connect(
            spec.connection,
            spec.topics,
            spec.group_id,
            spec.start,
            positions,
            !spec.fail_on_data_loss,
        )
        .await
        .map_err(failed(pipeline))?;
        Ok(KafkaEpochSource {
            pipeline: pipeline.to_string(),
            source: Box::new(source),
            connection: spec.connection.clone(),
        })
    }
}

fn failed(pipeline: &str) -> impl Fn(KafkaError) -> RunError + '_ {
    move |source| RunError::Kafka {
        pipeline: pipeline.to_string(),
        source,
    }
}

#[async_trait::async_trait]
impl Source for KafkaEpochSource {
    async fn next(
        &mut self,
        policy: &BatchPolicy,
        once: bool,
        stop: &AtomicBool,
    ) -> Result<Option<Fetched>, RunError> {
        let mode = if once {
            Mode::UntilStartWatermarks
        } else {
            Mode::Stream
        };
        loop {
            let epoch = self
                .source
                .next_epoch(policy, mode, stop)
                .await
                .map_err(failed(&self.pipeline))?;
            if !epoch.records.is_empty() {
                // Positions as the epoch began, with partitions it discovered.
                let range = range_of(&epoch, &self.source.positions());
                return Ok(Some(fetched(&epoch.records, range)));
            }
            if stop.load(Ordering::SeqCst) || (once && self.source.reached_start_watermarks()) {
                return Ok(None);
            }
        }
    }

    async fn replay(&mut self, range: &SourceRange) -> Result<Fetched, RunError> {
        let SourceRange::Kafka { ranges, .. } = range else {
            return Err(RunError::WrongSourceKind {
                pipeline: self.pipeline.clone(),
                expected: KIND,
            });
        };
        let records = super::source::read_range(&self.connection, ranges)
            .await
            .map_err(failed(&self.pipeline))?;
        Ok(fetched(&records, range.clone()))
    }

    async fn acknowledge(&mut self, range: &SourceRange) -> Result<(), RunError> {
        if let SourceRange::Kafka { positions, .. } = range {
            let next = positions
                .iter()
                .map(|p| ((p.topic.clone(), p.partition), p.offset))
                .collect();
            tokio::task::block_in_place(|| self.source.committed(&next))
                .map_err(failed(&self.pipeline))?;
        }
        Ok(())
    }

    async fn lag(&mut self) -> Option<i64> {
        tokio::task::block_in_place(|| self.source.lag())
    }

    async fn lag_by_partition(&mut self) -> Vec<(String, i64)> {
        tokio::task::block_in_place(|| self.source.lag_by_partition()).unwrap_or_default()
    }

    async fn close(&mut self) {
        tokio::task::block_in_place(|| self.source.flush_group_offsets());
    }
}

/// The range of a newly read epoch: its offset ranges, and every
/// partition's next offset once it is done (`before` for partitions it did
/// not read from).
fn range_of(epoch: &EpochRecords, before: &Positions) -> SourceRange {
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

fn fetched(records: &[Record], range: SourceRange) -> Fetched {
    let batch = records::to_batch(records);
    Fetched {
        range,
        rows: Box::new(KafkaRows(batch.clone())),
        batch,
    }
}

/// Kafka rows carry their own topic/partition/offset and value (columns
/// found by name in [`records::schema`]).
struct KafkaRows(RecordBatch);

impl SourceRows for KafkaRows {
    fn origin(&self, row: usize) -> Origin {
        let column = |name| {
            self.0
                .column_by_name(name)
                .expect("Kafka record batches have topic, partition and offset columns")
        };
        Origin::of(KIND)
            .text("topic", column("topic").as_string::<i32>().value(row))
            .int(
                "partition",
                i64::from(column("partition").as_primitive::<Int32Type>().value(row)),
            )
            .int(
                "offset",
                column("offset").as_primitive::<Int64Type>().value(row),
            )
    }
    fn raw(&self, row: usize) -> Option<Vec<u8>> {
        let values = self.0.column_by_name("value")?.as_binary::<i32>();
        values.is_valid(row).then(|| values.value(row).to_vec())
    }
    fn untraced(&self) -> Origin {
        Origin::of(KIND)
    }
}
