//! A Kafka topic as an epoch [`Sink`]: every row of the sink's port becomes
//! one message — key, value and headers from columns found by name — sent by
//! an idempotent producer (`enable.idempotence`, so broker retries neither
//! duplicate nor reorder within a partition). A null value is sent as a real
//! tombstone (no payload), so a compacted topic forgets the key.
//!
//! Kafka offers no way to make an epoch's messages atomic with the record of
//! which epoch they belong to short of transactions, which Weir does not use
//! (see `docs/exactly-once.md`). The sink therefore records the last epoch
//! whose messages were all acknowledged in the pipeline's checkpoint
//! directory (`sinks/NAME.json`); an epoch interrupted before that record is
//! sent again on recovery, at least once. Every message carries `weir-epoch`
//! and `weir-seq` (its position among the epoch's messages) headers, and a
//! replay sends byte-identical messages — same key, value, headers, timestamp
//! (the epoch plan's clock) and partition (librdkafka's Java-compatible
//! `murmur2` partitioner on the key) — so a consumer drops a replay by
//! remembering the highest (epoch, seq) it has processed.

use super::KafkaError;
use crate::connector::Sink;
use crate::pipeline::{KafkaSink, PortRef};
use crate::run::RunError;
use crate::run::epoch::EpochPlan;
use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::DataType;
use futures::StreamExt;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The header holding the epoch number (decimal text).
pub const EPOCH_HEADER: &str = "weir-epoch";
/// The header holding the message's position in its epoch, from 0 (decimal text).
pub const SEQ_HEADER: &str = "weir-seq";
/// Headers Weir sets itself.
pub const RESERVED_HEADERS: [&str; 2] = [EPOCH_HEADER, SEQ_HEADER];

/// One message, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The key bytes, if the row has a key.
    pub key: Option<Vec<u8>>,
    /// The payload; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// `(name, value)` in order: the configured headers, then `weir-epoch`, `weir-seq`.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Whether a column of `data_type` can be a message key: text, bytes or an integer.
pub fn key_type(data_type: &DataType) -> bool {
    data_type.is_integer() || text_or_bytes(data_type)
}

/// Whether a column of `data_type` can be a message value: text or bytes
/// (sent as they are) or a struct (sent as a JSON object).
pub fn value_type(data_type: &DataType) -> bool {
    text_or_bytes(data_type) || matches!(data_type, DataType::Struct(_))
}

/// Whether a column of `data_type` is text or bytes (a header value).
pub fn text_or_bytes(data_type: &DataType) -> bool {
    weir_sdk::text::byte_values(&arrow::array::new_empty_array(data_type)).is_some()
}

/// The messages of `batch`: one per row, in row order, numbered from
/// `first_seq` within epoch `epoch`. Errors name the column.
pub fn encode(
    sink: &KafkaSink,
    batch: &RecordBatch,
    epoch: u64,
    first_seq: u64,
) -> Result<Vec<Outgoing>, String> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| format!("the port has no column `{name}`"))
    };
    let keys = match &sink.key {
        Some(name) => Some(bytes_of(name, column(name)?, true)?),
        None => None,
    };
    let values = values_of(&sink.value, column(&sink.value)?)?;
    let mut headers = Vec::with_capacity(sink.headers.len());
    for (header, name) in &sink.headers {
        headers.push((header, bytes_of(name, column(name)?, false)?));
    }
    let epoch_text = epoch.to_string().into_bytes();
    Ok(values
        .into_iter()
        .enumerate()
        .map(|(row, value)| {
            let mut all: Vec<(String, Option<Vec<u8>>)> = headers
                .iter()
                .map(|(name, values)| (name.to_string(), values[row].clone()))
                .collect();
            all.push((EPOCH_HEADER.into(), Some(epoch_text.clone())));
            let seq = first_seq + row as u64;
            all.push((SEQ_HEADER.into(), Some(seq.to_string().into_bytes())));
            Outgoing {
                key: keys.as_ref().and_then(|k| k[row].clone()),
                value,
                headers: all,
            }
        })
        .collect())
}

/// Each row of a text, bytes or (with `integers`) integer column as bytes
/// (integers as decimal text, exactly).
fn bytes_of(name: &str, array: &ArrayRef, integers: bool) -> Result<Vec<Option<Vec<u8>>>, String> {
    if let Some(values) = weir_sdk::text::byte_values(array) {
        return Ok((0..array.len())
            .map(|row| values(row).map(<[u8]>::to_vec))
            .collect());
    }
    if integers && array.data_type().is_integer() {
        let text = arrow::compute::cast(array, &DataType::Utf8).map_err(|e| e.to_string())?;
        let text = text.as_string::<i32>();
        return Ok(text
            .iter()
            .map(|v| v.map(|s| s.as_bytes().to_vec()))
            .collect());
    }
    Err(format!(
        "column `{name}` has type {}; it must be text or bytes{}",
        array.data_type(),
        if integers { " or an integer" } else { "" }
    ))
}

/// Each row's payload: text and bytes as they are, a struct as a JSON
/// object (every field, nulls included, as `arrow-json` writes them); null
/// rows are tombstones.
fn values_of(name: &str, array: &ArrayRef) -> Result<Vec<Option<Vec<u8>>>, String> {
    if weir_sdk::text::byte_values(array).is_some() {
        return bytes_of(name, array, false);
    }
    let Some(records) = array.as_struct_opt() else {
        return Err(format!(
            "column `{name}` has type {}; a value must be text, bytes or a struct (sent as JSON)",
            array.data_type()
        ));
    };
    let present: arrow::array::BooleanArray = (0..records.len())
        .map(|row| Some(records.is_valid(row)))
        .collect();
    let kept = arrow::compute::filter(array, &present).map_err(|e| e.to_string())?;
    let kept = RecordBatch::from(kept.as_struct().clone());
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::LineDelimited>(Vec::new());
    writer
        .write(&kept)
        .map_err(|e| format!("column `{name}`: {e}"))?;
    writer
        .finish()
        .map_err(|e| format!("column `{name}`: {e}"))?;
    let text = writer.into_inner();
    let mut lines = text.split(|b| *b == b'\n').filter(|l| !l.is_empty());
    let mut values = Vec::with_capacity(records.len());
    for row in 0..records.len() {
        values.push(match records.is_valid(row) {
            true => Some(
                lines
                    .next()
                    .ok_or_else(|| format!("column `{name}`: fewer JSON lines than rows"))?
                    .to_vec(),
            ),
            false => None,
        });
    }
    Ok(values)
}

/// A pipeline's Kafka sink.
pub struct KafkaTopicSink {
    pipeline: String,
    spec: KafkaSink,
    producer: FutureProducer,
    /// Where the last fully acknowledged epoch is recorded.
    marker: PathBuf,
}

impl KafkaTopicSink {
    /// Creates the idempotent producer; `checkpoint` is the pipeline's
    /// checkpoint directory.
    pub fn open(pipeline: &str, spec: &KafkaSink, checkpoint: &Path) -> Result<Self, RunError> {
        let fail = |source| RunError::Kafka {
            pipeline: pipeline.to_string(),
            source,
        };
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("client.id", "weir")
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000");
        for (key, value) in &spec.connection.properties {
            config.set(key, value);
        }
        // What the guarantees rest on cannot be changed by a property.
        config
            .set("bootstrap.servers", &spec.connection.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2");
        config.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
        let producer: FutureProducer = config.create().map_err(|e| fail(KafkaError::Config(e)))?;
        // Connect now, so the idempotent producer's id is acquired while the
        // first epoch is read rather than when its messages are sent (an
        // unreachable cluster shows up at the first send, with its error).
        let warm =
            Duration::from_millis(spec.connection.connect_timeout.as_millis().min(2_000) as u64);
        let _ = tokio::task::block_in_place(|| {
            producer.client().fetch_metadata(Some(&spec.topic), warm)
        });
        Ok(KafkaTopicSink {
            pipeline: pipeline.to_string(),
            spec: spec.clone(),
            producer,
            marker: checkpoint.join("sinks").join(format!("{}.json", spec.name)),
        })
    }

    fn failed(&self, source: KafkaError) -> RunError {
        RunError::Kafka {
            pipeline: self.pipeline.clone(),
            source,
        }
    }

    fn marker_error(&self, e: impl std::fmt::Display) -> RunError {
        self.failed(KafkaError::Marker {
            path: self.marker.clone(),
            reason: e.to_string(),
        })
    }
}

/// The plan clock of a commit's Weir record, in ms: the messages' timestamp.
fn timestamp_millis(record: &Value) -> Option<i64> {
    let plan: EpochPlan = serde_json::from_value(record.get("plan")?.clone()).ok()?;
    i64::try_from(plan.clock_nanos / 1_000_000).ok()
}

#[async_trait::async_trait]
impl Sink for KafkaTopicSink {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn from(&self) -> Option<&PortRef> {
        Some(&self.spec.from)
    }

    async fn last_epoch(&mut self) -> Result<Option<u64>, RunError> {
        match std::fs::read(&self.marker) {
            Ok(bytes) => {
                let value: Value =
                    serde_json::from_slice(&bytes).map_err(|e| self.marker_error(e))?;
                Ok(value.get("epoch").and_then(Value::as_u64))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.marker_error(e)),
        }
    }

    async fn recorded_plan(&mut self, _epoch: u64) -> Result<Option<EpochPlan>, RunError> {
        // The plans live in the checkpoint directory only.
        Ok(None)
    }

    async fn commit(
        &mut self,
        epoch: u64,
        batches: Vec<RecordBatch>,
        record: Value,
    ) -> Result<(), RunError> {
        let topic = self.spec.topic.clone();
        let timestamp = timestamp_millis(&record);
        let mut seq = 0u64;
        let mut pending = futures::stream::FuturesOrdered::new();
        for batch in &batches {
            let messages = encode(&self.spec, batch, epoch, seq).map_err(|reason| {
                self.failed(KafkaError::Encode {
                    topic: topic.clone(),
                    reason,
                })
            })?;
            seq += messages.len() as u64;
            for message in messages {
                let producer = self.producer.clone();
                let to = topic.clone();
                pending.push_back(async move {
                    let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
                    for (key, value) in &message.headers {
                        headers = headers.insert(Header {
                            key,
                            value: value.as_deref(),
                        });
                    }
                    let mut out = FutureRecord::<[u8], [u8]>::to(&to).headers(headers);
                    if let Some(key) = &message.key {
                        out = out.key(key.as_slice());
                    }
                    if let Some(value) = &message.value {
                        out = out.payload(value.as_slice());
                    }
                    if let Some(ms) = timestamp {
                        out = out.timestamp(ms);
                    }
                    producer
                        .send(out, Duration::from_secs(60))
                        .await
                        .map(|_| ())
                        .map_err(|(source, _)| source)
                });
                // Bound the messages in flight so memory stays flat.
                if pending.len() >= 10_000
                    && let Some(result) = pending.next().await
                {
                    result.map_err(|source| {
                        self.failed(KafkaError::Produce {
                            topic: topic.clone(),
                            source: Box::new(source),
                        })
                    })?;
                }
            }
        }
        while let Some(result) = pending.next().await {
            result.map_err(|source| {
                self.failed(KafkaError::Produce {
                    topic: topic.clone(),
                    source: Box::new(source),
                })
            })?;
        }
        // Every message is acknowledged: record the epoch (atomically).
        let dir = self.marker.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| self.marker_error(e))?;
        let temporary = self.marker.with_extension("json.tmp");
        let body = serde_json::json!({"epoch": epoch, "topic": topic, "messages": seq});
        std::fs::write(&temporary, body.to_string()).map_err(|e| self.marker_error(e))?;
        std::fs::rename(&temporary, &self.marker).map_err(|e| self.marker_error(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
