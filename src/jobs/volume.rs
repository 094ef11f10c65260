//! The `volume` job's archive: a tar stream of a live directory tree that never fails because
//! a file changes under it.
//!
//! Each regular file is stored with the length it had when opened: a file that grows is cut
//! there, one that shrinks is padded with zeros, and either is recorded as a [`Warning`].
//! Numeric owners, modes, mtimes, symlinks, hard links and empty folders are kept; sockets,
//! FIFOs and device nodes are skipped with a warning. A file that cannot be opened (EACCES,
//! EIO) is left out with an [`WarningKind::Unreadable`] warning naming it and the OS error; one
//! whose read fails midway keeps its entry, padded with zeros, and a warning that its content
//! is incomplete. A hard link is only ever written to an entry that is in the archive: when
//! the first path of an inode could not be stored, the next one is tried as a regular file.
//!
//! Three parts: the walk (its own thread, [`walk`]), a read-ahead pool that opens files and
//! reads small ones whole within a byte budget ([`read_ahead`]), and the tar writer here,
//! which takes the entries strictly in walk order and streams large files itself.

use crate::store::{Warning, WarningKind};
use serde::Serialize;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use tar::{EntryType, Header, HeaderMode};

mod at;
mod read_ahead;
mod walk;

pub use read_ahead::ReadAhead;
use read_ahead::{Budget, Opened, Queue, ReadEnd, Slot};
use walk::{Item, Walker};

const COPY_BUFFER: usize = 1 << 20;
/// Zeros for padding: a shrunken file's missing bytes and the end of each tar entry.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Counters for the manifest.
#[derive(Debug, Default, Clone, Serialize)]
pub struct VolumeStats {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    pub skipped: u64,
    pub bytes_read: u64,
}

/// What the archive writer observed.
#[derive(Debug, Default)]
pub struct VolumeOutcome {
    pub stats: VolumeStats,
    pub warnings: Vec<Warning>,
}

/// Why the archive could not be written. Problems with single files are warnings instead.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume path {path} cannot be read; check that it exists and is a directory this user can read")]
    Root {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("volume path {0} is not a directory")]
    RootNotDir(PathBuf),
    #[error("cannot write the archive (at {path})")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Writes a tar archive of `root` into `out` and returns `out` with what was observed, reading
/// ahead as [`ReadAhead::default`] says.
pub fn write_volume_tar<W: Write>(root: &Path, out: W) -> Result<(W, VolumeOutcome), VolumeError> {
    write_volume_tar_with(root, out, ReadAhead::default())
}

/// [`write_volume_tar`] with the given read-ahead.
pub fn write_volume_tar_with<W: Write>(
    root: &Path,
    out: W,
    read_ahead: ReadAhead,
) -> Result<(W, VolumeOutcome), VolumeError> {
    let meta = fs::metadata(root).map_err(|source| VolumeError::Root {
        path: root.into(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(VolumeError::RootNotDir(root.into()));
    }
    let root_dir = at::open_root(root).map_err(|source| VolumeError::Root {
        path: root.into(),
        source,
    })?;
    let mut archiver = Archiver {
        builder: tar::Builder::new(out),
        outcome: VolumeOutcome::default(),
        links: HashMap::new(),
        buffer: vec![0; COPY_BUFFER],
    };
    archiver.append_dir(Path::new("."), &meta)?;
    let queue = Queue::default();
    let budget = Budget::new(read_ahead.budget);
    let written = std::thread::scope(|scope| {
        let (items, received) = mpsc::sync_channel(read_ahead.entries.max(1));
        let pool = (read_ahead.threads > 0).then_some((&queue, &budget));
        let walker = Walker {
            items,
            pool,
            config: read_ahead,
        };
        // done, failed or panicking (a thread that cannot be spawned panics too): release the
        // walker and the pool so the scope can end
        let _release = Release(&budget, &queue);
        for _ in 0..read_ahead.threads {
            scope.spawn(|| queue.work());
        }
        scope.spawn(move || walker.run(root_dir));
        archiver.write_items(received)
    });
    written?;
    let out = archiver
        .builder
        .into_inner()
        .map_err(|source| VolumeError::Write {
            path: "end of archive".into(),
            source,
        })?;
    Ok((out, archiver.outcome))
}

/// Closes the budget and abandons the pool's queue when dropped.
struct Release<'a>(&'a Budget, &'a Queue);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.close();
        self.1.abandon();
    }
}

struct Archiver<W: Write> {
    builder: tar::Builder<W>,
    outcome: VolumeOutcome,
    /// First archived path of each (device, inode) with more than one link, and whether its
    /// content was read without error.
    links: HashMap<(u64, u64), (PathBuf, bool)>,
    buffer: Vec<u8>,
}

impl<W: Write> Archiver<W> {
    /// Writes the walker's entries in the order they come; returns at the first write error,
    /// dropping `items` (which stops the walker).
    fn write_items(&mut self, items: mpsc::Receiver<Item>) -> Result<(), VolumeError> {
        for item in items {
            match item {
                Item::Dir { rel, meta } => self.append_dir(&rel, &meta)?,
                Item::File {
                    dir,
                    name,
                    rel,
                    link,
                    ahead,
                } => self.append_file(&dir, &name, &rel, link.as_ref(), ahead)?,
                Item::Symlink { rel, meta, target } => match target {
                    Ok(target) => self.append_symlink(&rel, &meta, &target)?,
                    Err(e) => self.warn_io(&rel, &e),
                },
                Item::Special { rel, what } => {
                    self.outcome.stats.skipped += 1;
                    self.warn(
                        &rel,
                        WarningKind::SkippedSpecialFile,
                        format!("{what} not archived"),
                    );
                }
                Item::Warning { rel, kind, detail } => self.warn(&rel, kind, detail),
            }
        }
        Ok(())
    }

    fn header(meta: &Metadata, kind: EntryType) -> Header {
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(meta, HeaderMode::Complete);
        header.set_entry_type(kind);
        header.set_size(0);
        header
    }

    fn append_dir(&mut self, rel: &Path, meta: &Metadata) -> Result<(), VolumeError> {
        let mut header = Self::header(meta, EntryType::Directory);
        self.builder
            .append_data(&mut header, rel, io::empty())
            .map_err(write_err(rel))?;
        self.outcome.stats.directories += 1;
        Ok(())
    }

    fn append_symlink(
        &mut self,
        rel: &Path,
        meta: &Metadata,
        target: &Path,
    ) -> Result<(), VolumeError> {
        let mut header = Self::header(meta, EntryType::Symlink);
        self.builder
            .append_link(&mut header, rel, target)
            .map_err(write_err(rel))?;
        self.outcome.stats.symlinks += 1;
        Ok(())
    }

    /// A hard link to the inode's first archived path, when there is one; `false` when this
    /// path must be stored as a regular file (first of its inode, or the first failed).
    fn append_hard_link(&mut self, rel: &Path, meta: &Metadata) -> Result<bool, VolumeError> {
        let Some((first, read_ok)) = self.links.get(&(meta.dev(), meta.ino())).cloned() else {
            return Ok(false);
        };
        let mut header = Self::header(meta, EntryType::Link);
        self.builder
            .append_link(&mut header, rel, &first)
            .map_err(write_err(rel))?;
        self.outcome.stats.hard_links += 1;
        if !read_ok {
            let detail = format!(
                "hard link to {}, whose content could not be read completely (content incomplete)",
                first.display()
            );
            self.warn(rel, WarningKind::Unreadable, detail);
        }
        Ok(true)
    }

    /// A regular file: a hard link when `link` says its inode is archived already, else its
    /// content as opened (by the read-ahead pool when `ahead`, here otherwise).
    fn append_file(
        &mut self,
        dir: &File,
        name: &OsStr,
        rel: &Path,
        link: Option<&Metadata>,
        ahead: Option<Arc<Slot>>,
    ) -> Result<(), VolumeError> {
        if let Some(meta) = link {
            if self.append_hard_link(rel, meta)? {
                return Ok(());
            }
        }
        let opened = match ahead {
            Some(slot) => slot.take(),
            None => read_ahead::open_now(dir, name),
        };
        let at_open = match &opened {
            Opened::Read(read) => read.at_open.clone(),
            Opened::Open { at_open, .. } => at_open.clone(),
            Opened::NotAFile => {
                self.warn(
                    rel,
                    WarningKind::Vanished,
                    "replaced by something that is not a file".into(),
                );
                return Ok(());
            }
            Opened::Failed(e) if e.kind() == io::ErrorKind::NotFound => {
                self.warn_io(rel, e);
                return Ok(());
            }
            Opened::Failed(e) => {
                let detail = format!("cannot be opened: {e}; not archived");
                self.warn(rel, WarningKind::Unreadable, detail);
                return Ok(());
            }
        };
        let size = at_open.len();
        let mut header = Self::header(&at_open, EntryType::Regular);
        header.set_size(size);
        self.builder
            .append_data(&mut header, rel, io::empty())
            .map_err(write_err(rel))?;
        let read_ok = match opened {
            Opened::Read(read) => {
                self.write_content(rel, &read.data, size)?;
                self.content_done(rel, size, &at_open, read.end, read.after)
            }
            Opened::Open { file, .. } => self.copy_exactly(file, size, rel, &at_open)?,
            Opened::NotAFile | Opened::Failed(_) => unreachable!("handled above"),
        };
        if at_open.nlink() > 1 {
            // only now is there an entry for later links of this inode to point at
            self.links
                .insert((at_open.dev(), at_open.ino()), (rel.to_path_buf(), read_ok));
        }
        self.outcome.stats.files += 1;
        Ok(())
    }

    /// Writes `data`, zeros up to `size` when it is shorter, and the tar padding.
    fn write_content(&mut self, rel: &Path, data: &[u8], size: u64) -> Result<(), VolumeError> {
        self.builder
            .get_mut()
            .write_all(data)
            .map_err(write_err(rel))?;
        self.write_zeros(rel, size - data.len() as u64 + tar_padding(size))
    }

    fn write_zeros(&mut self, rel: &Path, mut zeros: u64) -> Result<(), VolumeError> {
        let out = self.builder.get_mut();
        while zeros > 0 {
            let n = zeros.min(ZEROS.len() as u64) as usize;
            out.write_all(&ZEROS[..n]).map_err(write_err(rel))?;
            zeros -= n as u64;
        }
        Ok(())
    }

    /// Streams exactly `size` bytes of `file` (zero padding when it ends early or a read
    /// fails), then the tar padding, and records any change seen while reading. Returns
    /// `false` when a read failed (the content is incomplete), `true` otherwise.
    fn copy_exactly(
        &mut self,
        mut file: File,
        size: u64,
        rel: &Path,
        at_open: &Metadata,
    ) -> Result<bool, VolumeError> {
        let mut copied = 0;
        let mut end = None;
        while copied < size {
            let want = (size - copied).min(self.buffer.len() as u64) as usize;
            match file.read(&mut self.buffer[..want]) {
                Ok(0) => {
                    end = Some(ReadEnd::Shrank(copied));
                    break;
                }
                Ok(n) => {
                    self.builder
                        .get_mut()
                        .write_all(&self.buffer[..n])
                        .map_err(write_err(rel))?;
                    copied += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    end = Some(ReadEnd::Failed(copied, e));
                    break;
                }
            }
        }
        // the zeros (if it ended early) and the padding
        self.write_zeros(rel, size - copied + tar_padding(size))?;
        let after = if end.is_none() {
            file.metadata().ok()
        } else {
            None
        };
        Ok(self.content_done(rel, size, at_open, end, after))
    }

    /// Records how a file's content ended: short (shrank, or a read failed) or changed while
    /// read. Returns `false` when a read failed (the content is incomplete), `true` otherwise.
    fn content_done(
        &mut self,
        rel: &Path,
        size: u64,
        at_open: &Metadata,
        end: Option<ReadEnd>,
        after: Option<Metadata>,
    ) -> bool {
        let (kind, detail) = match end {
            Some(ReadEnd::Shrank(got)) => (
                WarningKind::TruncatedDuringRead,
                format!("shrank to {got} bytes while read"),
            ),
            Some(ReadEnd::Failed(got, e)) => (
                WarningKind::Unreadable,
                format!("read failed after {got} bytes: {e}"),
            ),
            None => {
                self.outcome.stats.bytes_read += size;
                if let Some(now) = after {
                    if now.len() != size
                        || now.mtime() != at_open.mtime()
                        || now.mtime_nsec() != at_open.mtime_nsec()
                    {
                        let detail = format!(
                            "changed while read (size {} at open, {} after); stored the {size} bytes present at open",
                            size,
                            now.len()
                        );
                        self.warn(rel, WarningKind::ChangedDuringRead, detail);
                    }
                }
                return true;
            }
        };
        self.warn(
            rel,
            kind,
            format!(
                "{detail}; content incomplete: the rest of its {size} bytes is stored as zeros"
            ),
        );
        kind != WarningKind::Unreadable
    }

    fn warn(&mut self, rel: &Path, kind: WarningKind, detail: String) {
        tracing::warn!(path = %rel.display(), ?kind, "{detail}");
        self.outcome.warnings.push(Warning {
            path: rel.display().to_string(),
            kind,
            detail,
        });
    }

    fn warn_io(&mut self, rel: &Path, e: &io::Error) {
        let kind = if e.kind() == io::ErrorKind::NotFound {
            WarningKind::Vanished
        } else {
            WarningKind::Unreadable
        };
        self.warn(rel, kind, e.to_string());
    }
}

/// Zeros after an entry's content up to the next 512-byte block.
fn tar_padding(size: u64) -> u64 {
    (512 - size % 512) % 512
}

fn write_err(rel: &Path) -> impl FnOnce(io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Write {
        path: rel.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests;
