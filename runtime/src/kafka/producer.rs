//! Producing to Kafka and creating topics, for `weir demo` and tests: a
//! producer that sends a batch of keyed messages and waits until every one is
//! acknowledged by all replicas, and topic creation through the admin API.
//!
//! The producer is deliberately not idempotent: tansu 0.6 answers ListOffsets
//! with a wrong high watermark for partitions written by idempotent producers
//! (1 instead of the next offset), which would end `weir run --once` early.

use super::KafkaError;
use crate::pipeline::spec::KafkaConnection;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;
use std::time::Duration;

/// Creates `topic` with `partitions` partitions unless it exists.
pub async fn ensure_topic(
    connection: &KafkaConnection,
    topic: &str,
    partitions: i32,
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        super::client::consumer_config(connection, None, "earliest")
            .create()
            .map_err(KafkaError::Config)?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options =
        AdminOptions::new().operation_timeout(Some(Timeout::After(connection.connect_timeout)));
    let results = admin
        .create_topics([&new], &options)
        .await
        .map_err(|source| KafkaError::Client {
            operation: "create topic",
            source,
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(KafkaError::CreateTopic { topic, code }),
        }
    }
    Ok(())
}

/// What [`produce`] delivered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Produced {
    /// Messages acknowledged.
    pub count: usize,
    /// Per partition, one past the highest offset written.
    pub ends: std::collections::BTreeMap<i32, i64>,
}

/// Sends `messages` (key, value) to `topic` and waits for every acknowledgement.
pub async fn produce(
    connection: &KafkaConnection,
    topic: &str,
    messages: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<Produced, KafkaError> {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", &connection.brokers)
        .set("enable.idempotence", "false")
        .set("acks", "all")
        .set("max.in.flight.requests.per.connection", "1")
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000");
    for (key, value) in &connection.properties {
        config.set(key, value);
    }
    let producer: FutureProducer = config.create().map_err(KafkaError::Config)?;
    let mut pending = futures::stream::FuturesOrdered::new();
    let mut produced = Produced::default();
    let mut delivered = |delivery: rdkafka::producer::future_producer::Delivery| {
        produced.count += 1;
        let end = produced.ends.entry(delivery.partition).or_default();
        *end = (*end).max(delivery.offset + 1);
    };
    use futures::StreamExt;
    for (key, value) in messages {
        let producer = producer.clone();
        let topic = topic.to_string();
        pending.push_back(async move {
            producer
                .send(
                    FutureRecord::to(&topic).key(&key).payload(&value),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(source, _)| KafkaError::Client {
                    operation: "produce",
                    source,
                })
        });
        // Bound the in-flight futures so memory stays flat for large counts.
        if pending.len() >= 10_000
            && let Some(result) = pending.next().await
        {
            delivered(result?);
        }
    }
    while let Some(result) = pending.next().await {
        delivered(result?);
    }
    Ok(produced)
}
