//! The write side every job shares: bytes -> zstd (multithreaded) -> sha256 -> destination.

use crate::io_util::{CountingWriter, HashingWriter};
use crate::store::{Artifact, ArtifactSink, StoreError};
use crate::util::Cancel;
use std::io::{self, Write};

/// Bytes each zstd worker compresses at a time. zstd's default at level 3 (8 MiB) costs about
/// 115 MiB of RSS with two workers; 3 MiB keeps the process near 52 MiB for about 0.5% larger
/// output (bench/volume.sh's 1 GiB tree: 626 MB against 623 MB); 2 MiB saves a little more
/// memory but costs ~10% more CPU in job overhead.
const MT_JOB_SIZE: u32 = 3 << 20;

/// Where an artifact's zstd compression runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// One zstd worker thread per core, fed by the writing thread: for sources that read
    /// faster than one core compresses (files on disk).
    PerCore,
    /// In the writing thread itself, without zstd's job buffers: for sources much slower than
    /// one core compresses (a dump streamed out of a container), where worker threads only
    /// add memory and hand-offs.
    Inline,
}

/// An artifact being written compressed. Dropping it unfinished discards it. Once its run is
/// cancelled, writes fail before they reach the compressor (which may sit on seconds of work).
pub struct CompressedArtifact {
    name: String,
    level: i32,
    cancel: Cancel,
    writer:
        CountingWriter<zstd::stream::write::Encoder<'static, HashingWriter<Box<dyn ArtifactSink>>>>,
}

impl CompressedArtifact {
    /// Compresses at `level` with one zstd worker per core (the calling thread feeds them).
    pub fn new(
        name: &str,
        sink: Box<dyn ArtifactSink>,
        level: i32,
        cancel: Cancel,
    ) -> io::Result<Self> {
        Self::with_workers(name, sink, level, Workers::PerCore, cancel)
    }

    /// Compresses at `level` with the given zstd workers.
    pub fn with_workers(
        name: &str,
        sink: Box<dyn ArtifactSink>,
        level: i32,
        workers: Workers,
        cancel: Cancel,
    ) -> io::Result<Self> {
        let workers = match workers {
            Workers::PerCore => std::thread::available_parallelism().map_or(1, |n| n.get()) as u32,
            Workers::Inline => 1,
        };
        let mut encoder = zstd::stream::write::Encoder::new(HashingWriter::new(sink), level)?;
        encoder.include_checksum(true)?;
        if workers > 1 {
            encoder.multithread(workers)?;
            encoder.set_parameter(zstd::stream::raw::CParameter::JobSize(MT_JOB_SIZE))?;
        }
        Ok(Self {
            name: name.into(),
            level,
            cancel,
            writer: CountingWriter::new(encoder),
        })
    }

    /// Flushes the compressor, makes the artifact durable and describes it for the manifest.
    pub fn finish(self, content: &str) -> Result<Artifact, FinishError> {
        self.cancel.check().map_err(FinishError::Compress)?;
        let uncompressed_size = self.writer.bytes();
        let hashing = self
            .writer
            .into_inner()
            .finish()
            .map_err(FinishError::Compress)?;
        let (sink, size, sha256) = hashing.into_parts();
        sink.finish()?;
        Ok(Artifact {
            name: self.name,
            size,
            sha256,
            compression: "zstd".into(),
            compression_level: Some(self.level),
            uncompressed_size,
            content: content.into(),
        })
    }
}

impl Write for CompressedArtifact {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.cancel.check()?;
        self.writer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// Why an artifact could not be completed.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("cannot flush the compressed stream")]
    Compress(#[source] io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}
