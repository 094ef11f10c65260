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

use crate::store::{Warning, WarningKind};
use serde::Serialize;
use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header, HeaderMode};

const COPY_BUFFER: usize = 1 << 20;

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

/// Writes a tar archive of `root` into `out` and returns `out` with what was observed.
pub fn write_volume_tar<W: Write>(root: &Path, out: W) -> Result<(W, VolumeOutcome), VolumeError> {
    let meta = fs::metadata(root).map_err(|source| VolumeError::Root {
        path: root.into(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(VolumeError::RootNotDir(root.into()));
    }
    fs::read_dir(root).map_err(|source| VolumeError::Root {
        path: root.into(),
        source,
    })?;
    let mut archiver = Archiver {
        builder: tar::Builder::new(out),
        outcome: VolumeOutcome::default(),
        links: HashMap::new(),
        buffer: vec![0; COPY_BUFFER],
    };
    archiver.append_dir(root, Path::new("."), &meta)?;
    archiver.walk(root)?;
    let out = archiver
        .builder
        .into_inner()
        .map_err(|source| VolumeError::Write {
            path: "end of archive".into(),
            source,
        })?;
    Ok((out, archiver.outcome))
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
    /// Depth-first, children in name order, a folder's entry before its contents.
    fn walk(&mut self, root: &Path) -> Result<(), VolumeError> {
        let mut pending: Vec<PathBuf> = self.children(root, Path::new(""));
        while let Some(rel) = pending.pop() {
            let abs = root.join(&rel);
            let meta = match fs::symlink_metadata(&abs) {
                Ok(meta) => meta,
                Err(e) => {
                    self.warn_io(&rel, &e);
                    continue;
                }
            };
            let kind = meta.file_type();
            if kind.is_dir() {
                self.append_dir(&abs, &rel, &meta)?;
                pending.extend(self.children(&abs, &rel));
            } else if kind.is_file() {
                self.append_file(&abs, &rel, &meta)?;
            } else if kind.is_symlink() {
                self.append_symlink(&abs, &rel, &meta)?;
            } else {
                let what = if kind.is_socket() {
                    "socket"
                } else if kind.is_fifo() {
                    "FIFO"
                } else {
                    "device node"
                };
                self.outcome.stats.skipped += 1;
                self.warn(
                    &rel,
                    WarningKind::SkippedSpecialFile,
                    format!("{what} not archived"),
                );
            }
        }
        Ok(())
    }

    /// Children of a folder, sorted so that popping from the end visits them in name order.
    fn children(&mut self, abs: &Path, rel: &Path) -> Vec<PathBuf> {
        let entries = match fs::read_dir(abs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.warn_io(rel, &e);
                return Vec::new();
            }
            Err(e) => {
                let detail = format!("folder cannot be listed: {e}; its contents are not archived");
                self.warn(rel, WarningKind::Unreadable, detail);
                return Vec::new();
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(e) => {
                    let detail = format!(
                        "listing failed midway: {e}; some of its contents are not archived"
                    );
                    self.warn(rel, WarningKind::Unreadable, detail);
                    break;
                }
            }
        }
        names.sort_unstable_by(|a, b| b.cmp(a));
        names.into_iter().map(|n| rel.join(n)).collect()
    }

    fn header(meta: &Metadata, kind: EntryType) -> Header {
        let mut header = Header::new_gnu();
        header.set_metadata_in_mode(meta, HeaderMode::Complete);
        header.set_entry_type(kind);
        header.set_size(0);
        header
    }

    fn append_dir(&mut self, _abs: &Path, rel: &Path, meta: &Metadata) -> Result<(), VolumeError> {
        let mut header = Self::header(meta, EntryType::Directory);
        self.builder
            .append_data(&mut header, rel, io::empty())
            .map_err(write_err(rel))?;
        self.outcome.stats.directories += 1;
        Ok(())
    }

    fn append_symlink(
        &mut self,
        abs: &Path,
        rel: &Path,
        meta: &Metadata,
    ) -> Result<(), VolumeError> {
        let target = match fs::read_link(abs) {
            Ok(target) => target,
            Err(e) => {
                self.warn_io(rel, &e);
                return Ok(());
            }
        };
        let mut header = Self::header(meta, EntryType::Symlink);
        self.builder
            .append_link(&mut header, rel, &target)
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

    fn append_file(&mut self, abs: &Path, rel: &Path, meta: &Metadata) -> Result<(), VolumeError> {
        if meta.nlink() > 1 && self.append_hard_link(rel, meta)? {
            return Ok(());
        }
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(abs)
            .and_then(|file| file.metadata().map(|meta| (file, meta)));
        let (file, at_open) = match opened {
            Ok((file, at_open)) if at_open.is_file() => (file, at_open),
            Ok(_) => {
                self.warn(
                    rel,
                    WarningKind::Vanished,
                    "replaced by something that is not a file".into(),
                );
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.warn_io(rel, &e);
                return Ok(());
            }
            Err(e) => {
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
        let read_ok = self.copy_exactly(file, size, rel, &at_open)?;
        if at_open.nlink() > 1 {
            // only now is there an entry for later links of this inode to point at
            self.links
                .insert((at_open.dev(), at_open.ino()), (rel.to_path_buf(), read_ok));
        }
        self.outcome.stats.files += 1;
        Ok(())
    }

    /// Copies exactly `size` bytes of `file` (zero padding when it ends early or a read
    /// fails), then the tar padding, and records any change seen while reading. Returns
    /// `false` when a read failed (the content is incomplete), `true` otherwise.
    fn copy_exactly(
        &mut self,
        mut file: File,
        size: u64,
        rel: &Path,
        at_open: &Metadata,
    ) -> Result<bool, VolumeError> {
        let mut remaining = size;
        let mut shortfall: Option<String> = None;
        while remaining > 0 {
            let want = remaining.min(self.buffer.len() as u64) as usize;
            let got = if shortfall.is_some() {
                self.buffer[..want].fill(0);
                want
            } else {
                match file.read(&mut self.buffer[..want]) {
                    Ok(0) => {
                        shortfall =
                            Some(format!("shrank to {} bytes while read", size - remaining));
                        continue;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        shortfall =
                            Some(format!("read failed after {} bytes: {e}", size - remaining));
                        continue;
                    }
                }
            };
            self.builder
                .get_mut()
                .write_all(&self.buffer[..got])
                .map_err(write_err(rel))?;
            remaining -= got as u64;
        }
        let padding = (512 - size % 512) % 512;
        self.builder
            .get_mut()
            .write_all(&[0; 512][..padding as usize])
            .map_err(write_err(rel))?;

        if let Some(detail) = shortfall {
            let kind = if detail.starts_with("shrank") {
                WarningKind::TruncatedDuringRead
            } else {
                WarningKind::Unreadable
            };
            self.warn(
                rel,
                kind,
                format!(
                    "{detail}; content incomplete: the rest of its {size} bytes is stored as zeros"
                ),
            );
            return Ok(kind != WarningKind::Unreadable);
        }
        self.outcome.stats.bytes_read += size;
        if let Ok(now) = file.metadata() {
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
        Ok(true)
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

fn write_err(rel: &Path) -> impl FnOnce(io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Write {
        path: rel.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests;
