//! Applying a retention plan at a destination: deleting the sets it removes, and the sweep half
//! of the gateway object store's mark and sweep.
//!
//! The mark (which objects the kept snapshots reference) is built by the gateway job's code;
//! here an object is deleted only when it is not marked *and* was written before the cutoff
//! (now minus the grace period), so objects a running gateway job has just written and not yet
//! referenced are never deleted.

use super::{Destination, ObjectInfo, ObjectStore, SetRef, StoreError};
use chrono::{DateTime, Utc};
use std::collections::HashSet;

/// Objects deleted per [`ObjectStore::delete_objects`] call (one S3 DeleteObjects request).
const DELETE_BATCH: usize = 1000;

/// Deletes `sets` one by one ([`Destination::delete_set`] removes the manifest first, so an
/// interrupted prune never leaves a half set that lists as complete). Stops at the first error.
/// Returns how many were deleted, and the error that stopped it.
pub fn delete_sets(dest: &dyn Destination, sets: &[SetRef]) -> (usize, Result<(), StoreError>) {
    for (done, set) in sets.iter().enumerate() {
        if let Err(e) = dest.delete_set(set) {
            return (done, Err(e));
        }
        tracing::info!(set = %set, "Deleted a backup set the retention policy no longer keeps.");
    }
    (sets.len(), Ok(()))
}

/// What a sweep of the object store found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSweep {
    /// Objects in the store.
    pub listed: u64,
    /// Of those, referenced by a kept snapshot.
    pub referenced: u64,
    /// Unreferenced but written after the cutoff (within the grace period), or of unknown age.
    pub young: u64,
    /// Unreferenced and older than the grace period: deleted (in a dry run, to be deleted).
    pub removed: u64,
    /// Their bytes.
    pub removed_bytes: u64,
    /// A gateway run started writing while the store was listed: nothing was deleted.
    pub deferred: Option<String>,
}

/// The 32 bytes of a hex sha256, `None` when `hex` is not one.
pub fn sha256_bytes(hex: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// Deletes every object that is not in `marked` and was written before `cutoff`; in a dry run
/// only counts them. Memory: the candidates' names, bounded by the object count.
pub fn sweep_objects(
    store: &dyn ObjectStore,
    marked: &HashSet<[u8; 32]>,
    cutoff: DateTime<Utc>,
    dry_run: bool,
) -> Result<ObjectSweep, StoreError> {
    let mut sweep = ObjectSweep::default();
    let mut doomed = Vec::new();
    store.for_each_object(&mut |object: ObjectInfo| {
        sweep.listed += 1;
        let Some(address) = sha256_bytes(&object.sha256) else {
            return Ok(());
        };
        if marked.contains(&address) {
            sweep.referenced += 1;
        } else if object.modified.is_some_and(|t| t < cutoff) {
            sweep.removed += 1;
            sweep.removed_bytes += object.size;
            doomed.push(object.sha256);
        } else {
            sweep.young += 1;
        }
        Ok(())
    })?;
    if !dry_run && !doomed.is_empty() {
        // a run that started since the mark may reuse one of these by its address
        if let Some(writer) = store.gateway_writer()? {
            sweep.deferred = Some(writer);
            return Ok(sweep);
        }
        for batch in doomed.chunks(DELETE_BATCH) {
            store.delete_objects(batch)?;
        }
        if !doomed.is_empty() {
            tracing::info!(
                objects = doomed.len(),
                bytes = sweep.removed_bytes,
                "Deleted gateway objects no kept snapshot references."
            );
        }
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{LocalDestination, ObjectStore};
    use std::fs;

    fn put(store: &dyn ObjectStore, dest: &LocalDestination, bytes: &[u8]) -> String {
        let set = crate::store::SetRef {
            job: crate::store::JobKind::Gateway,
            run_id: crate::store::RunId::new(Utc::now()),
        };
        let _pending = crate::store::Destination::begin_set(dest, &set).unwrap();
        let mut sink = store.stage_object(&set, bytes.len() as u64).unwrap();
        std::io::Write::write_all(&mut sink, bytes).unwrap();
        sink.commit().unwrap().sha256
    }

    #[test]
    fn only_unmarked_objects_older_than_the_cutoff_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = LocalDestination::new(tmp.path());
        let store: &dyn ObjectStore = &dest;
        let kept = put(store, &dest, b"kept");
        let old = put(store, &dest, b"old orphan");
        let marked = HashSet::from([sha256_bytes(&kept).unwrap()]);
        // a file in the objects folder that is not an address is never touched
        let stray = tmp.path().join("gateway/objects/ab/not-an-object");
        fs::create_dir_all(stray.parent().unwrap()).unwrap();
        fs::write(&stray, b"x").unwrap();

        // cutoff before everything was written: all young
        let before = Utc::now() - chrono::Duration::hours(1);
        let sweep = sweep_objects(store, &marked, before, false).unwrap();
        assert_eq!((sweep.listed, sweep.referenced, sweep.young), (2, 1, 1));
        assert_eq!(sweep.removed, 0);

        // after the grace: the orphan goes, but not in a dry run
        let after = Utc::now() + chrono::Duration::hours(1);
        let dry = sweep_objects(store, &marked, after, true).unwrap();
        assert_eq!((dry.removed, dry.removed_bytes), (1, 10));
        assert_eq!(store.object_size(&old).unwrap(), Some(10));
        let wet = sweep_objects(store, &marked, after, false).unwrap();
        assert_eq!(wet, dry);
        assert_eq!(store.object_size(&old).unwrap(), None);
        assert_eq!(store.object_size(&kept).unwrap(), Some(4));
        assert!(stray.exists());
        // deleting what is already gone is fine
        store.delete_objects(&[old]).unwrap();
    }

    #[test]
    fn hex_addresses_become_bytes() {
        assert_eq!(sha256_bytes(&"ab".repeat(32)), Some([0xab; 32]));
        assert_eq!(sha256_bytes("ab"), None);
        assert_eq!(sha256_bytes(&"zz".repeat(32)), None);
    }
}
