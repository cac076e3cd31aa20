//! A plugin's stdout and stderr: captured in memory (bounded) and forwarded to
//! the host log line by line, tagged with the plugin, after every call.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes a plugin may write between two drains; the rest is dropped and counted.
const CAPACITY: usize = 64 * 1024;

/// One captured output stream (stdout or stderr).
#[derive(Debug, Clone, Default)]
pub struct CapturedOutput {
    inner: Arc<Mutex<Captured>>,
}

#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    dropped: usize,
}

impl CapturedOutput {
    fn append(&self, data: &[u8]) {
        let mut captured = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let room = CAPACITY.saturating_sub(captured.bytes.len());
        let take = data.len().min(room);
        captured.bytes.extend_from_slice(&data[..take]);
        captured.dropped += data.len() - take;
    }

    /// Takes everything captured since the last drain, as lines. A note is
    /// appended when output was dropped for exceeding the capacity.
    pub fn drain_lines(&self) -> Vec<String> {
        let mut captured = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let text = String::from_utf8_lossy(&captured.bytes).into_owned();
        let mut lines: Vec<String> = text
            .lines()
            .map(str::to_string)
            .filter(|l| !l.is_empty())
            .collect();
        if captured.dropped > 0 {
            lines.push(format!(
                "({} more bytes of output dropped)",
                captured.dropped
            ));
        }
        captured.bytes.clear();
        captured.dropped = 0;
        lines
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CapturedOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(CAPACITY)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_lines_and_bounds_memory() {
        let out = CapturedOutput::default();
        out.append(b"hello\nworld\n");
        assert_eq!(out.drain_lines(), vec!["hello", "world"]);
        assert!(out.drain_lines().is_empty());
        out.append(&vec![b'x'; CAPACITY + 10]);
        let lines = out.drain_lines();
        assert_eq!(lines.last().unwrap(), "(10 more bytes of output dropped)");
    }
}
