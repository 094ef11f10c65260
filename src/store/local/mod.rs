//! A destination in a local directory (`file:///path`): temp name, fsync, rename; manifest last.
//!
//! Layout: `<root>/<job>/<run-id>/<artifacts>` plus `manifest.json` once complete. While a set
//! is written, `<root>/<job>/.<run-id>.in-progress` is held locked by the writer, so a sweep
//! from another process can tell a live writer from a crashed one (the kernel drops the lock
//! when the writer dies, even by `kill -9`). The lock file appears already locked (it is made
//! and locked under a temporary name, then hard-linked into place) and before the set folder,
//! and disappears only after the manifest: a sweep that finds the lock free and then no
//! manifest knows the writer is gone. Everything is owner-only (see [`private`]).

use super::{
    ArtifactSink, Destination, JobKind, ListedManifest, ObjectStore, PendingSet, SetRef,
    StoreError, MANIFEST_NAME,
};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod index;
mod objects;
mod private;

const PARTIAL_SUFFIX: &str = ".partial";
const IN_PROGRESS_SUFFIX: &str = ".in-progress";
/// `.<run-id>.in-progress.<instance>-<n>.tmp`: a lock file being made, before it is linked.
const LOCK_TEMP_SUFFIX: &str = ".tmp";
/// A lock file without its set folder, or still under its temporary name, after this long
/// was left by a crash; younger ones are not even opened (a writer may be taking the lock).
const LOCK_STALE: Duration = Duration::from_secs(3600);

/// Backup sets in a directory of this host.
pub struct LocalDestination {
    root: PathBuf,
}

impl LocalDestination {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn job_dir(&self, job: JobKind) -> PathBuf {
        self.root.join(job.as_str())
    }

    fn set_dir(&self, set: &SetRef) -> PathBuf {
        self.root.join(set.dir())
    }

    fn lock_path(&self, set: &SetRef) -> PathBuf {
        self.job_dir(set.job)
            .join(format!(".{}{IN_PROGRESS_SUFFIX}", set.run_id))
    }

    /// True when some live process holds the set's in-progress lock.
    fn is_being_written(&self, set: &SetRef) -> bool {
        match File::open(self.lock_path(set)) {
            Ok(file) => file.try_lock().is_err(),
            Err(_) => false,
        }
    }

    /// Judges one set folder: the lock first, then the manifest. A writer removes its lock
    /// only after its manifest is in place, so "lock free, then no manifest" proves the writer
    /// is gone; the other order would delete a set completing between the two checks.
    fn sweep_set(&self, set: &SetRef) -> Result<bool, StoreError> {
        if self.is_being_written(set) {
            return Ok(false);
        }
        let dir = self.set_dir(set);
        if dir.join(MANIFEST_NAME).exists() {
            remove_partial_files(&dir)?;
            return Ok(false);
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io("remove incomplete backup set", &dir)(e)),
        }
        let _ = fs::remove_file(self.lock_path(set));
        Ok(true)
    }

    /// Makes the set's lock file and locks it before it gets its name, so that no sweep ever
    /// sees it unlocked. Fails with [`StoreError::SetExists`] when the name is taken.
    fn create_lock(&self, set: &SetRef) -> Result<(File, PathBuf), StoreError> {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let lock_path = self.lock_path(set);
        let temp = self.job_dir(set.job).join(format!(
            ".{}{IN_PROGRESS_SUFFIX}.{}-{}{LOCK_TEMP_SUFFIX}",
            set.run_id,
            crate::util::ProcessIdentity::current().instance,
            MADE.fetch_add(1, Ordering::Relaxed)
        ));
        let not_writable = |path: &Path, e: &dyn std::fmt::Display| StoreError::NotWritable {
            destination: self.describe(),
            reason: format!("cannot create {}: {e}", path.display()),
        };
        let taken = |e: io::Error, path: &Path| match e.kind() {
            io::ErrorKind::AlreadyExists => StoreError::SetExists(set.clone()),
            _ => not_writable(path, &e),
        };
        let lock = private::create_new_file(&temp).map_err(|e| not_writable(&temp, &e))?;
        let linked = lock
            .try_lock()
            .map_err(|e| not_writable(&temp, &e))
            .and_then(|()| match fs::hard_link(&temp, &lock_path) {
                Ok(()) => Ok(Some(lock)),
                Err(e) if hard_links_unsupported(&e) => Ok(None),
                Err(e) => Err(taken(e, &lock_path)),
            });
        let _ = fs::remove_file(&temp);
        if let Some(lock) = linked? {
            return Ok((lock, lock_path));
        }
        // a file system without hard links: create, then lock (sweeps leave young lock files
        // without a set folder alone, so none holds or removes this one meanwhile)
        let lock = private::create_new_file(&lock_path).map_err(|e| taken(e, &lock_path))?;
        if let Err(e) = lock.try_lock() {
            let _ = fs::remove_file(&lock_path);
            return Err(not_writable(&lock_path, &e));
        }
        Ok((lock, lock_path))
    }
}

impl Destination for LocalDestination {
    fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    fn sweep_incomplete(&self) -> Result<Vec<String>, StoreError> {
        let mut removed = Vec::new();
        for set in self.list_sets(None)? {
            if self.sweep_set(&set)? {
                removed.push(set.to_string());
            }
        }
        for job in JobKind::ALL {
            remove_stale_locks(&self.job_dir(job))?;
        }
        self.sweep_staging()?;
        Ok(removed)
    }

    fn begin_set(&self, set: &SetRef) -> Result<Box<dyn PendingSet>, StoreError> {
        let job_dir = self.job_dir(set.job);
        private::create_dir_all(&job_dir).map_err(|e| StoreError::NotWritable {
            destination: self.describe(),
            reason: format!("cannot create {}: {e}", job_dir.display()),
        })?;
        // the lock exists (locked) before the set folder, and outlives it until the manifest
        let (lock, lock_path) = self.create_lock(set)?;
        let dir = self.set_dir(set);
        let pending = LocalPendingSet {
            dir: dir.clone(),
            lock_path,
            _lock: lock,
            completed: false,
        };
        private::create_dir(&dir).map_err(StoreError::io("create backup set folder", &dir))?;
        Ok(Box::new(pending))
    }

    fn list_sets(&self, job: Option<JobKind>) -> Result<Vec<SetRef>, StoreError> {
        let mut sets = Vec::new();
        for job in JobKind::ALL
            .into_iter()
            .filter(|j| job.is_none_or(|want| want == *j))
        {
            let dir = self.job_dir(job);
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io("list", &dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(StoreError::io("list", &dir))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if let Ok(run_id) = name.parse() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        sets.push(SetRef { job, run_id });
                    }
                }
            }
        }
        Ok(sets)
    }

    fn read_manifest(&self, set: &SetRef) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.set_dir(set).join(MANIFEST_NAME);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read manifest", &path)(e)),
        }
    }

    fn list_manifests(&self, job: JobKind) -> Result<Vec<ListedManifest>, StoreError> {
        self.manifests_of(job)
    }

    fn read_index(&self, job: JobKind) -> Result<Option<Vec<u8>>, StoreError> {
        self.index_bytes(job)
    }

    fn write_index(&self, job: JobKind, bytes: &[u8]) -> Result<(), StoreError> {
        self.replace_index(job, bytes)
    }

    fn open_artifact(&self, set: &SetRef, name: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let path = self.set_dir(set).join(name);
        match File::open(&path) {
            Ok(file) => Ok(Box::new(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::MissingArtifact {
                set: set.clone(),
                name: name.into(),
            }),
            Err(e) => Err(StoreError::io("open artifact", &path)(e)),
        }
    }

    fn delete_set(&self, set: &SetRef) -> Result<(), StoreError> {
        let dir = self.set_dir(set);
        let manifest = dir.join(MANIFEST_NAME);
        match fs::remove_file(&manifest) {
            Ok(()) => sync_dir(&dir)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::io("delete manifest", &manifest)(e)),
        }
        fs::remove_dir_all(&dir).map_err(StoreError::io("delete backup set", &dir))
    }

    fn objects(&self) -> Option<&dyn ObjectStore> {
        Some(self)
    }
}

struct LocalPendingSet {
    dir: PathBuf,
    lock_path: PathBuf,
    /// Held (locked) until the set is complete or abandoned.
    _lock: File,
    completed: bool,
}

impl PendingSet for LocalPendingSet {
    fn create_artifact(&mut self, name: &str) -> Result<Box<dyn ArtifactSink>, StoreError> {
        assert!(
            !name.contains('/') && !name.starts_with('.'),
            "artifact names are plain file names"
        );
        let partial = self.dir.join(format!(".{name}{PARTIAL_SUFFIX}"));
        let file = private::create_new_file(&partial)
            .map_err(StoreError::io("create artifact", &partial))?;
        Ok(Box::new(LocalSink {
            file: Some(file),
            bytes: 0,
            partial,
            path: self.dir.join(name),
        }))
    }

    fn complete(mut self: Box<Self>, manifest: &[u8]) -> Result<(), StoreError> {
        let partial = self.dir.join(format!(".{MANIFEST_NAME}{PARTIAL_SUFFIX}"));
        let mut file = private::create_new_file(&partial)
            .map_err(StoreError::io("create manifest", &partial))?;
        file.write_all(manifest)
            .map_err(StoreError::io("write manifest", &partial))?;
        file.sync_all()
            .map_err(StoreError::io("sync manifest", &partial))?;
        let path = self.dir.join(MANIFEST_NAME);
        fs::rename(&partial, &path).map_err(StoreError::io("rename manifest into place", &path))?;
        sync_dir(&self.dir)?;
        if let Some(job_dir) = self.dir.parent() {
            sync_dir(job_dir)?;
        }
        self.completed = true;
        let _ = fs::remove_file(&self.lock_path);
        Ok(())
    }
}

impl Drop for LocalPendingSet {
    fn drop(&mut self) {
        if !self.completed {
            let _ = fs::remove_dir_all(&self.dir);
            let _ = fs::remove_file(&self.lock_path);
        }
    }
}

struct LocalSink {
    file: Option<File>,
    bytes: u64,
    partial: PathBuf,
    path: PathBuf,
}

impl Write for LocalSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self.file.as_mut().expect("sink written after finish");
        let n = file.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl ArtifactSink for LocalSink {
    fn finish(mut self: Box<Self>) -> Result<u64, StoreError> {
        let file = self.file.take().expect("finish called once");
        file.sync_all()
            .map_err(StoreError::io("sync artifact", &self.partial))?;
        drop(file);
        fs::rename(&self.partial, &self.path)
            .map_err(StoreError::io("rename artifact into place", &self.path))?;
        Ok(self.bytes)
    }
}

impl Drop for LocalSink {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.partial);
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StoreError::io("sync folder", dir))
}

/// Removes `*.partial` leftovers inside a complete set (an interrupted manifest rewrite).
fn remove_partial_files(dir: &Path) -> Result<(), StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // deleted meanwhile (by a prune)
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("list", dir)(e)),
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(PARTIAL_SUFFIX)
        {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Removes in-progress lock files older than [`LOCK_STALE`] that no live process holds and
/// whose set is gone, and lock files and catalog indexes a crash left under their temporary
/// name.
fn remove_stale_locks(job_dir: &Path) -> Result<(), StoreError> {
    let Ok(entries) = fs::read_dir(job_dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') || !is_old(&entry) {
            continue;
        }
        if is_lock_temp(&name) || is_index_temp(&name) {
            let _ = fs::remove_file(entry.path());
            continue;
        }
        let Some(run) = name
            .strip_prefix('.')
            .and_then(|n| n.strip_suffix(IN_PROGRESS_SUFFIX))
        else {
            continue;
        };
        let unlocked = File::open(entry.path()).is_ok_and(|f| f.try_lock().is_ok());
        if unlocked && !job_dir.join(run).exists() {
            let _ = fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// The errors of `link(2)` on a file system that has no hard links (vfat, some FUSE mounts).
fn hard_links_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::EOPNOTSUPP | libc::ENOSYS)
    )
}

/// `.<run-id>.in-progress.<instance>-<n>.tmp`: a writer links and removes its temporary lock
/// file at once, so an old one belongs to a crashed writer.
fn is_lock_temp(name: &str) -> bool {
    name.ends_with(LOCK_TEMP_SUFFIX) && name.contains(&format!("{IN_PROGRESS_SUFFIX}."))
}

/// `.index.json.zst.<pid>-<n>.partial`: a catalog index being written; an old one was left
/// by a crash.
fn is_index_temp(name: &str) -> bool {
    name.starts_with(&format!(".{}.", super::INDEX_NAME)) && name.ends_with(PARTIAL_SUFFIX)
}

/// Last modified more than [`LOCK_STALE`] ago.
fn is_old(entry: &fs::DirEntry) -> bool {
    entry
        .metadata()
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > LOCK_STALE))
}

#[cfg(test)]
mod tests;
