//! The Kafka source. Like Flink's and Spark's Kafka sources it assigns itself
//! every partition of its topics (no group membership, so a killed process
//! never leaves a dead member that stalls the next start in a rebalance), at
//! the offsets the pipeline's sinks recorded; the group's committed offsets
//! are never read, only written after each epoch so lag tools
//! (`kafka-consumer-groups`, kcat) show progress under the configured
//! `group_id`. Partitions added to a topic later are picked up and read from
//! their earliest offset (as Spark does).
//!
//! Epoch ranges are half-open offset ranges per partition that start exactly
//! where the partition's previous epoch ended: the consumer is positioned
//! through [`super::exact::fetch_starts`] (never trusting a broker to start a
//! fetch mid-batch), and a record arriving past the next expected offset
//! makes the source read the offsets in between separately before going on,
//! so a gap is either filled or proven empty. [`read_range`] replays a
//! recorded range exactly and checks it holds as many records as the epoch
//! read.

use super::KafkaError;
use super::client;
use super::exact::{self, Wanted};
use super::records::Record;
use crate::pipeline::spec::{BatchPolicy, KafkaConnection, KafkaStart};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// A topic partition.
pub type TopicPartition = (String, i32);

/// The next offset to read, per partition.
pub type Positions = BTreeMap<TopicPartition, i64>;

/// The offsets `start..end` (end exclusive) of one partition that an epoch
/// covers. `start` is where the partition's previous epoch ended (or where
/// the partition started), so consecutive epochs' ranges tile the partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// First offset in the epoch.
    pub start: i64,
    /// One past the last offset in the epoch.
    pub end: i64,
    /// Records the epoch read from the range; the other offsets hold no record
    /// (compacted away, transaction markers) or were `lost`. `None` in plans
    /// written before Weir 0.1 recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Offsets at the start of the range that retention deleted before they
    /// were read (only with `fail_on_data_loss = false`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl OffsetRange {
    /// `topic[partition]`, for messages.
    pub fn partition_name(&self) -> String {
        format!("{}[{}]", self.topic, self.partition)
    }
}

/// Sorts records into the canonical epoch order (topic, partition, offset), so
/// an epoch and its replay present plugins with identical input.
pub fn canonical_order(records: &mut [Record]) {
    records
        .sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
}

/// The ranges of one epoch: for every partition that read records (or lost
/// offsets), `[start, last offset + 1)` where `start` is the partition's
/// position when the epoch began. `records` must be in canonical order.
pub fn epoch_ranges(
    records: &[Record],
    starts: &Positions,
    lost: &BTreeMap<TopicPartition, u64>,
) -> Vec<OffsetRange> {
    let mut ranges: BTreeMap<TopicPartition, OffsetRange> = BTreeMap::new();
    for (tp, &count) in lost {
        let start = starts.get(tp).copied().unwrap_or_default();
        ranges.insert(
            tp.clone(),
            OffsetRange {
                topic: tp.0.clone(),
                partition: tp.1,
                start,
                end: start.saturating_add(i64::try_from(count).unwrap_or(i64::MAX)),
                records: Some(0),
                lost: count,
            },
        );
    }
    for record in records {
        let tp = (record.topic.clone(), record.partition);
        let range = ranges.entry(tp.clone()).or_insert_with(|| OffsetRange {
            topic: record.topic.clone(),
            partition: record.partition,
            start: starts.get(&tp).copied().unwrap_or(record.offset),
            end: record.offset,
            records: Some(0),
            lost: 0,
        });
        range.end = range.end.max(record.offset + 1);
        range.records = range.records.map(|n| n + 1);
    }
    ranges.into_values().collect()
}

/// One epoch's records (canonical order) and the ranges they cover.
#[derive(Debug, Default)]
pub struct EpochRecords {
    /// The records.
    pub records: Vec<Record>,
    /// Their ranges, one per partition that moved, in canonical order.
    pub ranges: Vec<OffsetRange>,
}

/// How long `--once` waits for more messages after reaching the start watermarks.
pub const ONCE_IDLE: Duration = Duration::from_secs(1);

/// A consumer-group source for one pipeline.
pub struct KafkaSource {
    consumer: StreamConsumer,
    connection: KafkaConnection,
    topics: Vec<String>,
    /// Skip offsets retention deleted before they were read, instead of failing.
    allow_data_loss: bool,
    /// Where the next epoch starts, per partition: the end of the last
    /// committed epoch, or where a partition without one started.
    positions: Mutex<Positions>,
    /// Offsets lost to retention at the start of a partition's next range.
    pending_lost: Mutex<BTreeMap<TopicPartition, u64>>,
    /// Where the consumer's stream goes on per partition: the position it was
    /// assigned at, then one past the last record it delivered.
    consumer_next: Mutex<Positions>,
    /// Partitions (re)assigned whose first record has not arrived yet: the
    /// only place a broker might skip records (see [`super::exact`]).
    fresh: Mutex<std::collections::BTreeSet<TopicPartition>>,
    /// High watermarks when the source started (`--once` stops there).
    start_watermarks: Positions,
    /// When the topics' partition lists were last checked for new partitions.
    partitions_checked: Mutex<Instant>,
    /// Background refresh of high watermarks, for the lag in progress lines.
    lag_watch: LagWatch,
}

/// How often the lag watcher asks the brokers for high watermarks.
const LAG_REFRESH: Duration = Duration::from_secs(5);

/// A thread that refreshes the topics' high watermarks every [`LAG_REFRESH`]
/// with its own client (ListOffsets can take a while; epochs never wait for
/// it). Stops when dropped.
struct LagWatch {
    highs: std::sync::Arc<Mutex<Option<Positions>>>,
    stop: std::sync::Arc<AtomicBool>,
}

impl LagWatch {
    fn start(connection: &KafkaConnection, topics: &[String]) -> Self {
        let highs = std::sync::Arc::new(Mutex::new(None));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (connection, topics) = (connection.clone(), topics.to_vec());
        let (shared, stopped) = (highs.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("weir-kafka-lag".into())
            .spawn(move || {
                let Ok(client) =
                    client::consumer_config(&connection, None, "earliest").create::<BaseConsumer>()
                else {
                    return;
                };
                while !stopped.load(Ordering::SeqCst) {
                    if let Ok(watermarks) = partition_watermarks(&client, &connection, &topics) {
                        let highs = watermarks
                            .into_iter()
                            .map(|(tp, (_, high))| (tp, high))
                            .collect();
                        *shared.lock().unwrap_or_else(|p| p.into_inner()) = Some(highs);
                    }
                    let until = Instant::now() + LAG_REFRESH;
                    while Instant::now() < until && !stopped.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "cannot start the Kafka lag watcher; lag will show as unknown");
        }
        LagWatch { highs, stop }
    }
}

impl Drop for LagWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// How often a streaming source looks for partitions added to its topics.
const PARTITION_REFRESH: Duration = Duration::from_secs(10);

/// What [`KafkaSource::next_epoch`] should do when no more records arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep waiting for records.
    Stream,
    /// Stop once every partition reached its high watermark at start and the
    /// consumer has been idle for [`ONCE_IDLE`] (some brokers, tansu 0.6 among
    /// them, under-report high watermarks; the idle wait covers them).
    UntilStartWatermarks,
}

impl KafkaSource {
    /// Connects, checks the topics exist, and assigns every partition.
    /// `resume` holds the positions recorded by the sinks; partitions without
    /// one start at `start` (the low or high watermark). Positions below the
    /// low watermark are data loss: an error unless `allow_data_loss`.
    pub async fn connect(
        connection: &KafkaConnection,
        topics: &[String],
        group_id: &str,
        start: KafkaStart,
        resume: Positions,
        allow_data_loss: bool,
    ) -> Result<Self, KafkaError> {
        let consumer: StreamConsumer =
            client::consumer_config(connection, Some(group_id), "earliest")
                .create()
                .map_err(KafkaError::Config)?;
        tracing::info!(settings = %client::describe(connection), group_id, "connecting to Kafka");
        let (consumer, watermarks) = tokio::task::spawn_blocking({
            let connection = connection.clone();
            let topics = topics.to_vec();
            move || -> Result<_, KafkaError> {
                let watermarks = partition_watermarks(&consumer, &connection, &topics)?;
                Ok((consumer, watermarks))
            }
        })
        .await
        .expect("the metadata task does not panic")?;
        let mut initial = Positions::new();
        let mut start_watermarks = Positions::new();
        for (tp, (low, high)) in watermarks {
            tracing::debug!(topic = %tp.0, partition = tp.1, low, high, "watermarks");
            let first = match start {
                KafkaStart::Earliest => low,
                KafkaStart::Latest => high,
            };
            initial.insert(tp.clone(), resume.get(&tp).copied().unwrap_or(first));
            start_watermarks.insert(tp, high);
        }
        tracing::debug!(
            ?start_watermarks,
            ?initial,
            "Kafka high watermarks at start, and start positions"
        );
        let source = KafkaSource {
            consumer,
            connection: connection.clone(),
            topics: topics.to_vec(),
            allow_data_loss,
            positions: Mutex::new(Positions::new()),
            pending_lost: Mutex::new(BTreeMap::new()),
            consumer_next: Mutex::new(Positions::new()),
            fresh: Mutex::new(Default::default()),
            start_watermarks,
            partitions_checked: Mutex::new(Instant::now()),
            lag_watch: LagWatch::start(connection, topics),
        };
        tokio::task::block_in_place(|| source.position_at(initial, true))?;
        tracing::info!(
            partitions = source.positions().len(),
            "Kafka partitions assigned at the sinks' positions"
        );
        Ok(source)
    }

    /// Makes `positions` where the next epoch starts and assigns the consumer
    /// so that it delivers every record from them on (replacing the
    /// assignment when `replace`, else adding to it). Blocks on broker probes.
    fn position_at(&self, positions: Positions, replace: bool) -> Result<(), KafkaError> {
        let prober = exact::reader(&self.connection)?;
        let starts =
            exact::fetch_starts(&prober, &self.connection, &positions, self.allow_data_loss)?;
        let fetch_from: Positions = starts.iter().map(|(tp, s)| (tp.clone(), s.from)).collect();
        for (tp, from) in &fetch_from {
            if *from < positions[tp] {
                tracing::debug!(topic = %tp.0, partition = tp.1, position = positions[tp], from,
                    "fetching from before the position (the broker may not start a fetch mid-batch)");
            }
        }
        assign(&self.consumer, &fetch_from, replace)?;
        let mut lost = self.pending_lost.lock().unwrap_or_else(|p| p.into_inner());
        for (tp, start) in &starts {
            if start.lost > 0 {
                *lost.entry(tp.clone()).or_default() += start.lost as u64;
            }
        }
        let mut fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
        let mut consumer_next = self.consumer_next.lock().unwrap_or_else(|p| p.into_inner());
        let mut current = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        if replace {
            fresh.clear();
            consumer_next.clear();
            current.clear();
        }
        fresh.extend(positions.keys().cloned());
        consumer_next.extend(positions.iter().map(|(tp, &p)| (tp.clone(), p)));
        current.extend(positions);
        Ok(())
    }

    /// Assigns partitions added to the topics since the last look, from their
    /// earliest offset. Blocks briefly on a metadata request.
    fn refresh_partitions(&self) {
        *self
            .partitions_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let watermarks = match partition_watermarks(&self.consumer, &self.connection, &self.topics)
        {
            Ok(watermarks) => watermarks,
            Err(error) => {
                tracing::warn!(%error, "cannot refresh the topics' partitions; retrying later");
                return;
            }
        };
        let known = self.positions();
        let added: Positions = watermarks
            .into_iter()
            .filter(|(tp, _)| !known.contains_key(tp))
            .map(|(tp, (low, _))| (tp, low))
            .collect();
        if added.is_empty() {
            return;
        }
        let partitions: Vec<_> = added.keys().cloned().collect();
        match self.position_at(added, false) {
            Ok(()) => tracing::info!(
                ?partitions,
                "new Kafka partitions assigned from their earliest offset"
            ),
            Err(error) => tracing::warn!(%error, "cannot assign new partitions; retrying later"),
        }
    }

    /// The next offset to read per partition (the end of the last committed epoch).
    pub fn positions(&self) -> Positions {
        self.positions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether every partition has reached its high watermark at start.
    pub fn reached_start_watermarks(&self) -> bool {
        let positions = self.positions();
        self.start_watermarks
            .iter()
            .all(|(tp, high)| positions.get(tp).is_some_and(|p| p >= high))
    }

    /// Collects the next epoch's records under `policy`, in canonical order,
    /// with ranges that start at the current positions. Returns no records
    /// when `stop` is set, or in [`Mode::UntilStartWatermarks`] when
    /// everything available at start is done.
    pub async fn next_epoch(
        &self,
        policy: &BatchPolicy,
        mode: Mode,
        stop: &AtomicBool,
    ) -> Result<EpochRecords, KafkaError> {
        let mut records: Vec<Record> = Vec::new();
        let mut bytes = 0usize;
        let mut deadline: Option<Instant> = None;
        let mut starts = self.positions();
        let mut expected = starts.clone();
        let mut lost =
            std::mem::take(&mut *self.pending_lost.lock().unwrap_or_else(|p| p.into_inner()));
        let mut last_message = Instant::now();
        const IDLE_POLL: Duration = Duration::from_millis(100);
        loop {
            if records.len() >= policy.max_records || bytes >= policy.max_bytes {
                break;
            }
            if mode == Mode::UntilStartWatermarks
                && last_message.elapsed() >= ONCE_IDLE
                && self
                    .start_watermarks
                    .iter()
                    .all(|(tp, high)| expected.get(tp).is_some_and(|p| p >= high))
            {
                break;
            }
            if records.is_empty() && stop.load(Ordering::SeqCst) {
                break;
            }
            // Never wait longer than IDLE_POLL at once: the `--once` end
            // condition (idle at the start watermarks) and `stop` are only
            // looked at between receives (issue 10: a `--once` run used to sit
            // out the whole `max_wait` after its last record).
            let wait = match deadline {
                Some(deadline) => deadline
                    .saturating_duration_since(Instant::now())
                    .min(IDLE_POLL),
                None => IDLE_POLL,
            };
            if deadline.is_some() && wait.is_zero() {
                break;
            }
            let refresh_due = mode == Mode::Stream
                && self
                    .partitions_checked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .elapsed()
                    >= PARTITION_REFRESH;
            if refresh_due {
                tokio::task::block_in_place(|| self.refresh_partitions());
                for (tp, offset) in self.positions() {
                    starts.entry(tp.clone()).or_insert(offset);
                    expected.entry(tp).or_insert(offset);
                }
                let mut pending = self.pending_lost.lock().unwrap_or_else(|p| p.into_inner());
                for (tp, count) in std::mem::take(&mut *pending) {
                    *lost.entry(tp).or_default() += count;
                }
            }
            let received = tokio::time::timeout(wait, self.consumer.recv()).await;
            let message = match received {
                Err(_elapsed) => continue,
                Ok(Err(source)) if is_transient(&source) => {
                    tracing::warn!(error = %source, brokers = %self.connection.brokers, "Kafka consume error; retrying");
                    continue;
                }
                Ok(Err(source)) => {
                    return Err(KafkaError::Client {
                        operation: "consume",
                        source,
                    });
                }
                Ok(Ok(message)) => message,
            };
            let tp = (message.topic().to_string(), message.partition());
            let first_since_assign = self
                .fresh
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&tp);
            let next = expected.get(&tp).copied();
            if next.is_some_and(|next| message.offset() < next) {
                continue; // before the position: part of a committed epoch
            }
            let record = Record::from_message(&message);
            drop(message);
            if let Some(next) = next
                && record.offset > next
            {
                if first_since_assign {
                    let filled =
                        tokio::task::block_in_place(|| self.fill_gap(&tp, next, record.offset))?;
                    for (tp, count) in filled.lost {
                        *lost.entry(tp).or_default() += count as u64;
                    }
                    for record in filled.records {
                        bytes += record.size();
                        records.push(record);
                    }
                } else {
                    // Within a stream the broker returns consecutive batches: the
                    // offsets in between hold no record (compaction, markers).
                    tracing::debug!(topic = %tp.0, partition = tp.1, from = next, to = record.offset,
                        "offsets without a record");
                }
            }
            self.consumer_next
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(tp.clone(), record.offset + 1);
            expected.insert(tp, record.offset + 1);
            last_message = Instant::now();
            bytes += record.size();
            records.push(record);
            deadline.get_or_insert_with(|| Instant::now() + policy.max_wait);
        }
        canonical_order(&mut records);
        let ranges = epoch_ranges(&records, &starts, &lost);
        if records.is_empty() && !lost.is_empty() {
            // Nothing to plan an epoch for yet; the loss goes into the next range.
            let mut pending = self.pending_lost.lock().unwrap_or_else(|p| p.into_inner());
            for (tp, count) in lost {
                *pending.entry(tp).or_default() += count;
            }
            return Ok(EpochRecords::default());
        }
        Ok(EpochRecords { records, ranges })
    }

    /// Reads offsets `from..to` of `tp` separately: the first record the
    /// consumer delivered after being positioned at `from` is `to`. On Kafka
    /// the offsets in between hold no record (compaction, transaction
    /// markers); a broker that skips the rest of a batch fetched mid-way
    /// (tansu 0.6) leaves records there, which this reads.
    fn fill_gap(
        &self,
        tp: &TopicPartition,
        from: i64,
        to: i64,
    ) -> Result<exact::ExactRead, KafkaError> {
        let filled = exact::read_exact(
            &self.connection,
            &[Wanted {
                partition: tp.clone(),
                start: from,
                end: to,
            }],
            self.allow_data_loss,
            replay_idle(&self.connection),
        )?;
        if !filled.records.is_empty() {
            tracing::warn!(topic = %tp.0, partition = tp.1, from, to, found = filled.records.len(),
                "the broker skipped records after positioning; read them separately");
        }
        Ok(filled)
    }

    /// Messages behind the high watermarks, summed over partitions, from
    /// watermarks refreshed in the background (`None` until the first refresh).
    pub fn lag(&self) -> Option<i64> {
        Some(self.lag_by_partition()?.iter().map(|(_, lag)| lag).sum())
    }

    /// Messages behind the high watermark per partition (`topic/partition`),
    /// from the same background refresh as [`Self::lag`].
    pub fn lag_by_partition(&self) -> Option<Vec<(String, i64)>> {
        let highs = self
            .lag_watch
            .highs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        Some(
            self.positions()
                .iter()
                .map(|((topic, partition), position)| {
                    let behind = highs
                        .get(&(topic.clone(), *partition))
                        .map_or(0, |high| (high - position).max(0));
                    (format!("{topic}/{partition}"), behind)
                })
                .collect(),
        )
    }

    /// Commits the current positions to the consumer group and waits for the
    /// broker's answer, so lag tools see the final position after a clean stop.
    pub fn flush_group_offsets(&self) {
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in self.positions() {
            let _ = tpl.add_partition_offset(&topic, partition, Offset::Offset(offset));
        }
        if tpl.count() > 0
            && let Err(error) = self.consumer.commit(&tpl, CommitMode::Sync)
        {
            tracing::warn!(%error, "committing consumer-group offsets failed (progress is safe in Delta)");
        }
    }

    /// Moves the positions to those a committed (or replayed) epoch
    /// recorded — every partition's next offset once it is done — and
    /// commits them as the group's offsets (asynchronously; they only inform
    /// lag tools). Where a position is not where the consumer's stream goes
    /// on (a replay of an earlier epoch, say), the consumer is positioned
    /// again, so the next epoch starts exactly there. Blocks on broker probes
    /// then.
    pub fn committed(&self, next: &Positions) -> Result<(), KafkaError> {
        let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        let mut tpl = TopicPartitionList::new();
        for (tp, &offset) in next {
            if positions.get(tp) != Some(&offset) {
                let _ = tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(offset));
            }
            positions.insert(tp.clone(), offset);
        }
        let all = positions.clone();
        drop(positions);
        if tpl.count() > 0
            && let Err(error) = self.consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::warn!(%error, "committing consumer-group offsets failed (progress is safe in Delta)");
        }
        let consumer_next = self
            .consumer_next
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let moved: Vec<&TopicPartition> = all
            .iter()
            .filter(|(tp, position)| consumer_next.get(*tp) != Some(*position))
            .map(|(tp, _)| tp)
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        tracing::debug!(
            ?moved,
            "positions differ from the consumer's stream; positioning again"
        );
        self.position_at(all, true)
    }
}

/// Errors the consumer recovers from by itself (broker restarts, leader moves).
pub(crate) fn is_transient(error: &RdError) -> bool {
    matches!(
        error,
        RdError::MessageConsumption(code) | RdError::Global(code)
            if matches!(
                code,
                rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure
                    | rdkafka::types::RDKafkaErrorCode::AllBrokersDown
                    | rdkafka::types::RDKafkaErrorCode::OperationTimedOut
                    | rdkafka::types::RDKafkaErrorCode::NotLeaderForPartition
                    | rdkafka::types::RDKafkaErrorCode::LeaderNotAvailable
                    | rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition
            )
    )
}

/// Assigns `positions` (replacing the assignment when `replace`, else adding to it).
fn assign<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    positions: &Positions,
    replace: bool,
) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in positions {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(|source| KafkaError::Client {
                operation: "assign",
                source,
            })?;
    }
    let result = if replace {
        consumer.assign(&tpl)
    } else {
        consumer.incremental_assign(&tpl)
    };
    result.map_err(|source| KafkaError::Client {
        operation: "assign",
        source,
    })
}

/// Low and high watermarks of every partition of `topics`; errors name a
/// missing topic or say the brokers are unreachable.
fn partition_watermarks<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    connection: &KafkaConnection,
    topics: &[String],
) -> Result<BTreeMap<TopicPartition, (i64, i64)>, KafkaError> {
    let timeout = connection.connect_timeout;
    let unreachable = |error: RdError| KafkaError::Unreachable {
        brokers: connection.brokers.clone(),
        seconds: timeout.as_secs().max(1),
        reason: error.to_string(),
    };
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .map_err(unreachable)?;
    let mut watermarks = BTreeMap::new();
    for topic in topics {
        let found = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        let Some(found) = found else {
            return Err(KafkaError::MissingTopic {
                topic: topic.clone(),
                brokers: connection.brokers.clone(),
            });
        };
        for partition in found.partitions() {
            let marks = consumer
                .fetch_watermarks(topic, partition.id(), timeout)
                .map_err(unreachable)?;
            watermarks.insert((topic.clone(), partition.id()), marks);
        }
    }
    Ok(watermarks)
}

/// How long an exact read waits without a record arriving before it fails.
fn replay_idle(connection: &KafkaConnection) -> Duration {
    connection.connect_timeout.max(Duration::from_secs(5)) * 3
}

/// Reads exactly the records of `ranges` again (replaying an epoch after a
/// crash), in canonical order. Fails, naming the partition and range, if the
/// broker no longer has them or a range yields a different number of records
/// than the epoch read.
pub async fn read_range(
    connection: &KafkaConnection,
    ranges: &[OffsetRange],
) -> Result<Vec<Record>, KafkaError> {
    let connection = connection.clone();
    let ranges = ranges.to_vec();
    tokio::task::spawn_blocking(move || {
        let wanted: Vec<Wanted> = ranges
            .iter()
            .map(|r| Wanted {
                partition: (r.topic.clone(), r.partition),
                start: r
                    .start
                    .saturating_add(i64::try_from(r.lost).unwrap_or(i64::MAX)),
                end: r.end,
            })
            .collect();
        let read = exact::read_exact(&connection, &wanted, false, replay_idle(&connection))?;
        for range in &ranges {
            let Some(expected) = range.records else {
                continue;
            };
            let found = read
                .records
                .iter()
                .filter(|r| r.topic == range.topic && r.partition == range.partition)
                .count() as u64;
            if found != expected {
                return Err(KafkaError::Replay {
                    topic: range.topic.clone(),
                    partition: range.partition,
                    start: range.start,
                    end: range.end,
                    reason: format!(
                        "the broker returned {found} records where the epoch read {expected}"
                    ),
                });
            }
        }
        Ok(read.records)
    })
    .await
    .expect("the replay task does not panic")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(topic: &str, partition: i32, offset: i64) -> Record {
        Record {
            key: None,
            value: Some(vec![]),
            topic: topic.into(),
            partition,
            offset,
            timestamp: None,
            headers: vec![],
        }
    }

    #[test]
    fn ranges_start_at_the_positions_and_end_past_the_last_record() {
        let mut records = vec![
            record("b", 0, 5),
            record("a", 1, 7),
            record("a", 1, 9),
            record("a", 0, 3),
        ];
        canonical_order(&mut records);
        let starts = Positions::from([
            (("a".to_string(), 0), 3),
            (("a".to_string(), 1), 6),
            (("b".to_string(), 0), 5),
            (("b".to_string(), 1), 40),
        ]);
        let ranges = epoch_ranges(&records, &starts, &BTreeMap::new());
        let compact: Vec<_> = ranges
            .iter()
            .map(|r| (r.topic.as_str(), r.partition, r.start, r.end, r.records))
            .collect();
        assert_eq!(
            compact,
            [
                ("a", 0, 3, 4, Some(1)),
                // Offsets 6 and 8 hold no record (compaction); the range still
                // starts where the previous epoch ended.
                ("a", 1, 6, 10, Some(2)),
                ("b", 0, 5, 6, Some(1)),
            ]
        );
    }

    #[test]
    fn offsets_lost_to_retention_open_the_partitions_range() {
        let records = vec![record("a", 0, 120), record("a", 0, 121)];
        let starts = Positions::from([(("a".to_string(), 0), 100), (("a".to_string(), 1), 7)]);
        let lost = BTreeMap::from([(("a".to_string(), 0), 20), (("a".to_string(), 1), 3)]);
        let ranges = epoch_ranges(&records, &starts, &lost);
        let compact: Vec<_> = ranges
            .iter()
            .map(|r| (r.partition, r.start, r.end, r.records, r.lost))
            .collect();
        assert_eq!(
            compact,
            [(0, 100, 122, Some(2), 20), (1, 7, 10, Some(0), 3)]
        );
    }
}
