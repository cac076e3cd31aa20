//! Decoding bytes a plugin produced: Arrow IPC from an untrusted source is
//! parsed with full validation, and any panic inside the decoder is contained
//! and reported as an error, so a hostile plugin cannot crash the host.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use std::panic::{AssertUnwindSafe, catch_unwind};
use weir_sdk::ipc;

/// Runs `decode`, turning a panic into an error message.
fn contain_panics<T>(decode: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(format!("the Arrow decoder panicked: {message}"))
    })
}

/// Decodes an Arrow IPC stream a plugin returned, as one batch.
pub fn decode_batch(bytes: Vec<u8>) -> Result<RecordBatch, String> {
    contain_panics(|| ipc::decode_batch(bytes).map_err(|e| e.to_string()))
}

/// Decodes a port schema a plugin declared.
pub fn decode_schema(bytes: Vec<u8>) -> Result<SchemaRef, String> {
    contain_panics(|| ipc::decode_schema(bytes).map_err(|e| e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_decoder_becomes_an_error() {
        let result: Result<(), String> = contain_panics(|| panic!("corrupt flatbuffer"));
        assert_eq!(
            result.unwrap_err(),
            "the Arrow decoder panicked: corrupt flatbuffer"
        );
    }

    /// Property: whatever bytes a plugin returns — here a valid stream with
    /// random bit flips, truncations, overwrites and insertions — decoding
    /// either fails with an error or yields a batch whose every column passes
    /// Arrow's full validation. It never takes the host down.
    #[test]
    fn random_corruptions_of_plugin_output_decode_to_valid_data_or_an_error() {
        use arrow::array::{ArrayRef, Int64Array, ListArray, StringArray, StructArray};
        use arrow::datatypes::{DataType, Field, Int32Type};
        use std::sync::Arc;
        let names: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")]));
        let amounts: ArrayRef = Arc::new(Int64Array::from(vec![1, i64::MAX, -3]));
        let lists: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
            Some(vec![]),
        ]));
        let nested: ArrayRef = Arc::new(StructArray::from(vec![(
            Arc::new(Field::new("n", DataType::Utf8, true)),
            names.clone(),
        )]));
        let batch = RecordBatch::try_from_iter([
            ("name", names),
            ("amount", amounts),
            ("list", lists),
            ("nested", nested),
        ])
        .unwrap();
        let valid = weir_sdk::ipc::encode_batch(&batch).unwrap();
        assert_eq!(decode_batch(valid.clone()).unwrap(), batch);

        let mut state = 0x5eed_u64;
        let mut next = move |bound: usize| {
            // SplitMix64: deterministic, so a failure reproduces.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) % bound as u64) as usize
        };
        let (mut decoded, mut refused) = (0, 0);
        for _ in 0..3_000 {
            let mut bytes = valid.clone();
            for _ in 0..1 + next(4) {
                let at = next(bytes.len().max(1));
                match next(4) {
                    0 => bytes[at] ^= 1 << next(8),
                    1 => bytes.truncate(at),
                    2 => bytes[at] = [0x00, 0xff, 0x7f, 0x80][next(4)],
                    _ => bytes.insert(at, next(256) as u8),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            match decode_batch(bytes) {
                Ok(batch) => {
                    decoded += 1;
                    for column in batch.columns() {
                        column.to_data().validate_full().unwrap_or_else(|e| {
                            panic!("decoded a column that is not valid Arrow: {e}")
                        });
                    }
                }
                Err(_) => refused += 1,
            }
        }
        assert!(refused > 0 && decoded + refused == 3_000);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_batch(b"\xff\xff\xff\xff\x10\x00\x00\x00garbage".to_vec()).is_err());
        assert!(decode_schema(Vec::new()).is_err());
    }
}
