//! The mark of the object store's mark and sweep: the address of every object a gateway
//! snapshot references, read by streaming the snapshot (no snapshot is held in memory; the
//! mark set is bounded by the number of distinct objects).

use super::snapshot::SnapshotError;
use super::stream::{visit_snapshot, RecordVisitor};
use crate::store::{sha256_bytes, Destination, Manifest};
use serde::Deserialize;
use std::collections::HashSet;
use std::io::Read;

/// Object addresses (sha256 bytes) referenced by the snapshots read so far.
pub type MarkSet = HashSet<[u8; 32]>;

/// Adds every object the snapshot of the complete gateway set `manifest` references to
/// `marks`; returns the number of object records read. Any error means the mark is incomplete.
pub fn mark_snapshot(
    dest: &dyn Destination,
    manifest: &Manifest,
    marks: &mut MarkSet,
) -> Result<u64, SnapshotError> {
    let (reader, set) = super::snapshot::open_snapshot(dest, manifest)?;
    mark_records(reader, marks).map_err(|e| SnapshotError::Format {
        set,
        detail: e.to_string(),
    })
}

/// An object record as far as the mark cares.
#[derive(Deserialize)]
struct RecordAddress {
    sha256: String,
}

/// Marks the address of every record of the snapshot JSON `json`; returns how many were read.
fn mark_records(json: impl Read, marks: &mut MarkSet) -> Result<u64, serde_json::Error> {
    let mut records = 0;
    visit_snapshot(
        json,
        RecordVisitor {
            wants: &|_: &str| true,
            record: &mut |_: &str, record: RecordAddress| {
                let address = sha256_bytes(&record.sha256)
                    .ok_or_else(|| format!("{:?} is not a sha256", record.sha256))?;
                marks.insert(address);
                records += 1;
                Ok(())
            },
            bucket_done: &mut |_: &str| Ok(()),
        },
    )?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::gateway::snapshot::SNAPSHOT_FORMAT;
    use crate::jobs::gateway::{BucketSnapshot, ObjectRecord, Snapshot};
    use std::collections::BTreeMap;

    fn record(key: &str, sha: &str) -> ObjectRecord {
        ObjectRecord {
            key: key.into(),
            size: 1,
            etag: "e".into(),
            sha256: sha.into(),
            content_type: None,
            metadata: BTreeMap::from([("sha256".into(), "not this".into())]),
            location: crate::store::object_path(sha),
        }
    }

    fn marks_of(json: &[u8]) -> Result<(MarkSet, u64), serde_json::Error> {
        let mut marks = MarkSet::new();
        let records = mark_records(json, &mut marks)?;
        Ok((marks, records))
    }

    #[test]
    fn every_record_of_every_bucket_is_marked_once() {
        let (a, b) = ("aa".repeat(32), "0b".repeat(32));
        let snapshot = Snapshot {
            format_version: SNAPSHOT_FORMAT,
            buckets: vec![
                BucketSnapshot {
                    name: "db_wal".into(),
                    objects: vec![record("x", &a), record("y", &b)],
                },
                BucketSnapshot {
                    name: "registry".into(),
                    objects: vec![record("z", &a)],
                },
                BucketSnapshot {
                    name: "empty".into(),
                    objects: vec![],
                },
            ],
        };
        let json = serde_json::to_vec(&snapshot).unwrap();
        let (marks, records) = marks_of(&json).unwrap();
        assert_eq!(records, 3);
        assert_eq!(marks, MarkSet::from([[0xaa; 32], [0x0b; 32]]));
    }

    #[test]
    fn a_snapshot_that_cannot_be_fully_read_is_an_error() {
        let good = format!(
            r#"{{"format_version":1,"buckets":[{{"name":"b","objects":[{{"sha256":"{}"}}]}}]}}"#,
            "cd".repeat(32)
        );
        assert!(marks_of(good.as_bytes()).is_ok());
        for bad in [
            good[..good.len() - 3].to_string(),
            good.replace("cdcd", "zzzz"),
            good.replace("\"objects\"", "\"things\""),
            r#"{"format_version":1}"#.to_string(),
            r#"{"buckets":[]}"#.to_string(),
            format!("{good} trailing"),
        ] {
            assert!(marks_of(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
