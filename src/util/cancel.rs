//! Cooperative cancellation of a run: a shared flag with the reason, checked by the run's
//! writers and loops, so that a run past its deadline (or a daemon shutting down) stops at its
//! next write instead of hanging on.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A cancellation flag shared by the harness (which cancels) and the run (which checks).
/// Checking is one atomic load while nothing is cancelled: cheap on every write.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    cancelled: Arc<AtomicBool>,
    reason: Arc<Mutex<Option<String>>>,
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the run to stop; the first reason given is kept.
    pub fn cancel(&self, reason: impl Into<String>) {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(reason.into());
        }
        self.cancelled.store(true, Ordering::Release);
    }

    /// Why the run was cancelled, if it was.
    pub fn reason(&self) -> Option<String> {
        if !self.is_cancelled() {
            return None;
        }
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// `Err` once cancelled, carrying the reason.
    pub fn check(&self) -> io::Result<()> {
        match self.reason() {
            None => Ok(()),
            Some(reason) => Err(io::Error::other(Cancelled(reason))),
        }
    }
}

/// The error a cancelled run's writes fail with.
#[derive(Debug, thiserror::Error)]
#[error("the run was cancelled: {0}")]
pub struct Cancelled(pub String);

/// A writer that fails once `cancel` is set (checked on every write).
pub struct CancellableWriter<W> {
    inner: W,
    cancel: Cancel,
}

impl<W> CancellableWriter<W> {
    pub fn new(inner: W, cancel: Cancel) -> Self {
        Self { inner, cancel }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }

    /// The writer and its flag, for a wrapper that finishes what it wraps.
    pub fn into_parts(self) -> (W, Cancel) {
        (self.inner, self.cancel)
    }
}

impl<W: io::Write> io::Write for CancellableWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.cancel.check()?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.cancel.check()?;
        self.inner.flush()
    }
}

/// A reader that fails once `cancel` is set (checked on every read).
pub struct CancellableReader<R> {
    inner: R,
    cancel: Cancel,
}

impl<R> CancellableReader<R> {
    pub fn new(inner: R, cancel: Cancel) -> Self {
        Self { inner, cancel }
    }
}

impl<R: io::Read> io::Read for CancellableReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.cancel.check()?;
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn writes_and_reads_fail_once_cancelled_with_the_first_reason() {
        let cancel = Cancel::new();
        let mut w = CancellableWriter::new(Vec::new(), cancel.clone());
        w.write_all(b"ok").unwrap();
        let mut r = CancellableReader::new(&b"data"[..], cancel.clone());
        let mut two = [0u8; 2];
        r.read_exact(&mut two).unwrap();
        cancel.cancel("the deadline of 2h (deadline.volume) passed");
        cancel.cancel("shutdown");
        let e = w.write_all(b"more").unwrap_err();
        assert!(e.to_string().contains("deadline of 2h"), "{e}");
        assert!(r.read(&mut two).is_err());
        assert_eq!(w.into_inner(), b"ok");
    }
}
