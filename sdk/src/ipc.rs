//! Arrow IPC stream encoding and decoding: the byte format that crosses the
//! host/plugin boundary. Decoding wraps the received bytes without copying them.

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::convert::fb_to_schema;
use arrow_ipc::reader::{FileDecoder, StreamDecoder};
use arrow_ipc::writer::StreamWriter;
use arrow_ipc::{Block, Message, MessageHeader};
use arrow_schema::{ArrowError, Schema, SchemaRef};
use std::sync::Arc;

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
    one_batch(decode_stream(bytes)?)
}

fn one_batch((schema, batches): (SchemaRef, Vec<RecordBatch>)) -> Result<RecordBatch, ArrowError> {
    match <[RecordBatch; 1]>::try_from(batches) {
        Ok([batch]) => Ok(batch),
        Err(batches) => arrow_select::concat::concat_batches(&schema, &batches),
    }
}

/// [`decode_batch`] without Arrow's per-value validation (offsets in bounds,
/// UTF-8 text, dictionary keys): the message framing and buffer layout are
/// still checked, but the values are trusted.
///
/// Plugins decode their inputs this way. Validating them would repeat, inside
/// the sandbox, work whose outcome is already known: the host encodes inputs
/// from arrays it built or validated itself. For text-heavy batches that
/// repeated UTF-8 pass costs more than the plugin's own work. The host decodes
/// what a plugin returns with full validation.
///
/// # Safety
///
/// `bytes` must have been written by an Arrow IPC writer from valid arrays, as
/// [`encode_batch`] does. Values that break Arrow's invariants make later
/// reads of the batch undefined behaviour.
pub unsafe fn decode_trusted_batch(bytes: Vec<u8>) -> Result<RecordBatch, ArrowError> {
    // `StreamDecoder::with_skip_validation` does not reach record batches in
    // arrow-ipc 59 (only dictionaries), so the stream's messages are framed
    // here and handed to a `FileDecoder`, which honours the flag, over slices
    // of the same buffer: still no copy.
    let buffer = Buffer::from_vec(bytes);
    let mut decoder: Option<(SchemaRef, FileDecoder)> = None;
    let mut batches = Vec::new();
    let mut at = 0;
    while let Some(frame) = next_frame(&buffer, at)? {
        let message = frame.message;
        let block = Block::new(at as i64, frame.meta as i32, frame.body as i64);
        let whole = buffer.slice_with_length(at, frame.meta + frame.body);
        match (message.header_type(), &mut decoder) {
            (MessageHeader::Schema, None) => {
                let schema = message
                    .header_as_schema()
                    .map(fb_to_schema)
                    .ok_or_else(|| ArrowError::IpcError("unreadable schema message".into()))?;
                let schema = Arc::new(schema);
                // SAFETY: the caller guarantees the values are valid (see above).
                let file = unsafe {
                    FileDecoder::new(schema.clone(), message.version()).with_skip_validation(true)
                };
                decoder = Some((schema, file));
            }
            (MessageHeader::RecordBatch, Some((_, file))) => {
                batches.extend(file.read_record_batch(&block, &whole)?);
            }
            (MessageHeader::DictionaryBatch, Some((_, file))) => {
                file.read_dictionary(&block, &whole)?;
            }
            (other, _) => {
                return Err(ArrowError::IpcError(format!(
                    "unexpected {other:?} message at byte {at}"
                )));
            }
        }
        at += frame.meta + frame.body;
    }
    let (schema, _) =
        decoder.ok_or_else(|| ArrowError::IpcError("the stream holds no schema message".into()))?;
    one_batch((schema, batches))
}

/// One encapsulated IPC message: its header, the size of its length prefix
/// plus (padded) header, and the size of its body.
struct Frame<'a> {
    message: Message<'a>,
    meta: usize,
    body: usize,
}

/// The message starting at byte `at`, or `None` at the end-of-stream marker or
/// the end of the bytes.
fn next_frame(buffer: &[u8], at: usize) -> Result<Option<Frame<'_>>, ArrowError> {
    let truncated = || ArrowError::IpcError(format!("the stream is cut off at byte {at}"));
    let word = |from: usize| -> Result<u32, ArrowError> {
        let bytes = buffer.get(from..from + 4).ok_or_else(truncated)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("four bytes")))
    };
    if at == buffer.len() {
        return Ok(None);
    }
    let (prefix, length) = match word(at)? {
        u32::MAX => (8, word(at + 4)?),
        length => (4, length),
    };
    if length == 0 {
        return Ok(None);
    }
    let meta = prefix + length as usize;
    let header = buffer.get(at + prefix..at + meta).ok_or_else(truncated)?;
    let message = arrow_ipc::root_as_message(header)
        .map_err(|e| ArrowError::IpcError(format!("unreadable message at byte {at}: {e}")))?;
    let body = usize::try_from(message.bodyLength())
        .map_err(|_| ArrowError::IpcError(format!("negative body length at byte {at}")))?;
    if buffer.len() < at + meta + body {
        return Err(truncated());
    }
    Ok(Some(Frame {
        message,
        meta,
        body,
    }))
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
    use arrow_array::{BinaryArray, Int64Array, StringArray};
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

    /// Decodes with the trusted decoder; sound here because every stream in
    /// these tests is written by `encode_stream` from valid arrays, except the
    /// malformed ones, which must fail before any value is read.
    fn trusted(bytes: Vec<u8>) -> Result<RecordBatch, ArrowError> {
        // SAFETY: see above.
        unsafe { decode_trusted_batch(bytes) }
    }

    #[test]
    fn the_trusted_decoder_reads_what_the_validating_one_reads() {
        let batch = sample();
        let two = encode_stream(&batch.schema(), &[batch.clone(), batch.slice(1, 2)]).unwrap();
        assert_eq!(trusted(two.clone()).unwrap(), decode_batch(two).unwrap());
        let none = trusted(encode_schema(&batch.schema()).unwrap()).unwrap();
        assert_eq!((none.num_rows(), none.schema()), (0, batch.schema()));
        assert_eq!(trusted(encode_batch(&batch).unwrap()).unwrap(), batch);
    }

    #[test]
    fn the_trusted_decoder_still_rejects_bad_framing() {
        assert!(trusted(b"definitely not arrow".to_vec()).is_err());
        assert!(trusted(Vec::new()).is_err());
        let bytes = encode_batch(&sample()).unwrap();
        for cut in [3, 9, bytes.len() / 2, bytes.len() - 9] {
            let error = trusted(bytes[..cut].to_vec()).unwrap_err();
            assert!(
                error.to_string().contains("cut off"),
                "cut at {cut}: {error}"
            );
        }
    }

    #[test]
    fn the_trusted_decoder_skips_value_validation() {
        // Invalid UTF-8 in a Utf8 column, encoded as binary and relabelled:
        // the validating decoder refuses it, the trusted one does not look.
        let bytes = BinaryArray::from(vec![&b"ok"[..], &[0xff, 0xfe][..]]);
        let binary = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("s", DataType::Binary, false)])),
            vec![Arc::new(bytes)],
        )
        .unwrap();
        let as_text = Schema::new(vec![Field::new("s", DataType::Utf8, false)]);
        let mut relabelled = encode_schema(&as_text).unwrap();
        let body = encode_batch(&binary).unwrap();
        let schema_len = encode_schema(binary.schema_ref()).unwrap().len() - 8;
        relabelled.truncate(relabelled.len() - 8);
        relabelled.extend_from_slice(&body[schema_len..]);
        assert!(decode_batch(relabelled.clone()).is_err());
        let decoded = trusted(relabelled).unwrap();
        assert_eq!(decoded.num_rows(), 2);
    }
}
