//! The volume archive's walk: depth-first, children in name order, a folder before its
//! contents. It runs on its own thread, sends each entry to the tar writer in walk order, and
//! hands regular files to the read-ahead pool as it goes. Every entry is listed, stated and
//! opened relative to its folder's open descriptor ([`at`](super::at)).

use super::at::{self, FileStat, Kind};
use super::read_ahead::{Budget, Job, Queue, ReadAhead, Slot};
use crate::store::WarningKind;
use std::collections::HashSet;
use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

/// One entry of the archive, in walk order.
pub(super) enum Item {
    Dir {
        rel: PathBuf,
        meta: Metadata,
    },
    File {
        /// The open folder holding it, and its name there.
        dir: Arc<File>,
        name: OsString,
        rel: PathBuf,
        /// lstat of a later path of an inode with several links whose first path the walk
        /// has passed already: the writer stores a hard link (when that first path was
        /// stored) without opening it.
        link: Option<Metadata>,
        /// Where the pool puts the opened (or read) file; `None`: the writer opens it.
        ahead: Option<Arc<Slot>>,
    },
    Symlink {
        rel: PathBuf,
        meta: Metadata,
        target: io::Result<PathBuf>,
    },
    /// A socket, FIFO or device node, not archived.
    Special {
        rel: PathBuf,
        what: &'static str,
    },
    Warning {
        rel: PathBuf,
        kind: WarningKind,
        detail: String,
    },
}

/// The writer is gone; stop walking.
struct Stopped;

/// A folder being walked: its descriptor and the names left, last name first.
struct Frame {
    dir: Arc<File>,
    rel: PathBuf,
    names: Vec<(OsString, Kind)>,
}

/// Walks `root` (whose own entry the writer has written), sending its entries to `items`.
pub(super) struct Walker<'a> {
    pub items: SyncSender<Item>,
    /// The read-ahead pool's queue, when there is a pool.
    pub pool: Option<(&'a Queue, &'a Arc<Budget>)>,
    pub config: ReadAhead,
}

impl Walker<'_> {
    /// Walks the tree of the open folder `root`, or until the writer stops taking entries.
    pub(super) fn run(self, root: File) {
        let _ = self.walk(root);
        if let Some((queue, _)) = self.pool {
            queue.close();
        }
    }

    fn walk(&self, root: File) -> Result<(), Stopped> {
        let mut seen_inodes = HashSet::new();
        let mut stack = vec![self.frame(Arc::new(root), PathBuf::new())?];
        while let Some(top) = stack.last_mut() {
            let Some((name, kind)) = top.names.pop() else {
                stack.pop();
                continue;
            };
            let dir = Arc::clone(&top.dir);
            let rel = top.rel.join(&name);
            if let Some(frame) = self.entry(dir, name, rel, kind, &mut seen_inodes)? {
                stack.push(frame);
            }
        }
        Ok(())
    }

    /// Sends the entry `name` of `dir`; a folder's frame is returned to be walked next.
    fn entry(
        &self,
        dir: Arc<File>,
        name: OsString,
        rel: PathBuf,
        kind: Kind,
        seen_inodes: &mut HashSet<(u64, u64)>,
    ) -> Result<Option<Frame>, Stopped> {
        let item = match kind {
            Kind::File => match at::file_stat(&dir, &name) {
                Ok((Kind::File, stat)) => self.file(dir, name, rel, &stat, seen_inodes)?,
                // no longer a regular file: look again
                Ok(_) => return self.entry(dir, name, rel, Kind::Unknown, seen_inodes),
                Err(e) => io_warning(rel, &e),
            },
            Kind::Folder => return self.folder(dir, name, rel, seen_inodes),
            Kind::Special(what) => Item::Special { rel, what },
            Kind::Symlink | Kind::Unknown => match at::metadata(&dir, &name) {
                Ok(meta) => return self.with_meta(dir, name, rel, meta, seen_inodes),
                Err(e) => io_warning(rel, &e),
            },
        };
        self.send(item)?;
        Ok(None)
    }

    /// Sends an entry whose lstat is known.
    fn with_meta(
        &self,
        dir: Arc<File>,
        name: OsString,
        rel: PathBuf,
        meta: Metadata,
        seen_inodes: &mut HashSet<(u64, u64)>,
    ) -> Result<Option<Frame>, Stopped> {
        let item = match Kind::of_meta(&meta) {
            Kind::Folder => return self.folder(dir, name, rel, seen_inodes),
            Kind::File => {
                use std::os::unix::fs::MetadataExt;
                let stat = FileStat {
                    size: meta.len(),
                    nlink: meta.nlink(),
                    dev: meta.dev(),
                    ino: meta.ino(),
                };
                self.file(dir, name, rel, &stat, seen_inodes)?
            }
            Kind::Symlink => {
                let target = at::read_link(&dir, &name);
                Item::Symlink { rel, meta, target }
            }
            Kind::Special(what) => Item::Special { rel, what },
            Kind::Unknown => Item::Special {
                rel,
                what: "file of unknown kind",
            },
        };
        self.send(item)?;
        Ok(None)
    }

    /// Sends a folder's entry and returns its frame; a folder that cannot be opened is
    /// archived empty, with a warning.
    fn folder(
        &self,
        dir: Arc<File>,
        name: OsString,
        rel: PathBuf,
        seen_inodes: &mut HashSet<(u64, u64)>,
    ) -> Result<Option<Frame>, Stopped> {
        let opened = at::open_folder(&dir, &name).and_then(|folder| {
            let meta = folder.metadata()?;
            Ok((folder, meta))
        });
        match opened {
            Ok((folder, meta)) => {
                self.send(Item::Dir {
                    rel: rel.clone(),
                    meta,
                })?;
                self.frame(Arc::new(folder), rel).map(Some)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.send(io_warning(rel, &e))?;
                Ok(None)
            }
            Err(e) => match at::metadata(&dir, &name) {
                Ok(meta) if meta.is_dir() => {
                    self.send(Item::Dir {
                        rel: rel.clone(),
                        meta,
                    })?;
                    let detail =
                        format!("folder cannot be listed: {e}; its contents are not archived");
                    self.send(unreadable(&rel, detail))?;
                    Ok(None)
                }
                // replaced by something else since the listing
                Ok(meta) => self.with_meta(dir, name, rel, meta, seen_inodes),
                Err(e) => {
                    self.send(io_warning(rel, &e))?;
                    Ok(None)
                }
            },
        }
    }

    /// A regular file's item: queued for the pool (its bytes reserved first when it is
    /// small), or, for a later path of an inode already passed, marked as a hard link.
    fn file(
        &self,
        dir: Arc<File>,
        name: OsString,
        rel: PathBuf,
        stat: &FileStat,
        seen_inodes: &mut HashSet<(u64, u64)>,
    ) -> Result<Item, Stopped> {
        if stat.nlink > 1 && !seen_inodes.insert((stat.dev, stat.ino)) {
            let link = at::metadata(&dir, &name).ok();
            return Ok(Item::File {
                dir,
                name,
                rel,
                link,
                ahead: None,
            });
        }
        let ahead = match self.pool {
            Some((queue, budget)) => {
                // room for a log file to grow a little between this lstat and the open
                let reserve = if stat.size <= self.config.small_file {
                    (stat.size + stat.size / 16 + 4096).min(self.config.small_file)
                } else {
                    0
                };
                let permit = budget.acquire(reserve).ok_or(Stopped)?;
                let slot = Slot::new(Job::new(Arc::clone(&dir), name.clone(), permit));
                queue.push(Arc::clone(&slot));
                Some(slot)
            }
            None => None,
        };
        Ok(Item::File {
            dir,
            name,
            rel,
            link: None,
            ahead,
        })
    }

    /// Lists a folder (sorted so that popping from the end visits names in order); listing
    /// errors become warnings.
    fn frame(&self, dir: Arc<File>, rel: PathBuf) -> Result<Frame, Stopped> {
        let mut names = match at::list(&dir) {
            Ok((names, None)) => names,
            Ok((names, Some(e))) => {
                let detail =
                    format!("listing failed midway: {e}; some of its contents are not archived");
                self.send(unreadable(&rel, detail))?;
                names
            }
            Err(e) => {
                let detail = format!("folder cannot be listed: {e}; its contents are not archived");
                self.send(unreadable(&rel, detail))?;
                Vec::new()
            }
        };
        names.sort_unstable_by(|a, b| b.0.cmp(&a.0));
        Ok(Frame { dir, rel, names })
    }

    fn send(&self, item: Item) -> Result<(), Stopped> {
        self.items.send(item).map_err(|_| Stopped)
    }
}

fn unreadable(rel: &Path, detail: String) -> Item {
    Item::Warning {
        rel: rel.into(),
        kind: WarningKind::Unreadable,
        detail,
    }
}

/// A warning for a failed lstat or listing: vanished when not found, unreadable otherwise.
fn io_warning(rel: PathBuf, e: &io::Error) -> Item {
    let kind = if e.kind() == io::ErrorKind::NotFound {
        WarningKind::Vanished
    } else {
        WarningKind::Unreadable
    };
    Item::Warning {
        rel,
        kind,
        detail: e.to_string(),
    }
}
