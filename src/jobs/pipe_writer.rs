//! A `Write` that hands its bytes, in chunks, to a thread of its own that writes them on: the
//! producer (the volume job's tar writer, which also reads the files) never waits for the
//! compressor's output, its hashing or the destination, as `tar | zstd` does not.

use std::io::{self, Write};
use std::mem;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

/// Bytes handed over at a time.
const CHUNK: usize = 256 << 10;
/// Chunks waiting for the writing thread, at most (memory: about `DEPTH + 3` chunks).
const DEPTH: usize = 4;

/// The producer's end; [`PipeWriter::finish`] hands over the rest.
pub struct PipeWriter {
    chunk: Vec<u8>,
    full: Option<SyncSender<Vec<u8>>>,
    /// Chunks the writing thread is done with, for reuse.
    spare: Receiver<Vec<u8>>,
    failed: Arc<Mutex<Option<io::Error>>>,
}

/// Starts a thread in `scope` that writes everything the returned [`PipeWriter`] is given to
/// `inner`, and returns `inner` once the pipe is finished, or the error of the write that
/// failed (the producer's next hand-over fails with the same kind and message).
pub fn spawn<'scope, W: Write + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    mut inner: W,
) -> (PipeWriter, ScopedJoinHandle<'scope, io::Result<W>>) {
    let (full, chunks) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
    let (give_back, spare) = mpsc::channel();
    let failed = Arc::new(Mutex::new(None));
    let error_slot = Arc::clone(&failed);
    let handle = scope.spawn(move || {
        for chunk in chunks {
            if let Err(e) = inner.write_all(&chunk) {
                // dropping `chunks` makes the producer's next hand-over fail with this error
                let copy = io::Error::new(e.kind(), e.to_string());
                *error_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(copy);
                return Err(e);
            }
            let _ = give_back.send(chunk);
        }
        Ok(inner)
    });
    let pipe = PipeWriter {
        chunk: Vec::with_capacity(CHUNK),
        full: Some(full),
        spare,
        failed,
    };
    (pipe, handle)
}

impl PipeWriter {
    /// Hands over the current chunk (when it holds anything).
    fn hand_over(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .try_recv()
            .map(|mut spare| {
                spare.clear();
                spare
            })
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = mem::replace(&mut self.chunk, next);
        let sent = match &self.full {
            Some(full) => full.send(chunk).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    /// Why the writing thread stopped.
    fn error(&self) -> io::Error {
        let taken = self.failed.lock().unwrap_or_else(|p| p.into_inner()).take();
        taken.unwrap_or_else(|| io::Error::other("the archive's writing thread stopped"))
    }

    /// Hands over what is left and ends the stream; the thread then returns its writer.
    pub fn finish(mut self) -> io::Result<()> {
        self.hand_over()?;
        self.full = None;
        Ok(())
    }
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(CHUNK - self.chunk.len());
        self.chunk.extend_from_slice(&buf[..n]);
        if self.chunk.len() == CHUNK {
            self.hand_over()?;
        }
        Ok(n)
    }

    /// Hands over the current chunk (the writing thread's writer is not flushed).
    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_every_byte_in_order() {
        let data: Vec<u8> = (0..3 * CHUNK + 1234).map(|i| (i % 251) as u8).collect();
        let out = std::thread::scope(|scope| {
            let (mut pipe, handle) = spawn(scope, Vec::new());
            for piece in data.chunks(70_001) {
                pipe.write_all(piece).unwrap();
            }
            pipe.finish().unwrap();
            handle.join().unwrap().unwrap()
        });
        assert_eq!(out, data);
    }

    struct Failing;

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_writers_error_reaches_the_producer() {
        std::thread::scope(|scope| {
            let (mut pipe, handle) = spawn(scope, Failing);
            let chunk = vec![0u8; CHUNK];
            let err = (0..2 * DEPTH + 4)
                .find_map(|_| pipe.write_all(&chunk).err())
                .expect("a write fails once the thread stopped");
            assert_eq!(err.kind(), io::ErrorKind::StorageFull, "{err}");
            assert!(handle.join().unwrap().is_err());
        });
    }
}
