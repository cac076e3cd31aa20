//! Arrow IPC stream encoding and decoding: the byte format that crosses the
//! host/plugin boundary. Decoding wraps the received bytes without copying them.

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, Schema, SchemaRef};

/// Decodes one Arrow IPC stream into its schema and record batches.
///
/// The bytes are taken over as an Arrow buffer, so column data is not copied.
pub fn decode_stream(bytes: Vec<u8>) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let mut buffer = Buffer::from_vec(bytes);
    let mut decoder = StreamDecoder::new();
    let mut batches = Vec::new();
    while !buffer.is_empty() {
        if let Some(batch) = decoder.decode(&mut buffer)? {
            batches.push(batch);
        }
    }
    decoder.finish()?;
    let schema = decoder
        .schema()
        .ok_or_else(|| ArrowError::IpcError("the stream holds no schema message".into()))?;
    Ok((schema, batches))
}

/// Encodes `batches` (all of `schema`) as one Arrow IPC stream.
pub fn encode_stream(schema: &Schema, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    // Size the buffer by the rows actually encoded: a sliced batch shares (and
    // `get_array_memory_size` would count) its parent's whole buffers.
    let estimate: usize = batches
        .iter()
        .flat_map(|b| b.columns())
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
        .sum();
    let mut writer = StreamWriter::try_new(Vec::with_capacity(estimate + 1024), schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.into_inner()
}

/// Encodes one batch as an Arrow IPC stream.
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    encode_stream(batch.schema_ref(), std::slice::from_ref(batch))
}

/// Decodes an Arrow IPC stream into one batch: its only batch as is, several
/// concatenated, none as an empty batch of the stream's schema.
pub fn decode_batch(bytes: Vec<u8>) -> Result<RecordBatch, ArrowError> {
    let (schema, batches) = decode_stream(bytes)?;
    match <[RecordBatch; 1]>::try_from(batches) {
        Ok([batch]) => Ok(batch),
        Err(batches) => arrow_select::concat::concat_batches(&schema, &batches),
    }
}

/// Encodes a schema alone (an IPC stream with no batches), as ports declare it.
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>, ArrowError> {
    encode_stream(schema, &[])
}

/// Decodes a schema encoded by [`encode_schema`].
pub fn decode_schema(bytes: Vec<u8>) -> Result<SchemaRef, ArrowError> {
    decode_stream(bytes).map(|(schema, _)| schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field};
    use std::sync::Arc;

    fn sample() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn round_trips_batches() {
        let batch = sample();
        let bytes = encode_stream(&batch.schema(), &[batch.clone(), batch.clone()]).unwrap();
        let (schema, batches) = decode_stream(bytes).unwrap();
        assert_eq!(schema, batch.schema());
        assert_eq!(batches, vec![batch.clone(), batch]);
    }

    #[test]
    fn encoding_a_slice_does_not_reserve_the_parent_buffers() {
        let big = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from_iter_values(0..1_000_000))],
        )
        .unwrap();
        let bytes = encode_stream(&big.schema(), &[big.slice(10, 1)]).unwrap();
        assert!(
            bytes.capacity() < 64 * 1024,
            "reserved {} bytes for one row",
            bytes.capacity()
        );
        assert_eq!(decode_stream(bytes).unwrap().1[0], big.slice(10, 1));
    }

    #[test]
    fn decodes_any_number_of_batches_as_one() {
        let batch = sample();
        let two = encode_stream(&batch.schema(), &[batch.clone(), batch.clone()]).unwrap();
        assert_eq!(decode_batch(two).unwrap().num_rows(), 6);
        let none = decode_batch(encode_schema(&batch.schema()).unwrap()).unwrap();
        assert_eq!((none.num_rows(), none.schema()), (0, batch.schema()));
        assert_eq!(decode_batch(encode_batch(&batch).unwrap()).unwrap(), batch);
    }

    #[test]
    fn round_trips_a_bare_schema() {
        let schema = sample().schema();
        assert_eq!(
            decode_schema(encode_schema(&schema).unwrap()).unwrap(),
            schema
        );
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(decode_stream(b"definitely not arrow".to_vec()).is_err());
        let batch = sample();
        let mut bytes = encode_stream(&batch.schema(), &[batch]).unwrap();
        bytes.truncate(bytes.len() - 20);
        assert!(decode_stream(bytes).is_err());
        assert!(decode_stream(Vec::new()).is_err());
    }
}
