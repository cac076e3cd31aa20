//! Reading Kafka partitions from an exact offset, without trusting the broker
//! to start a fetch mid-batch.
//!
//! Kafka semantics: a fetch from offset `p` returns the record batch that
//! *contains* `p`, and the client drops the records before `p`. Some
//! Kafka-compatible brokers (tansu 0.6 among them) instead return the first
//! batch whose *base* offset is at or after `p`, silently skipping the rest of
//! the batch that contains `p`. Both look the same to a consumer: the first
//! record it sees has an offset above `p`, which on real Kafka means the
//! offsets in between hold no record (compaction, transaction markers).
//!
//! So every place Weir positions a consumer goes through [`fetch_starts`]: it
//! probes the partition and steps back from `p` until a fetch yields a record
//! at or before `p` (or reaches the low watermark), and the consumer then
//! fetches from there and drops what lies before `p`. [`read_exact`] uses the
//! same rule to read a range `[start, end)` in full, for replays and for
//! filling a gap the live consumer saw. Offsets below the low watermark were
//! deleted by retention: that is data loss, an error unless the source allows
//! it (Spark's `failOnDataLoss`).

use super::KafkaError;
use super::client;
use super::records::Record;
use super::source::{TopicPartition, canonical_order, is_transient};
use crate::pipeline::spec::KafkaConnection;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError as RdError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How far the first probe steps back from a position; each further step is 8× longer.
const FIRST_STEP: i64 = 64;

/// Where a consumer must fetch from to see every record at or after a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchStart {
    /// The offset to assign the consumer at (≤ the position; records before
    /// the position are dropped by the reader).
    pub from: i64,
    /// Offsets at the start of the wanted range that retention deleted before
    /// they were read (`position..position + lost`); non-zero only when data
    /// loss is allowed.
    pub lost: i64,
}

/// A consumer for probing and exact reads: no group state, small fetches.
pub fn reader(connection: &KafkaConnection) -> Result<BaseConsumer, KafkaError> {
    let mut config = client::consumer_config(connection, None, "earliest");
    config.set("max.partition.fetch.bytes", "262144");
    config.create().map_err(KafkaError::Config)
}

/// Low and high watermarks of `partitions`.
fn watermarks(
    consumer: &BaseConsumer,
    connection: &KafkaConnection,
    partitions: impl Iterator<Item = TopicPartition>,
) -> Result<BTreeMap<TopicPartition, (i64, i64)>, KafkaError> {
    let timeout = connection.connect_timeout;
    partitions
        .map(|(topic, partition)| {
            let marks = consumer
                .fetch_watermarks(&topic, partition, timeout)
                .map_err(|error| KafkaError::Unreachable {
                    brokers: connection.brokers.clone(),
                    seconds: timeout.as_secs().max(1),
                    reason: error.to_string(),
                })?;
            Ok(((topic, partition), marks))
        })
        .collect()
}

/// For each wanted position, the offset to fetch from so that no record at or
/// after the position is skipped (see the module docs). Positions below the
/// low watermark fail with [`KafkaError::DataLoss`] unless `allow_data_loss`,
/// in which case they start at the low watermark and report what was lost.
/// `consumer` (a [`reader`]) is used for the probes; its assignment is replaced.
pub fn fetch_starts(
    consumer: &BaseConsumer,
    connection: &KafkaConnection,
    wanted: &BTreeMap<TopicPartition, i64>,
    allow_data_loss: bool,
) -> Result<BTreeMap<TopicPartition, FetchStart>, KafkaError> {
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let began = std::time::Instant::now();
    let marks = watermarks(consumer, connection, wanted.keys().cloned())?;
    tracing::debug!(
        ms = began.elapsed().as_millis() as u64,
        "watermarks for positioning"
    );
    let mut rounds = 0u32;
    let mut starts = BTreeMap::new();
    let mut probing: BTreeMap<TopicPartition, Probe> = BTreeMap::new();
    for (tp, &position) in wanted {
        let (low, high) = marks[tp];
        if position < low {
            if !allow_data_loss {
                return Err(KafkaError::DataLoss {
                    topic: tp.0.clone(),
                    partition: tp.1,
                    start: position,
                    end: low,
                });
            }
            tracing::warn!(topic = %tp.0, partition = tp.1, from = position, to = low,
                "offsets deleted by retention before Weir read them; skipping them (fail_on_data_loss = false)");
            starts.insert(
                tp.clone(),
                FetchStart {
                    from: low,
                    lost: low - position,
                },
            );
        } else if position == low {
            starts.insert(
                tp.clone(),
                FetchStart {
                    from: position,
                    lost: 0,
                },
            );
        } else {
            probing.insert(
                tp.clone(),
                Probe {
                    position,
                    low,
                    high,
                    candidate: position,
                    step: FIRST_STEP,
                },
            );
        }
    }
    // Stepping back is always safe (it only reads more), so later rounds do not
    // wait long for a partition that has nothing at its candidate; the first
    // also covers connecting.
    let round_timeout = |round: u32| match round {
        0 => connection.connect_timeout.max(Duration::from_secs(2)),
        _ => Duration::from_secs(2),
    };
    while !probing.is_empty() {
        // A fetch at or past the reported high watermark returns nothing to
        // judge by; such candidates step back without asking the broker.
        for probe in probing.values_mut() {
            while probe.candidate >= probe.high && probe.candidate > probe.low {
                *probe = probe.stepped_back();
            }
        }
        let candidates: BTreeMap<TopicPartition, i64> = probing
            .iter()
            .map(|(tp, probe)| (tp.clone(), probe.candidate))
            .collect();
        let firsts = first_offsets(consumer, &candidates, round_timeout(rounds))?;
        rounds += 1;
        tracing::debug!(
            ms = began.elapsed().as_millis() as u64,
            rounds,
            ?candidates,
            ?firsts,
            "probe round"
        );
        let mut next = BTreeMap::new();
        for (tp, probe) in probing {
            let first = firsts.get(&tp).copied().flatten();
            if first.is_some_and(|f| f <= probe.position) || probe.candidate == probe.low {
                // Either the fetch runs through the position, or it starts at the
                // oldest retained record: nothing before `first` exists to skip.
                starts.insert(
                    tp,
                    FetchStart {
                        from: probe.candidate,
                        lost: 0,
                    },
                );
                continue;
            }
            if first.is_none() && probe.candidate < probe.high {
                tracing::debug!(topic = %tp.0, partition = tp.1, candidate = probe.candidate,
                    "no record arrived from the probe in time; stepping back");
            }
            next.insert(tp, probe.stepped_back());
        }
        probing = next;
    }
    Ok(starts)
}

/// One partition's search for a fetch offset at or before `position`.
#[derive(Debug, Clone, Copy)]
struct Probe {
    position: i64,
    low: i64,
    /// The high watermark the broker reports (tansu 0.6 reports one below
    /// the true end when the last batch holds several records).
    high: i64,
    /// The offset being tried.
    candidate: i64,
    /// How far before `position` the next try goes.
    step: i64,
}

impl Probe {
    /// The next, earlier candidate (never below the low watermark).
    fn stepped_back(self) -> Self {
        let mut candidate = self.position.saturating_sub(self.step).max(self.low);
        if candidate >= self.candidate {
            candidate = self.candidate.saturating_sub(self.step).max(self.low);
        }
        Probe {
            candidate,
            step: self.step.saturating_mul(8),
            ..self
        }
    }
}

/// Assigns `candidates` and returns the offset of the first record each
/// partition yields within `timeout` (`None` if none came).
fn first_offsets(
    consumer: &BaseConsumer,
    candidates: &BTreeMap<TopicPartition, i64>,
    timeout: Duration,
) -> Result<BTreeMap<TopicPartition, Option<i64>>, KafkaError> {
    assign(consumer, candidates)?;
    let mut firsts: BTreeMap<TopicPartition, Option<i64>> =
        candidates.keys().map(|tp| (tp.clone(), None)).collect();
    let deadline = Instant::now() + timeout;
    while firsts.values().any(Option::is_none) && Instant::now() < deadline {
        let Some(result) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        match result {
            Ok(message) => {
                let tp = (message.topic().to_string(), message.partition());
                if let Some(first) = firsts.get_mut(&tp)
                    && first.is_none()
                    && message.offset() >= candidates[&tp]
                {
                    *first = Some(message.offset());
                }
            }
            Err(RdError::PartitionEOF(_)) => {}
            Err(error) if is_transient(&error) => {}
            Err(source) => {
                return Err(KafkaError::Client {
                    operation: "probe fetch position",
                    source,
                });
            }
        }
    }
    Ok(firsts)
}

fn assign(consumer: &BaseConsumer, at: &BTreeMap<TopicPartition, i64>) -> Result<(), KafkaError> {
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in at {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .map_err(|source| KafkaError::Client {
                operation: "assign",
                source,
            })?;
    }
    consumer.assign(&tpl).map_err(|source| KafkaError::Client {
        operation: "assign",
        source,
    })
}

/// One partition's offsets `start..end` to read in full. The record at
/// `end - 1`, or a later one, must exist: reading stops when it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Topic and partition.
    pub partition: TopicPartition,
    /// First offset wanted.
    pub start: i64,
    /// One past the last offset wanted.
    pub end: i64,
}

/// What [`read_exact`] read.
#[derive(Debug, Default)]
pub struct ExactRead {
    /// Every record in the wanted ranges, in canonical order.
    pub records: Vec<Record>,
    /// Per partition, offsets at the start of its range deleted by retention
    /// (only when data loss is allowed).
    pub lost: BTreeMap<TopicPartition, i64>,
}

/// Reads every record of `ranges` (see [`Wanted`]), stepping back where the
/// broker would skip part of a batch. Fails if a range cannot be read in full
/// before `idle` passes without progress, or (unless `allow_data_loss`) if
/// retention deleted part of it.
pub fn read_exact(
    connection: &KafkaConnection,
    ranges: &[Wanted],
    allow_data_loss: bool,
    idle: Duration,
) -> Result<ExactRead, KafkaError> {
    let ranges: Vec<&Wanted> = ranges.iter().filter(|r| r.end > r.start).collect();
    if ranges.is_empty() {
        return Ok(ExactRead::default());
    }
    let wanted: BTreeMap<TopicPartition, i64> = ranges
        .iter()
        .map(|r| (r.partition.clone(), r.start))
        .collect();
    let consumer = reader(connection)?;
    let starts = fetch_starts(&consumer, connection, &wanted, allow_data_loss)?;
    let from: BTreeMap<TopicPartition, i64> = starts
        .iter()
        .map(|(tp, start)| (tp.clone(), start.from))
        .collect();
    assign(&consumer, &from)?;
    let mut remaining: BTreeMap<TopicPartition, &Wanted> =
        ranges.iter().map(|r| (r.partition.clone(), *r)).collect();
    let mut read = ExactRead {
        records: Vec::new(),
        lost: starts
            .iter()
            .filter(|(_, s)| s.lost > 0)
            .map(|(tp, s)| (tp.clone(), s.lost))
            .collect(),
    };
    let mut progress = Instant::now();
    while let Some(range) = remaining.values().next().copied() {
        if progress.elapsed() > idle {
            return Err(KafkaError::Replay {
                topic: range.partition.0.clone(),
                partition: range.partition.1,
                start: range.start,
                end: range.end,
                reason: format!(
                    "no record arrived for {}s before the whole range was read",
                    idle.as_secs()
                ),
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
                    topic: range.partition.0.clone(),
                    partition: range.partition.1,
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
        progress = Instant::now();
        let offset = message.offset();
        if (range.start..range.end).contains(&offset) {
            read.records.push(Record::from_message(&message));
        }
        if offset >= range.end - 1 {
            remaining.remove(&tp);
        }
    }
    canonical_order(&mut read.records);
    Ok(read)
}
