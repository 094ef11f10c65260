//! Read-ahead for the volume archive: a small pool of threads opens files (and reads the small
//! ones whole) ahead of the tar writer, which still takes them strictly in walk order.
//!
//! The walker reserves each small file's bytes from a [`Budget`] in walk order before handing
//! it to the pool, so the buffers in flight never exceed the budget and the writer, which
//! frees them in the same order, can never wait on a reservation behind its own. A file is
//! read whole only when its size at open (fstat of the opened descriptor) fits what was
//! reserved; anything larger is handed to the writer open, to be streamed in pieces.

use super::at;
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::{self, Read};
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

/// Opens the regular file `name` in `dir` for reading without following a symlink put in its
/// place, and fstats the descriptor.
fn open_file(dir: &File, name: &OsStr) -> io::Result<(File, Metadata)> {
    let file = at::open_file(dir, name)?;
    let meta = file.metadata()?;
    Ok((file, meta))
}

/// Opens `name` in `dir` and classifies it, without reading.
pub(super) fn open_now(dir: &File, name: &OsStr) -> Opened {
    match open_file(dir, name) {
        Ok((_, at_open)) if !at_open.is_file() => Opened::NotAFile,
        Ok((file, at_open)) => Opened::Open { file, at_open },
        Err(e) => Opened::Failed(e),
    }
}

/// Opens `name` in `dir` and reads it whole into `data` when its size at open fits `permit`; else
/// leaves it open.
fn open_and_read(dir: &File, name: &OsStr, permit: Permit, mut data: Vec<u8>) -> Opened {
    let (file, at_open) = match open_now(dir, name) {
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

/// One file for the pool: queued, being opened by a worker, or done. The writer takes what
/// a worker found, or opens and reads the file itself when no worker has started on it yet
/// (it never waits for a file that is only queued: on a busy machine a pool thread may not
/// get a core for a while).
pub(super) struct Slot {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
enum State {
    Queued(Job),
    #[default]
    Running,
    Done(Opened),
}

impl Slot {
    /// A slot holding `job`, for [`Queue::push`] and the writer's [`Slot::take`].
    pub(super) fn new(job: Job) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::Queued(job)),
            ready: Condvar::new(),
        })
    }

    /// What a worker found; or the file opened (and read) here when no worker has started
    /// on it; or, while one is on it, waits for it.
    pub(super) fn take(&self) -> Opened {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match std::mem::take(&mut *state) {
                State::Done(opened) => return opened,
                State::Queued(job) => {
                    drop(state);
                    return job.run();
                }
                State::Running => {
                    state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }

    /// A worker: runs the job unless the writer has taken it, and leaves the outcome here.
    fn work(&self) {
        let job = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match std::mem::take(&mut *state) {
                State::Queued(job) => job,
                other => {
                    *state = other;
                    return;
                }
            }
        };
        // a panic in `run` still fills the slot, so the writer never waits forever
        let guard = Unfinished(self);
        let opened = job.run();
        std::mem::forget(guard);
        self.put(opened);
    }

    fn put(&self, opened: Opened) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = State::Done(opened);
        self.ready.notify_all();
    }
}

/// Fills its slot with a failure when dropped (a worker unwinding).
struct Unfinished<'a>(&'a Slot);

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        self.0.put(Opened::Failed(io::Error::other(
            "the read-ahead thread stopped while reading it",
        )));
    }
}

/// One file to open (and read whole when it fits its permit).
pub(super) struct Job {
    /// The open folder holding the file, and its name there.
    dir: Arc<File>,
    name: OsString,
    permit: Permit,
    /// An empty buffer of the permit's size. Allocated by the walker, not the pool: one
    /// thread's malloc arena then holds every buffer, instead of one arena per pool thread
    /// each keeping its own high-water mark.
    buffer: Vec<u8>,
}

impl Job {
    pub(super) fn new(dir: Arc<File>, name: OsString, permit: Permit) -> Self {
        let buffer = Vec::with_capacity(permit.bytes as usize);
        Self {
            dir,
            name,
            permit,
            buffer,
        }
    }

    fn run(self) -> Opened {
        open_and_read(&self.dir, &self.name, self.permit, self.buffer)
    }
}

/// The pool's queue of slots, first in first out (so files are read near walk order).
#[derive(Default)]
pub(super) struct Queue {
    state: Mutex<(VecDeque<Arc<Slot>>, bool)>,
    added: Condvar,
}

impl Queue {
    /// Queues a slot for the workers (once closed, the writer opens it itself).
    pub(super) fn push(&self, slot: Arc<Slot>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.1 {
            return;
        }
        state.0.push_back(slot);
        drop(state);
        self.added.notify_one();
    }

    /// No more jobs: workers finish what is queued and stop.
    pub(super) fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
        self.added.notify_all();
    }

    /// Drops every queued slot and stops the workers: the writer stopped.
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
            let slot = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(slot) = state.0.pop_front() {
                        break slot;
                    }
                    if state.1 {
                        return;
                    }
                    state = self.added.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            slot.work();
        }
    }
}
