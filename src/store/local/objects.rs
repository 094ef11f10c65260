//! The gateway job's content-addressed object store in a local destination: objects are
//! staged under `gateway/objects/.staging/<run-id>/`, fsync'd, then hard-linked to their
//! address `gateway/objects/ab/<sha256>`, which never replaces an existing object.

use super::{private, sync_dir, LocalDestination, IN_PROGRESS_SUFFIX, PARTIAL_SUFFIX};
use crate::io_util::HashingWriter;
use crate::store::{
    is_object_name, object_path, JobKind, ObjectInfo, ObjectSink, ObjectStore, SetRef, StoreError,
    StoredObject, OBJECTS_DIR, STAGING_DIR,
};
use chrono::{DateTime, Utc};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::PathBuf;

impl LocalDestination {
    /// Removes the staging folders (`gateway/objects/.staging/<run-id>`) of runs whose writer
    /// is gone; what they hold was never committed, so no snapshot references it.
    pub(super) fn sweep_staging(&self) -> Result<(), StoreError> {
        let staging = self.root.join(STAGING_DIR);
        let Ok(entries) = fs::read_dir(&staging) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let live = name.parse().is_ok_and(|run_id| {
                self.is_being_written(&SetRef {
                    job: JobKind::Gateway,
                    run_id,
                })
            });
            if !live {
                let path = entry.path();
                fs::remove_dir_all(&path)
                    .map_err(StoreError::io("remove staged gateway objects", &path))?;
            }
        }
        Ok(())
    }
}

/// Staged objects of one process get distinct names from this counter.
static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl ObjectStore for LocalDestination {
    fn object_size(&self, sha256: &str) -> Result<Option<u64>, StoreError> {
        let path = self.root.join(object_path(sha256));
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("look up gateway object", &path)(e)),
        }
    }

    fn stage_object(
        &self,
        set: &SetRef,
        _size_hint: u64,
    ) -> Result<Box<dyn ObjectSink>, StoreError> {
        let dir = self.root.join(STAGING_DIR).join(set.run_id.as_str());
        private::create_dir_all(&dir).map_err(StoreError::io("create staging folder", &dir))?;
        let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!("{n}{PARTIAL_SUFFIX}"));
        let file = private::create_new_file(&path)
            .map_err(StoreError::io("create staged object", &path))?;
        Ok(Box::new(LocalObjectSink {
            writer: Some(HashingWriter::new(io::BufWriter::with_capacity(
                256 << 10,
                file,
            ))),
            staged: path,
            root: self.root.clone(),
        }))
    }

    fn open_object(&self, sha256: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let path = self.root.join(object_path(sha256));
        let file = File::open(&path).map_err(StoreError::io("open gateway object", &path))?;
        Ok(Box::new(io::BufReader::with_capacity(256 << 10, file)))
    }

    fn for_each_object(
        &self,
        visit: &mut dyn FnMut(ObjectInfo) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let objects = self.root.join(OBJECTS_DIR);
        let folders = match fs::read_dir(&objects) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("list gateway objects in", &objects)(e)),
        };
        for folder in folders {
            let folder = folder.map_err(StoreError::io("list gateway objects in", &objects))?;
            let prefix = folder.file_name().to_string_lossy().into_owned();
            // `.staging` and anything else that is not `ab/` is not ours to list
            let is_fanout = prefix.len() == 2 && is_object_name(&format!("{prefix:0<64}"));
            if !is_fanout || !folder.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let dir = folder.path();
            for entry in
                fs::read_dir(&dir).map_err(StoreError::io("list gateway objects in", &dir))?
            {
                let entry = entry.map_err(StoreError::io("list gateway objects in", &dir))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !is_object_name(&name) || !name.starts_with(&prefix) {
                    continue;
                }
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => {
                        return Err(StoreError::io("look up gateway object", entry.path())(e))
                    }
                };
                if !meta.is_file() {
                    continue;
                }
                visit(ObjectInfo {
                    sha256: name,
                    size: meta.len(),
                    modified: meta.modified().ok().map(DateTime::<Utc>::from),
                })?;
            }
        }
        Ok(())
    }

    fn gateway_writer(&self) -> Result<Option<String>, StoreError> {
        let dir = self.job_dir(JobKind::Gateway);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io("list", &dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(StoreError::io("list", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let run = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(IN_PROGRESS_SUFFIX))
                .and_then(|run| run.parse().ok());
            if let Some(run_id) = run {
                let set = SetRef {
                    job: JobKind::Gateway,
                    run_id,
                };
                if self.is_being_written(&set) {
                    return Ok(Some(set.to_string()));
                }
            }
        }
        Ok(None)
    }

    fn delete_objects(&self, sha256s: &[String]) -> Result<(), StoreError> {
        let mut folders = std::collections::BTreeSet::new();
        for sha256 in sha256s {
            let path = self.root.join(object_path(sha256));
            match fs::remove_file(&path) {
                Ok(()) => {
                    folders.insert(path.parent().map(PathBuf::from));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("delete gateway object", &path)(e)),
            }
        }
        for dir in folders.into_iter().flatten() {
            sync_dir(&dir)?;
        }
        Ok(())
    }
}

/// An object staged in a temp file, hard-linked under its address on commit (a link never
/// replaces an existing object, so the store stays immutable even with concurrent writers).
struct LocalObjectSink {
    writer: Option<HashingWriter<io::BufWriter<File>>>,
    staged: PathBuf,
    root: PathBuf,
}

impl Write for LocalObjectSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer
            .as_mut()
            .expect("written after commit")
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().map_or(Ok(()), |w| w.flush())
    }
}

impl ObjectSink for LocalObjectSink {
    fn commit(mut self: Box<Self>) -> Result<StoredObject, StoreError> {
        let (buffered, size, sha256) = self.writer.take().expect("commit once").into_parts();
        let file = buffered
            .into_inner()
            .map_err(|e| StoreError::io("write staged object", &self.staged)(e.into_error()))?;
        let path = self.root.join(object_path(&sha256));
        let result = (|| {
            if path.exists() {
                return Ok(true);
            }
            file.sync_all()
                .map_err(StoreError::io("sync staged object", &self.staged))?;
            let dir = path.parent().expect("objects have a folder");
            private::create_dir_all(dir).map_err(StoreError::io("create objects folder", dir))?;
            match fs::hard_link(&self.staged, &path) {
                Ok(()) => sync_dir(dir).map(|()| false),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(true),
                Err(e) => Err(StoreError::io("store gateway object", &path)(e)),
            }
        })();
        let _ = fs::remove_file(&self.staged);
        Ok(StoredObject {
            size,
            sha256,
            deduplicated: result?,
        })
    }
}

impl Drop for LocalObjectSink {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = fs::remove_file(&self.staged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::set;
    use super::*;
    use crate::store::Destination;

    #[test]
    fn gateway_objects_are_content_addressed_immutable_and_never_a_set() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = LocalDestination::new(tmp.path());
        let store = dest.objects().unwrap();
        let s = set(JobKind::Gateway);
        let _pending = dest.begin_set(&s).unwrap();
        let mut sink = store.stage_object(&s, 5).unwrap();
        sink.write_all(b"hello").unwrap();
        let stored = sink.commit().unwrap();
        let sha = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(
            (stored.size, stored.sha256.as_str(), stored.deduplicated),
            (5, sha, false)
        );
        assert_eq!(store.object_size(sha).unwrap(), Some(5));
        assert!(tmp.path().join(object_path(sha)).is_file());
        let mut again = store.stage_object(&s, 5).unwrap();
        again.write_all(b"hello").unwrap();
        assert!(again.commit().unwrap().deduplicated);
        let mut back = String::new();
        store
            .open_object(sha)
            .unwrap()
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, "hello");
        // an uncommitted object leaves nothing
        let mut dropped = store.stage_object(&s, 3).unwrap();
        dropped.write_all(b"bye").unwrap();
        drop(dropped);
        assert_eq!(store.object_size("0".repeat(64).as_str()).unwrap(), None);
        // the object store is not a set, and the live run's staging folder survives a sweep
        assert_eq!(
            dest.list_sets(Some(JobKind::Gateway)).unwrap(),
            vec![s.clone()]
        );
        let staging = tmp.path().join(STAGING_DIR).join(s.run_id.as_str());
        assert!(staging.is_dir());
        assert!(dest.sweep_incomplete().unwrap().is_empty());
        assert!(staging.is_dir());
        // once the writer is gone, the sweep removes its set and its staging folder
        drop(_pending);
        fs::create_dir_all(&staging).unwrap();
        fs::write(staging.join("7.partial"), b"junk").unwrap();
        dest.sweep_incomplete().unwrap();
        assert!(!staging.exists());
        assert_eq!(store.object_size(sha).unwrap(), Some(5));
    }
}
