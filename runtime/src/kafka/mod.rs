//! Kafka I/O for pipelines: client configuration (with secrets kept out of
//! logs), turning messages into Arrow batches, and the consumer-group source
//! that forms epochs, seeks to the positions the sinks recorded, replays an
//! exact offset range, and commits group offsets for lag tools.

pub mod client;
pub mod epoch_source;
pub mod exact;
pub mod producer;
pub mod records;
pub mod sink;
pub mod source;

/// Everything that can go wrong talking to Kafka. Variants name the brokers or topic.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// The client could not be created from the settings.
    #[error("invalid Kafka client settings: {0}")]
    Config(#[source] rdkafka::error::KafkaError),
    /// The brokers did not answer in time.
    #[error("cannot reach Kafka at {brokers} within {seconds}s: {reason}")]
    Unreachable {
        /// `bootstrap.servers`.
        brokers: String,
        /// The timeout.
        seconds: u64,
        /// librdkafka's last error.
        reason: String,
    },
    /// A subscribed topic does not exist.
    #[error(
        "topic `{topic}` does not exist on {brokers} (topics are not auto-created; create it first)"
    )]
    MissingTopic {
        /// The topic.
        topic: String,
        /// `bootstrap.servers`.
        brokers: String,
    },
    /// The broker refused to create a topic.
    #[error("cannot create topic `{topic}`: {code}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: rdkafka::types::RDKafkaErrorCode,
    },
    /// Consuming, seeking or committing failed.
    #[error("Kafka {operation} failed: {source}")]
    Client {
        /// What was being done.
        operation: &'static str,
        /// librdkafka's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// The broker did not acknowledge a message (the epoch is not recorded
    /// as sent; recovery sends it again).
    #[error("producing to topic `{topic}` failed: {source}")]
    Produce {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// A row could not become a message.
    #[error("cannot turn rows into messages for topic `{topic}`: {reason}")]
    Encode {
        /// The topic.
        topic: String,
        /// Which column, and why.
        reason: String,
    },
    /// The record of the last epoch a Kafka sink sent could not be read or written.
    #[error("Kafka sink record {}: {reason}", path.display())]
    Marker {
        /// The record's file.
        path: std::path::PathBuf,
        /// What failed.
        reason: String,
    },
    /// Retention deleted records the pipeline had not read yet.
    #[error(
        "offsets {start}..{end} of {topic}[{partition}] were deleted by retention before Weir read them (data loss); \
         set `fail_on_data_loss = false` on the Kafka source to skip them and go on"
    )]
    DataLoss {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The first offset lost.
        start: i64,
        /// The low watermark: the first offset still retained.
        end: i64,
    },
    /// A replayed range could not be read back completely.
    #[error("cannot replay {topic}[{partition}] offsets {start}..{end}: {reason}")]
    Replay {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// First offset.
        start: i64,
        /// One past the last offset.
        end: i64,
        /// Why.
        reason: String,
    },
}
