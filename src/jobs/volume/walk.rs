//! The volume archive's walk: depth-first, children in name order, a folder before its
//! contents. It runs on its own thread, sends each entry to the tar writer in walk order, and
//! hands regular files to the read-ahead pool as it goes.

use super::read_ahead::{Budget, Job, Queue, ReadAhead, Slot};
use crate::store::WarningKind;
use std::collections::HashSet;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
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
        abs: PathBuf,
        rel: PathBuf,
        meta: Metadata,
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

/// Walks `root` (whose own entry the writer has written), sending its entries to `items`.
pub(super) struct Walker<'a> {
    pub root: &'a Path,
    pub items: SyncSender<Item>,
    /// The read-ahead pool's queue, when there is a pool.
    pub pool: Option<(&'a Queue, &'a Arc<Budget>)>,
    pub config: ReadAhead,
}

impl Walker<'_> {
    /// Walks the whole tree, or until the writer stops taking entries.
    pub(super) fn run(self) {
        let mut seen_inodes = HashSet::new();
        let _ = self.walk(&mut seen_inodes);
        if let Some((queue, _)) = self.pool {
            queue.close();
        }
    }

    fn walk(&self, seen_inodes: &mut HashSet<(u64, u64)>) -> Result<(), Stopped> {
        let mut pending = self.children(self.root, Path::new(""))?;
        while let Some(rel) = pending.pop() {
            let abs = self.root.join(&rel);
            let meta = match fs::symlink_metadata(&abs) {
                Ok(meta) => meta,
                Err(e) => {
                    self.send(io_warning(rel, &e))?;
                    continue;
                }
            };
            let kind = meta.file_type();
            let item = if kind.is_dir() {
                self.send(Item::Dir {
                    rel: rel.clone(),
                    meta,
                })?;
                pending.extend(self.children(&abs, &rel)?);
                continue;
            } else if kind.is_file() {
                let ahead = self.read_ahead(&abs, &meta, seen_inodes)?;
                Item::File {
                    abs,
                    rel,
                    meta,
                    ahead,
                }
            } else if kind.is_symlink() {
                let target = fs::read_link(&abs);
                Item::Symlink { rel, meta, target }
            } else {
                let what = if kind.is_socket() {
                    "socket"
                } else if kind.is_fifo() {
                    "FIFO"
                } else {
                    "device node"
                };
                Item::Special { rel, what }
            };
            self.send(item)?;
        }
        Ok(())
    }

    /// Queues a file for the pool, reserving its bytes first when it is small. Later paths of
    /// an inode already queued are left to the writer, which stores them as hard links.
    fn read_ahead(
        &self,
        abs: &Path,
        meta: &Metadata,
        seen_inodes: &mut HashSet<(u64, u64)>,
    ) -> Result<Option<Arc<Slot>>, Stopped> {
        let Some((queue, budget)) = self.pool else {
            return Ok(None);
        };
        if meta.nlink() > 1 && !seen_inodes.insert((meta.dev(), meta.ino())) {
            return Ok(None);
        }
        // room for a log file to grow a little between this lstat and the open
        let reserve = if meta.len() <= self.config.small_file {
            (meta.len() + meta.len() / 16 + 4096).min(self.config.small_file)
        } else {
            0
        };
        let permit = budget.acquire(reserve).ok_or(Stopped)?;
        let slot = Arc::new(Slot::default());
        queue.push(Job::new(abs.to_path_buf(), permit, Arc::clone(&slot)));
        Ok(Some(slot))
    }

    /// Children of a folder, sorted so that popping from the end visits them in name order.
    fn children(&self, abs: &Path, rel: &Path) -> Result<Vec<PathBuf>, Stopped> {
        let entries = match fs::read_dir(abs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.send(io_warning(rel.into(), &e))?;
                return Ok(Vec::new());
            }
            Err(e) => {
                let detail = format!("folder cannot be listed: {e}; its contents are not archived");
                self.send(unreadable(rel, detail))?;
                return Ok(Vec::new());
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
                    self.send(unreadable(rel, detail))?;
                    break;
                }
            }
        }
        names.sort_unstable_by(|a, b| b.cmp(a));
        Ok(names.into_iter().map(|n| rel.join(n)).collect())
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
