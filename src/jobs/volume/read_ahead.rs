//! Read-ahead for the volume archive: a small pool of threads opens files (and reads the small
//! ones whole) ahead of the tar writer, which still takes them strictly in walk order.
//!
//! The walker reserves each small file's bytes from a [`Budget`] in walk order before handing
//! it to the pool, so the buffers in flight never exceed the budget and the writer, which
//! frees them in the same order, can never wait on a reservation behind its own. A file is
//! read whole only when its size at open (fstat of the opened descriptor) fits what was
//! reserved; anything larger is handed to the writer open, to be streamed in pieces.

use std::collections::VecDeque;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

/// How far the volume archive reads ahead of its tar writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadAhead {
    /// Threads opening and reading files; 0 reads every file on the writer's thread.
    pub threads: usize,
    /// Bytes of file content held in memory ahead of the writer, at most.
    pub budget: u64,
    /// Files up to this size (at the walk) are read whole ahead; larger ones only opened.
    pub small_file: u64,
    /// Entries the walker may be ahead of the writer (bounds open descriptors too).
    pub entries: usize,
}

impl Default for ReadAhead {
    /// 4 threads: on CephFS each open and small read is a network round trip, so a few in
    /// parallel hide most of the latency. Files up to 128 KiB are read whole, at most 4 MiB
    /// ahead: with 1 MiB files, an 8 MiB budget and buffers allocated by the pool threads
    /// the process reached 77 MiB of RSS on bench/volume.sh's mixed tree (54 MiB without
    /// read-ahead).
    fn default() -> Self {
        Self {
            threads: 4,
            budget: 4 << 20,
            small_file: 128 << 10,
            entries: 256,
        }
    }
}

/// Bytes of file content that may be held ahead of the writer.
pub(super) struct Budget {
    state: Mutex<BudgetState>,
    freed: Condvar,
}

struct BudgetState {
    available: u64,
    closed: bool,
}

impl Budget {
    pub(super) fn new(bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(BudgetState {
                available: bytes,
                closed: false,
            }),
            freed: Condvar::new(),
        })
    }

    /// Waits until `bytes` are free and takes them; `None` once the budget is closed.
    pub(super) fn acquire(self: &Arc<Self>, bytes: u64) -> Option<Permit> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !state.closed && state.available < bytes {
            state = self.freed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.closed {
            return None;
        }
        state.available -= bytes;
        Some(Permit {
            budget: Arc::clone(self),
            bytes,
        })
    }

    /// Wakes and refuses every waiting and later [`acquire`](Self::acquire): the writer stopped.
    pub(super) fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.freed.notify_all();
    }

    fn release(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .available += bytes;
        self.freed.notify_all();
    }
}

/// Bytes taken from a [`Budget`] (the size of one read-ahead buffer), given back when dropped.
pub(super) struct Permit {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// What opening (and perhaps reading) a regular file found.
pub(super) enum Opened {
    /// Read whole; its buffer holds a share of the budget until the writer drops it.
    Read(Box<ReadFile>),
    /// Open, with its size at open, for the writer to stream.
    Open { file: File, at_open: Metadata },
    /// The path is no longer a regular file.
    NotAFile,
    /// It could not be opened.
    Failed(io::Error),
}

/// A file's content read ahead of the writer.
pub(super) struct ReadFile {
    /// fstat of the opened descriptor: its size is the entry's size.
    pub at_open: Metadata,
    /// What was read: all `at_open.len()` bytes unless `end` says otherwise.
    pub data: Vec<u8>,
    /// Why the content stops short of its size at open, if it does.
    pub end: Option<ReadEnd>,
    /// fstat after the read (only when it completed), to see a change while read.
    pub after: Option<Metadata>,
    _permit: Permit,
}

/// Why a file's content ended before its size at open.
pub(super) enum ReadEnd {
    /// End of file after this many bytes: it shrank.
    Shrank(u64),
    /// A read failed after this many bytes.
    Failed(u64, io::Error),
}

/// Opens a regular file for reading without following a symlink put in its place, and
/// fstats the descriptor.
pub(super) fn open_file(abs: &std::path::Path) -> io::Result<(File, Metadata)> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(abs)?;
    let meta = file.metadata()?;
    Ok((file, meta))
}

/// Opens `abs` and classifies it, without reading.
pub(super) fn open_now(abs: &std::path::Path) -> Opened {
    match open_file(abs) {
        Ok((_, at_open)) if !at_open.is_file() => Opened::NotAFile,
        Ok((file, at_open)) => Opened::Open { file, at_open },
        Err(e) => Opened::Failed(e),
    }
}

/// Opens `abs` and reads it whole into `data` when its size at open fits `permit`; else
/// leaves it open.
fn open_and_read(abs: &std::path::Path, permit: Permit, mut data: Vec<u8>) -> Opened {
    let (file, at_open) = match open_now(abs) {
        Opened::Open { file, at_open } => (file, at_open),
        other => return other,
    };
    let size = at_open.len();
    if size > permit.bytes {
        return Opened::Open { file, at_open };
    }
    let read = (&file).take(size).read_to_end(&mut data);
    let got = data.len() as u64;
    let end = match read {
        Err(e) => Some(ReadEnd::Failed(got, e)),
        Ok(_) if got < size => Some(ReadEnd::Shrank(got)),
        Ok(_) => None,
    };
    let after = if end.is_none() {
        file.metadata().ok()
    } else {
        None
    };
    Opened::Read(Box::new(ReadFile {
        at_open,
        data,
        end,
        after,
        _permit: permit,
    }))
}

/// Where a worker puts what it found and the writer waits for it.
#[derive(Default)]
pub(super) struct Slot {
    value: Mutex<Option<Opened>>,
    ready: Condvar,
}

impl Slot {
    /// Waits for the worker's result and takes it.
    pub(super) fn take(&self) -> Opened {
        let mut value = self.value.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(opened) = value.take() {
                return opened;
            }
            value = self.ready.wait(value).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn put(&self, opened: Opened) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(opened);
        self.ready.notify_all();
    }
}

/// One file for the pool. Dropped unfinished (a worker gone), it fills its slot with an
/// error, so the writer never waits forever.
pub(super) struct Job {
    abs: PathBuf,
    permit: Option<Permit>,
    slot: Arc<Slot>,
    /// An empty buffer of the permit's size. Allocated by the walker, not the pool: one
    /// thread's malloc arena then holds every buffer, instead of one arena per pool thread
    /// each keeping its own high-water mark.
    buffer: Vec<u8>,
    /// The slot got its outcome; until then, dropping the job (also while a panic unwinds
    /// through [`Job::run`]) fills it with a failure, so the writer never waits forever.
    filled: bool,
}

impl Job {
    pub(super) fn new(abs: PathBuf, permit: Permit, slot: Arc<Slot>) -> Self {
        let buffer = Vec::with_capacity(permit.bytes as usize);
        Self {
            abs,
            permit: Some(permit),
            slot,
            buffer,
            filled: false,
        }
    }

    fn run(mut self) {
        if let Some(permit) = self.permit.take() {
            let buffer = std::mem::take(&mut self.buffer);
            self.slot.put(open_and_read(&self.abs, permit, buffer));
            self.filled = true;
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if !self.filled {
            self.slot.put(Opened::Failed(io::Error::other(
                "the read-ahead thread stopped before reading it",
            )));
        }
    }
}

/// The pool's queue of jobs, first in first out (so files are read near walk order).
#[derive(Default)]
pub(super) struct Queue {
    state: Mutex<(VecDeque<Job>, bool)>,
    added: Condvar,
}

impl Queue {
    pub(super) fn push(&self, job: Job) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.1 {
            return; // closed: dropping the job fills its slot
        }
        state.0.push_back(job);
        drop(state);
        self.added.notify_one();
    }

    /// No more jobs: workers finish what is queued and stop.
    pub(super) fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.added.notify_all();
    }

    /// Drops every queued job (filling its slot) and stops the workers: the writer stopped.
    pub(super) fn abandon(&self) {
        let dropped = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.1 = true;
            std::mem::take(&mut state.0)
        };
        self.added.notify_all();
        drop(dropped);
    }

    /// A worker: runs jobs until the queue is closed and empty.
    pub(super) fn work(&self) {
        loop {
            let job = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(job) = state.0.pop_front() {
                        break job;
                    }
                    if state.1 {
                        return;
                    }
                    state = self.added.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            job.run();
        }
    }
}
