//! The local destination's side of the catalog: listing which sets have a manifest (one
//! `stat` each, no read) and replacing a job's index file atomically (temp file, fsync, rename).

use super::{private, sync_dir, LocalDestination};
use crate::store::{JobKind, ListedManifest, SetRef, StoreError, INDEX_NAME, MANIFEST_NAME};
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};

impl LocalDestination {
    /// Sets of `job` whose folder holds a manifest; the version tag is its mtime (ns).
    pub(super) fn manifests_of(&self, job: JobKind) -> Result<Vec<ListedManifest>, StoreError> {
        let mut listed = Vec::new();
        for set in crate::store::Destination::list_sets(self, Some(job))? {
            let path = self.set_dir(&set).join(MANIFEST_NAME);
            match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => listed.push(listed_manifest(set, &meta)),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::io("look at manifest", &path)(e)),
            }
        }
        Ok(listed)
    }

    pub(super) fn index_bytes(&self, job: JobKind) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.job_dir(job).join(INDEX_NAME);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("read catalog index", &path)(e)),
        }
    }

    /// Writes a uniquely named hidden temp file, then renames it over the index, so that two
    /// writers never mix their bytes and a reader sees one whole index or the other.
    pub(super) fn replace_index(&self, job: JobKind, bytes: &[u8]) -> Result<(), StoreError> {
        static WRITTEN: AtomicU64 = AtomicU64::new(0);
        let dir = self.job_dir(job);
        private::create_dir_all(&dir).map_err(StoreError::io("create job folder", &dir))?;
        let temp = dir.join(format!(
            ".{INDEX_NAME}.{}-{}.partial",
            std::process::id(),
            WRITTEN.fetch_add(1, Ordering::Relaxed)
        ));
        let written = private::create_new_file(&temp)
            .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_all()))
            .map_err(StoreError::io("write catalog index", &temp))
            .and_then(|()| {
                let path = dir.join(INDEX_NAME);
                fs::rename(&temp, &path).map_err(StoreError::io("rename catalog index", &path))
            });
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written?;
        sync_dir(&dir)
    }
}

fn listed_manifest(set: SetRef, meta: &fs::Metadata) -> ListedManifest {
    let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    ListedManifest {
        set,
        size: meta.len(),
        version: Some(format!("{mtime_ns}-{}", meta.ino())),
    }
}
