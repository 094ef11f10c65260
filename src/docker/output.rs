//! An exec's output: its frames sorted into stdout and stderr, a bounded capture of what is
//! kept for messages, and reading it with an idle timeout.

use bollard::container::LogOutput;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::pin::Pin;
use std::time::Duration;

/// An exec's output frames.
pub type ExecOutput = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;

/// One piece of an exec's output.
pub enum ExecChunk {
    Stdout(Bytes),
    Stderr(Bytes),
}

/// Sorts an exec's output frames. A `Console` frame cannot occur without a TTY: it means the
/// multiplexed stream was cut mid-frame, so it is reported as an error.
pub fn classify(frame: LogOutput) -> Result<ExecChunk, String> {
    match frame {
        LogOutput::StdOut { message } => Ok(ExecChunk::Stdout(message)),
        LogOutput::StdErr { message } => Ok(ExecChunk::Stderr(message)),
        LogOutput::StdIn { .. } | LogOutput::Console { .. } => {
            Err("the exec's output stream was cut mid-frame".into())
        }
    }
}

/// Keeps the first `limit` bytes of a stream (e.g. a command's stderr) and counts the rest.
#[derive(Debug, Clone)]
pub struct BoundedCapture {
    kept: Vec<u8>,
    limit: usize,
    dropped: u64,
}

impl BoundedCapture {
    /// A capture keeping at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            kept: Vec::new(),
            limit,
            dropped: 0,
        }
    }

    /// Adds bytes; what exceeds the limit is only counted.
    pub fn push(&mut self, bytes: &[u8]) {
        let room = self.limit.saturating_sub(self.kept.len());
        let take = room.min(bytes.len());
        self.kept.extend_from_slice(&bytes[..take]);
        self.dropped += (bytes.len() - take) as u64;
    }

    /// True when nothing was captured.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.dropped == 0
    }

    /// The bytes kept.
    pub fn bytes(&self) -> &[u8] {
        &self.kept
    }

    /// True when bytes past the limit were left out.
    pub fn is_truncated(&self) -> bool {
        self.dropped > 0
    }

    /// The captured text, trimmed, with a note of what was left out.
    pub fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).trim_end().to_string();
        if self.dropped > 0 {
            text.push_str(&format!(" [... {} more bytes not kept]", self.dropped));
        }
        text
    }
}

/// Keeps the last `limit` bytes of a stream (e.g. the end of a traceback) and counts the rest.
#[derive(Debug, Clone)]
pub struct TailCapture {
    kept: std::collections::VecDeque<u8>,
    limit: usize,
    dropped: u64,
}

impl TailCapture {
    /// A capture keeping at most the last `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            kept: std::collections::VecDeque::new(),
            limit,
            dropped: 0,
        }
    }

    /// Adds bytes; the oldest beyond the limit are only counted.
    pub fn push(&mut self, bytes: &[u8]) {
        let skip = bytes.len().saturating_sub(self.limit);
        self.dropped += skip as u64;
        self.kept.extend(&bytes[skip..]);
        let excess = self.kept.len().saturating_sub(self.limit);
        self.kept.drain(..excess);
        self.dropped += excess as u64;
    }

    /// True when nothing was captured.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.dropped == 0
    }

    /// The captured bytes as text (lossy), untrimmed.
    pub fn raw_text(&self) -> String {
        let (a, b) = self.kept.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The captured text, trimmed, with a note of what was left out before it (from the
    /// first whole line on, when its start was cut).
    pub fn text(&self) -> String {
        let raw = self.raw_text();
        if self.dropped == 0 {
            return raw.trim().to_string();
        }
        let whole_lines = match raw.split_once('\n') {
            Some((_, rest)) if !rest.trim().is_empty() => rest,
            _ => &raw,
        };
        format!("[... earlier output not kept] {}", whole_lines.trim())
    }
}

/// The exec's output stayed silent for longer than allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Silent;

/// The next frame of an exec's output (`None` at its end), or [`Silent`] when nothing at all
/// (not even stderr) comes within `idle`.
pub async fn next_output(
    output: &mut ExecOutput,
    idle: Duration,
) -> Result<Option<Result<LogOutput, bollard::errors::Error>>, Silent> {
    tokio::time::timeout(idle, output.next())
        .await
        .map_err(|_| Silent)
}

/// Drains an exec's remaining output into `stderr` (stdout discarded), for commands whose
/// stdout is not wanted.
pub async fn drain_output(
    output: &mut ExecOutput,
    stdout: &mut BoundedCapture,
    stderr: &mut BoundedCapture,
) -> Result<(), String> {
    while let Some(frame) = output.next().await {
        match classify(frame.map_err(|e| format!("the exec's output stream failed: {e}"))?)? {
            ExecChunk::Stdout(b) => stdout.push(&b),
            ExecChunk::Stderr(b) => stderr.push(&b),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_head_and_counts_the_rest() {
        let mut c = BoundedCapture::new(5);
        assert!(c.is_empty());
        c.push(b"abc");
        assert!(!c.is_truncated());
        c.push(b"defgh\n");
        assert_eq!(c.text(), "abcde [... 4 more bytes not kept]");
        assert_eq!(c.bytes(), b"abcde");
        assert!(c.is_truncated());
    }

    #[test]
    fn tail_capture_keeps_the_end_and_counts_the_rest() {
        let mut c = TailCapture::new(10);
        assert!(c.is_empty());
        c.push(b"abc");
        assert_eq!(c.text(), "abc");
        c.push(b"de\nfgh");
        assert_eq!(c.text(), "abcde\nfgh");
        c.push(b"ij\n");
        assert_eq!(c.raw_text(), "cde\nfghij\n");
        assert_eq!(c.text(), "[... earlier output not kept] fghij");
        c.push(b"0123456789");
        assert_eq!(c.raw_text(), "0123456789");
        assert_eq!(c.text(), "[... earlier output not kept] 0123456789");
    }

    #[test]
    fn a_cut_frame_is_an_error() {
        let cut = LogOutput::Console {
            message: Bytes::from_static(b"\x01\x00"),
        };
        assert!(classify(cut).is_err());
        assert!(matches!(
            classify(LogOutput::StdOut {
                message: Bytes::from_static(b"x")
            }),
            Ok(ExecChunk::Stdout(_))
        ));
    }

    #[test]
    fn a_silent_output_stream_ends_at_the_idle_timeout() {
        let mut silent: ExecOutput = Box::pin(futures_util::stream::pending());
        let started = std::time::Instant::now();
        let got = crate::runtime::block_on(next_output(&mut silent, Duration::from_millis(50)));
        assert_eq!(got.err(), Some(Silent));
        assert!(started.elapsed() < Duration::from_secs(5));
        let mut done: ExecOutput = Box::pin(futures_util::stream::empty());
        let got = crate::runtime::block_on(next_output(&mut done, Duration::from_secs(5)));
        assert!(matches!(got, Ok(None)));
    }
}
