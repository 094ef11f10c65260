//! A [`Destination`] wrapper that makes every write of a run fail once the run is cancelled
//! (deadline passed, daemon shutting down): the job's pipeline then unwinds, its uploads are
//! aborted and its set is discarded, as for any other write error.

use super::{
    ArtifactSink, Destination, JobKind, ListedManifest, ObjectInfo, ObjectSink, ObjectStore,
    PendingSet, SetRef, StoreError, StoredObject,
};
use crate::util::cancel::{Cancel, CancellableReader, CancellableWriter};
use std::io::Read;

/// `inner`, with every write and read checking `cancel` first.
pub struct Cancellable<'a> {
    inner: &'a dyn Destination,
    cancel: Cancel,
}

impl<'a> Cancellable<'a> {
    pub fn new(inner: &'a dyn Destination, cancel: Cancel) -> Self {
        Self { inner, cancel }
    }

    fn cancelled(&self) -> Result<(), StoreError> {
        cancelled(&self.cancel, "continue writing", &self.inner.describe())
    }
}

impl Destination for Cancellable<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn sweep_incomplete(&self) -> Result<Vec<String>, StoreError> {
        self.inner.sweep_incomplete()
    }

    fn begin_set(&self, set: &SetRef) -> Result<Box<dyn PendingSet>, StoreError> {
        self.cancelled()?;
        Ok(Box::new(CancellablePending {
            inner: self.inner.begin_set(set)?,
            cancel: self.cancel.clone(),
        }))
    }

    fn list_sets(&self, job: Option<JobKind>) -> Result<Vec<SetRef>, StoreError> {
        self.inner.list_sets(job)
    }

    fn read_manifest(&self, set: &SetRef) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.read_manifest(set)
    }

    fn list_manifests(&self, job: JobKind) -> Result<Vec<ListedManifest>, StoreError> {
        self.inner.list_manifests(job)
    }

    fn read_index(&self, job: JobKind) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.read_index(job)
    }

    fn write_index(&self, job: JobKind, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner.write_index(job, bytes)
    }

    fn open_artifact(&self, set: &SetRef, name: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let reader = self.inner.open_artifact(set, name)?;
        Ok(Box::new(CancellableReader::new(
            reader,
            self.cancel.clone(),
        )))
    }

    fn delete_set(&self, set: &SetRef) -> Result<(), StoreError> {
        self.inner.delete_set(set)
    }

    fn objects(&self) -> Option<&dyn ObjectStore> {
        self.inner.objects().map(|_| self as &dyn ObjectStore)
    }
}

impl ObjectStore for Cancellable<'_> {
    fn object_size(&self, sha256: &str) -> Result<Option<u64>, StoreError> {
        self.cancelled()?;
        self.store().object_size(sha256)
    }

    fn stage_object(
        &self,
        set: &SetRef,
        size_hint: u64,
    ) -> Result<Box<dyn ObjectSink>, StoreError> {
        self.cancelled()?;
        let sink = self.store().stage_object(set, size_hint)?;
        Ok(Box::new(CancellableWriter::new(sink, self.cancel.clone())))
    }

    fn open_object(&self, sha256: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let reader = self.store().open_object(sha256)?;
        Ok(Box::new(CancellableReader::new(
            reader,
            self.cancel.clone(),
        )))
    }

    fn for_each_object(
        &self,
        visit: &mut dyn FnMut(ObjectInfo) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.store().for_each_object(visit)
    }

    fn delete_objects(&self, sha256s: &[String]) -> Result<(), StoreError> {
        self.cancelled()?;
        self.store().delete_objects(sha256s)
    }

    fn gateway_writer(&self) -> Result<Option<String>, StoreError> {
        self.store().gateway_writer()
    }
}

impl Cancellable<'_> {
    fn store(&self) -> &dyn ObjectStore {
        self.inner
            .objects()
            .expect("objects() is Some only when the inner destination has a store")
    }
}

struct CancellablePending {
    inner: Box<dyn PendingSet>,
    cancel: Cancel,
}

impl PendingSet for CancellablePending {
    fn create_artifact(&mut self, name: &str) -> Result<Box<dyn ArtifactSink>, StoreError> {
        let sink = self.inner.create_artifact(name)?;
        Ok(Box::new(CancellableWriter::new(sink, self.cancel.clone())))
    }

    fn complete(self: Box<Self>, manifest: &[u8]) -> Result<(), StoreError> {
        cancelled(&self.cancel, "complete", "the backup set")?;
        self.inner.complete(manifest)
    }
}

impl ArtifactSink for CancellableWriter<Box<dyn ArtifactSink>> {
    fn finish(self: Box<Self>) -> Result<u64, StoreError> {
        let (inner, cancel) = self.into_parts();
        cancelled(&cancel, "finish", "an artifact")?;
        inner.finish()
    }
}

impl ObjectSink for CancellableWriter<Box<dyn ObjectSink>> {
    fn commit(self: Box<Self>) -> Result<StoredObject, StoreError> {
        let (inner, cancel) = self.into_parts();
        cancelled(&cancel, "commit", "a gateway object")?;
        inner.commit()
    }
}

/// `Err` naming what could not be done once `cancel` is set.
fn cancelled(cancel: &Cancel, action: &'static str, what: &str) -> Result<(), StoreError> {
    cancel.check().map_err(|source| StoreError::Io {
        action,
        path: what.into(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LocalDestination, RunId};

    #[test]
    fn a_cancelled_run_cannot_write_or_complete_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let local = LocalDestination::new(tmp.path());
        let cancel = Cancel::new();
        let dest = Cancellable::new(&local, cancel.clone());
        let set = SetRef {
            job: JobKind::Volume,
            run_id: RunId::new(chrono::Utc::now()),
        };
        let mut pending = dest.begin_set(&set).unwrap();
        let mut sink = pending.create_artifact("a.bin").unwrap();
        sink.write_all(b"before").unwrap();
        cancel.cancel("the deadline of 1s (deadline.volume) passed");
        let e = sink.write_all(b"after").unwrap_err();
        assert!(e.to_string().contains("deadline of 1s"), "{e}");
        drop(sink);
        assert!(pending.complete(b"{}").is_err());
        assert!(local.list_sets(None).unwrap().is_empty());
        assert!(dest.begin_set(&set).is_err());
    }
}
