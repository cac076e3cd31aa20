//! Kafka messages as an Arrow batch with the columns Spark's Kafka source
//! gives: `key`, `value`, `topic`, `partition`, `offset`, `timestamp`,
//! `headers` (a list of key/value structs, order and repeats kept).

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    StructBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use rdkafka::message::{Headers, Message};
use std::sync::{Arc, LazyLock};

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Binary, true),
    ])
}

/// The schema of every Kafka source batch.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Binary, true),
            Field::new("value", DataType::Binary, true),
            Field::new("topic", DataType::Utf8, false),
            Field::new("partition", DataType::Int32, false),
            Field::new("offset", DataType::Int64, false),
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "headers",
                DataType::List(Arc::new(Field::new_struct("item", header_fields(), true))),
                true,
            ),
        ]))
    });
    SCHEMA.clone()
}

/// One owned message, detached from the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Message value.
    pub value: Option<Vec<u8>>,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Create or log-append time, in ms since the epoch.
    pub timestamp: Option<i64>,
    /// Headers in order; a header key that is not UTF-8 is kept lossily.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    /// Copies a message out of the consumer's buffers.
    pub fn from_message<M: Message>(message: &M) -> Self {
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Record {
            key: message.key().map(<[u8]>::to_vec),
            value: message.payload().map(<[u8]>::to_vec),
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            headers,
        }
    }

    /// Bytes the record contributes to the epoch's size limit.
    pub fn size(&self) -> usize {
        self.value.as_ref().map_or(0, Vec::len) + self.key.as_ref().map_or(0, Vec::len)
    }
}

/// Builds the source batch for `records`.
pub fn to_batch(records: &[Record]) -> RecordBatch {
    let n = records.len();
    let mut key = BinaryBuilder::new();
    let mut value = BinaryBuilder::with_capacity(n, records.iter().map(Record::size).sum());
    let mut topic = StringBuilder::new();
    let mut partition = Int32Builder::with_capacity(n);
    let mut offset = Int64Builder::with_capacity(n);
    let mut timestamp = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let header_builder = StructBuilder::from_fields(header_fields(), 0);
    let mut headers = ListBuilder::new(header_builder).with_field(Arc::new(Field::new_struct(
        "item",
        header_fields(),
        true,
    )));
    for record in records {
        key.append_option(record.key.as_ref());
        value.append_option(record.value.as_ref());
        topic.append_value(&record.topic);
        partition.append_value(record.partition);
        offset.append_value(record.offset);
        timestamp.append_option(record.timestamp);
        let entries = headers.values();
        for (k, v) in &record.headers {
            entries
                .field_builder::<StringBuilder>(0)
                .expect("header key builder")
                .append_value(k);
            entries
                .field_builder::<BinaryBuilder>(1)
                .expect("header value builder")
                .append_option(v.as_ref());
            entries.append(true);
        }
        headers.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(key.finish()),
        Arc::new(value.finish()),
        Arc::new(topic.finish()),
        Arc::new(partition.finish()),
        Arc::new(offset.finish()),
        Arc::new(timestamp.finish()),
        Arc::new(headers.finish()),
    ];
    RecordBatch::try_new(schema(), columns).expect("columns match the Kafka source schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    #[test]
    fn builds_every_column_including_repeated_headers() {
        let records = vec![
            Record {
                key: Some(b"k1".to_vec()),
                value: Some(b"{}".to_vec()),
                topic: "orders".into(),
                partition: 1,
                offset: 10,
                timestamp: Some(1_700_000_000_000),
                headers: vec![("h".into(), Some(b"1".to_vec())), ("h".into(), None)],
            },
            Record {
                key: None,
                value: None,
                topic: "orders".into(),
                partition: 0,
                offset: 3,
                timestamp: None,
                headers: vec![],
            },
        ];
        let batch = to_batch(&records);
        assert_eq!(batch.schema(), schema());
        assert!(batch.column_by_name("value").unwrap().is_null(1));
        let headers = batch.column_by_name("headers").unwrap().as_list::<i32>();
        assert_eq!(headers.value(0).len(), 2);
        assert_eq!(headers.value(1).len(), 0);
        let offsets = batch
            .column_by_name("offset")
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(offsets.values(), &[10, 3]);
    }
}
