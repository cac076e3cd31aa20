//! The Kafka source. Like Flink's and Spark's Kafka sources it assigns itself
//! every partition of its topics (no group membership, so a killed process
//! never leaves a dead member that stalls the next start in a rebalance), at
//! the offsets the pipeline's sinks recorded; the group's committed offsets
//! are never read, only written after each epoch so lag tools
//! (`kafka-consumer-groups`, kcat) show progress under the configured
//! `group_id`. Partitions added to a topic later are picked up. Epoch ranges
//! are half-open offset ranges per partition; [`read_range`] replays one
//! exactly.

use super::KafkaError;
use super::client;
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

/// The offsets `start..end` (end exclusive) of one partition that an epoch covers.
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
}

/// Sorts records into the canonical epoch order (topic, partition, offset), so
/// an epoch and its replay present plugins with identical input.
pub fn canonical_order(records: &mut [Record]) {
    records
        .sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
}

/// The per-partition ranges `records` (in canonical order) cover.
pub fn ranges_of(records: &[Record]) -> Vec<OffsetRange> {
    let mut ranges: Vec<OffsetRange> = Vec::new();
    for record in records {
        match ranges.last_mut() {
            Some(last) if last.topic == record.topic && last.partition == record.partition => {
                last.end = record.offset + 1;
            }
            _ => ranges.push(OffsetRange {
                topic: record.topic.clone(),
                partition: record.partition,
                start: record.offset,
                end: record.offset + 1,
            }),
        }
    }
    ranges
}

/// How long `--once` waits for more messages after reaching the start watermarks.
pub const ONCE_IDLE: Duration = Duration::from_secs(1);

/// A consumer-group source for one pipeline.
pub struct KafkaSource {
    consumer: StreamConsumer,
    connection: KafkaConnection,
    topics: Vec<String>,
    start: KafkaStart,
    positions: Mutex<Positions>,
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
    /// one start at `start` (the low or high watermark).
    pub async fn connect(
        connection: &KafkaConnection,
        topics: &[String],
        group_id: &str,
        start: KafkaStart,
        resume: Positions,
    ) -> Result<Self, KafkaError> {
        let reset = match start {
            KafkaStart::Earliest => "earliest",
            KafkaStart::Latest => "latest",
        };
        let consumer: StreamConsumer = client::consumer_config(connection, Some(group_id), reset)
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
        assign(&consumer, &initial, true)?;
        tracing::info!(
            partitions = initial.len(),
            "Kafka partitions assigned at the sinks' positions"
        );
        Ok(KafkaSource {
            consumer,
            connection: connection.clone(),
            topics: topics.to_vec(),
            start,
            positions: Mutex::new(initial),
            start_watermarks,
            partitions_checked: Mutex::new(Instant::now()),
            lag_watch: LagWatch::start(connection, topics),
        })
    }

    /// Assigns partitions added to the topics since the last look, at their
    /// start position. Blocks briefly on a metadata request.
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
        let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        let added: Positions = watermarks
            .into_iter()
            .filter(|(tp, _)| !positions.contains_key(tp))
            .map(|(tp, (low, high))| {
                let first = match self.start {
                    KafkaStart::Earliest => low,
                    KafkaStart::Latest => high,
                };
                (tp, first)
            })
            .collect();
        if added.is_empty() {
            return;
        }
        match assign(&self.consumer, &added, false) {
            Ok(()) => {
                tracing::info!(partitions = ?added.keys().collect::<Vec<_>>(), "new Kafka partitions assigned");
                positions.extend(added);
            }
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

    /// Collects the next epoch's records under `policy`, in canonical order.
    /// Returns an empty list when `stop` is set, or in
    /// [`Mode::UntilStartWatermarks`] when everything available at start is done.
    pub async fn next_epoch(
        &self,
        policy: &BatchPolicy,
        mode: Mode,
        stop: &AtomicBool,
    ) -> Result<Vec<Record>, KafkaError> {
        let mut records: Vec<Record> = Vec::new();
        let mut bytes = 0usize;
        let mut deadline: Option<Instant> = None;
        let mut expected = self.positions();
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
            let wait = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
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
                    expected.entry(tp).or_insert(offset);
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
            if expected
                .get(&tp)
                .is_some_and(|&next| message.offset() < next)
            {
                continue; // already part of a committed epoch
            }
            expected.insert(tp, message.offset() + 1);
            last_message = Instant::now();
            let record = Record::from_message(&message);
            bytes += record.size();
            records.push(record);
            deadline.get_or_insert_with(|| Instant::now() + policy.max_wait);
        }
        canonical_order(&mut records);
        Ok(records)
    }

    /// Messages behind the high watermarks, summed over partitions, from
    /// watermarks refreshed in the background (`None` until the first refresh).
    pub fn lag(&self) -> Option<i64> {
        let highs = self
            .lag_watch
            .highs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        let positions = self.positions();
        Some(
            positions
                .iter()
                .map(|(tp, position)| highs.get(tp).map_or(0, |high| (high - position).max(0)))
                .sum(),
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

    /// Marks the ranges of a committed epoch as done, and commits the group
    /// offsets (asynchronously; they only inform lag tools).
    pub fn committed(&self, ranges: &[OffsetRange]) {
        let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        let mut tpl = TopicPartitionList::new();
        for range in ranges {
            positions.insert((range.topic.clone(), range.partition), range.end);
            let _ =
                tpl.add_partition_offset(&range.topic, range.partition, Offset::Offset(range.end));
        }
        drop(positions);
        if tpl.count() > 0
            && let Err(error) = self.consumer.commit(&tpl, CommitMode::Async)
        {
            tracing::warn!(%error, "committing consumer-group offsets failed (progress is safe in Delta)");
        }
    }
}

fn is_transient(error: &RdError) -> bool {
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

/// Reads exactly the records of `ranges` again (replaying an epoch after a
/// crash), in canonical order. Fails if the broker no longer has them.
pub async fn read_range(
    connection: &KafkaConnection,
    ranges: &[OffsetRange],
) -> Result<Vec<Record>, KafkaError> {
    let connection = connection.clone();
    let ranges = ranges.to_vec();
    tokio::task::spawn_blocking(move || read_range_blocking(&connection, &ranges))
        .await
        .expect("the replay task does not panic")
}

fn read_range_blocking(
    connection: &KafkaConnection,
    ranges: &[OffsetRange],
) -> Result<Vec<Record>, KafkaError> {
    let consumer: BaseConsumer = client::consumer_config(connection, None, "error")
        .create()
        .map_err(KafkaError::Config)?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining: BTreeMap<TopicPartition, &OffsetRange> = BTreeMap::new();
    for range in ranges.iter().filter(|r| r.end > r.start) {
        let _ =
            tpl.add_partition_offset(&range.topic, range.partition, Offset::Offset(range.start));
        remaining.insert((range.topic.clone(), range.partition), range);
    }
    if remaining.is_empty() {
        return Ok(Vec::new());
    }
    consumer.assign(&tpl).map_err(|source| KafkaError::Client {
        operation: "assign for replay",
        source,
    })?;
    let deadline = Instant::now() + connection.connect_timeout.max(Duration::from_secs(5)) * 3;
    let mut records = Vec::new();
    while !remaining.is_empty() {
        let Some(range) = remaining.values().next().copied() else {
            break;
        };
        if Instant::now() > deadline {
            return Err(KafkaError::Replay {
                topic: range.topic.clone(),
                partition: range.partition,
                start: range.start,
                end: range.end,
                reason: "timed out before the whole range was read".into(),
            });
        }
        let Some(result) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = match result {
            Ok(message) => message,
            Err(RdError::PartitionEOF(_)) => continue,
            Err(error) if is_transient(&error) => continue,
            Err(source) => {
                return Err(KafkaError::Replay {
                    topic: range.topic.clone(),
                    partition: range.partition,
                    start: range.start,
                    end: range.end,
                    reason: source.to_string(),
                });
            }
        };
        let tp = (message.topic().to_string(), message.partition());
        let Some(range) = remaining.get(&tp).copied() else {
            continue;
        };
        if message.offset() >= range.end {
            remaining.remove(&tp);
            continue;
        }
        if message.offset() >= range.start {
            records.push(Record::from_message(&message));
        }
        if message.offset() + 1 >= range.end {
            remaining.remove(&tp);
        }
    }
    canonical_order(&mut records);
    Ok(records)
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
    fn ranges_are_half_open_per_partition_in_canonical_order() {
        let mut records = vec![
            record("b", 0, 5),
            record("a", 1, 7),
            record("a", 1, 9),
            record("a", 0, 3),
        ];
        canonical_order(&mut records);
        let ranges = ranges_of(&records);
        let compact: Vec<_> = ranges
            .iter()
            .map(|r| (r.topic.as_str(), r.partition, r.start, r.end))
            .collect();
        assert_eq!(compact, [("a", 0, 3, 4), ("a", 1, 7, 10), ("b", 0, 5, 6)]);
    }
}
