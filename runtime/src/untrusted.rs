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

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_batch(b"\xff\xff\xff\xff\x10\x00\x00\x00garbage".to_vec()).is_err());
        assert!(decode_schema(Vec::new()).is_err());
    }
}
