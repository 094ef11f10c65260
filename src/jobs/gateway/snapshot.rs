//! The snapshot artifact of a gateway set (`snapshot.json.zst`): per bucket, every object's
//! key, size, ETag, sha256, content type, user metadata and address in the object store.

use crate::store::{Destination, Manifest, SetRef, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;

/// The artifact name of a gateway snapshot.
pub const SNAPSHOT_ARTIFACT: &str = "snapshot.json.zst";

/// Version of the snapshot format written by this build.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Every bucket of one gateway run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub format_version: u32,
    pub buckets: Vec<BucketSnapshot>,
}

/// One bucket as it was listed, objects in key order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketSnapshot {
    pub name: String,
    pub objects: Vec<ObjectRecord>,
}

/// One object: what the gateway said about it, and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    pub key: String,
    pub size: u64,
    /// The gateway's ETag, without quotes.
    pub etag: String,
    /// sha256 of the bytes (hex), computed while they streamed: the object-store address.
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`, names without the prefix).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Where the bytes live, relative to the destination root (`gateway/objects/ab/...`).
    pub location: String,
}

impl Snapshot {
    pub fn bucket(&self, name: &str) -> Option<&BucketSnapshot> {
        self.buckets.iter().find(|b| b.name == name)
    }

    /// Objects and bytes in all buckets.
    pub fn totals(&self) -> (usize, u64) {
        self.buckets
            .iter()
            .flat_map(|b| &b.objects)
            .fold((0, 0), |(n, bytes), o| (n + 1, bytes + o.size))
    }
}

/// Why a snapshot artifact could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("set {set} has no {SNAPSHOT_ARTIFACT} in its manifest")]
    Missing { set: SetRef },
    #[error("cannot read {SNAPSHOT_ARTIFACT} of {set}")]
    Read {
        set: SetRef,
        #[source]
        source: io::Error,
    },
    #[error("{SNAPSHOT_ARTIFACT} of {set} is not a snapshot this version understands: {detail}")]
    Format { set: SetRef, detail: String },
}

/// How many WAL-E base backups (`.../basebackups_005/..._backup_stop_sentinel.json`) the
/// snapshot holds, in any bucket: with one, `deis-database` restores itself from `db_wal` when
/// it starts, and a `pg_dumpall` replayed on top would collide.
pub fn wal_e_base_backups(snapshot: &Snapshot) -> usize {
    snapshot
        .buckets
        .iter()
        .flat_map(|b| &b.objects)
        .filter(|o| {
            o.key.contains("basebackups_005/") && o.key.ends_with("_backup_stop_sentinel.json")
        })
        .count()
}

/// The decoded JSON stream of the snapshot of a complete gateway set, and that set.
pub fn open_snapshot(
    dest: &dyn Destination,
    manifest: &Manifest,
) -> Result<(impl io::Read, SetRef), SnapshotError> {
    let set = manifest.set_ref();
    if manifest.artifact(SNAPSHOT_ARTIFACT).is_none() {
        return Err(SnapshotError::Missing { set });
    }
    let reader = dest.open_artifact(&set, SNAPSHOT_ARTIFACT)?;
    let decoder =
        zstd::stream::read::Decoder::new(reader).map_err(|source| SnapshotError::Read {
            set: set.clone(),
            source,
        })?;
    Ok((io::BufReader::new(decoder), set))
}

/// Reads the snapshot of a complete gateway set.
pub fn read_snapshot(
    dest: &dyn Destination,
    manifest: &Manifest,
) -> Result<Snapshot, SnapshotError> {
    let (json, set) = open_snapshot(dest, manifest)?;
    let snapshot: Snapshot = serde_json::from_reader(json).map_err(|e| SnapshotError::Format {
        set: set.clone(),
        detail: e.to_string(),
    })?;
    for bucket in &snapshot.buckets {
        if let Some(bad) = bucket
            .objects
            .iter()
            .find(|o| !crate::store::is_object_name(&o.sha256))
        {
            return Err(SnapshotError::Format {
                set,
                detail: format!(
                    "object {}/{} has sha256 {:?}, not 64 lowercase hex digits",
                    bucket.name, bad.key, bad.sha256
                ),
            });
        }
    }
    if snapshot.format_version > SNAPSHOT_FORMAT {
        return Err(SnapshotError::Format {
            set,
            detail: format!(
                "format {} is newer than {SNAPSHOT_FORMAT}",
                snapshot.format_version
            ),
        });
    }
    Ok(snapshot)
}

/// A record for tests: the given key, size and ETag, fixed bytes, type and metadata.
#[cfg(test)]
pub(crate) fn test_record(key: &str, size: u64, etag: &str) -> ObjectRecord {
    ObjectRecord {
        key: key.into(),
        size,
        etag: etag.into(),
        sha256: "ab".repeat(32),
        content_type: Some("text/plain".into()),
        metadata: BTreeMap::from([("k".into(), "v".into())]),
        location: crate::store::object_path(&"ab".repeat(32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_record as record;

    #[test]
    fn snapshots_round_trip_and_count() {
        let snap = Snapshot {
            format_version: SNAPSHOT_FORMAT,
            buckets: vec![BucketSnapshot {
                name: "registry".into(),
                objects: vec![record("a b+ü", 7, "e"), record("z", 0, "f")],
            }],
        };
        let json = serde_json::to_vec(&snap).unwrap();
        assert_eq!(serde_json::from_slice::<Snapshot>(&json).unwrap(), snap);
        assert_eq!(snap.totals(), (2, 7));
        assert!(snap.bucket("registry").is_some() && snap.bucket("db_wal").is_none());
    }
}
