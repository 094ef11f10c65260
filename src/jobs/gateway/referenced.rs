//! The mark of the object store's mark and sweep: the address of every object a gateway
//! snapshot references, read by streaming the snapshot (no snapshot is held in memory; the
//! mark set is bounded by the number of distinct objects).

use super::snapshot::{SnapshotError, SNAPSHOT_FORMAT};
use crate::store::{sha256_bytes, Destination, Manifest};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::HashSet;
use std::fmt;

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
    let format = |detail: String| SnapshotError::Format {
        set: set.clone(),
        detail,
    };
    let mut json = serde_json::Deserializer::from_reader(reader);
    let mut records = 0;
    let version = SnapshotSeed {
        marks,
        records: &mut records,
    }
    .deserialize(&mut json)
    .map_err(|e| format(e.to_string()))?;
    json.end().map_err(|e| format(e.to_string()))?;
    if version > SNAPSHOT_FORMAT {
        return Err(format(format!(
            "format {version} is newer than {SNAPSHOT_FORMAT}"
        )));
    }
    Ok(records)
}

/// The parts of a snapshot the mark needs, visited as they stream by.
struct SnapshotSeed<'a> {
    marks: &'a mut MarkSet,
    records: &'a mut u64,
}

impl<'de> DeserializeSeed<'de> for SnapshotSeed<'_> {
    /// The snapshot's format version.
    type Value = u32;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SnapshotSeed<'_> {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a gateway snapshot")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u32, A::Error> {
        let (mut version, mut buckets) = (None, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format_version" => version = Some(map.next_value()?),
                "buckets" => {
                    map.next_value_seed(Each {
                        marks: &mut *self.marks,
                        records: &mut *self.records,
                        item: Item::Bucket,
                    })?;
                    buckets = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !buckets {
            return Err(de::Error::missing_field("buckets"));
        }
        version.ok_or_else(|| de::Error::missing_field("format_version"))
    }
}

/// What a sequence holds: buckets, or the object records of one bucket.
#[derive(Clone, Copy)]
enum Item {
    Bucket,
    Record,
}

/// A sequence of buckets or records, each visited and dropped.
struct Each<'a> {
    marks: &'a mut MarkSet,
    records: &'a mut u64,
    item: Item,
}

/// An object record as far as the mark cares.
#[derive(Deserialize)]
struct RecordAddress {
    sha256: String,
}

impl<'de> DeserializeSeed<'de> for Each<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Each<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of buckets or object records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match self.item {
            Item::Bucket => {
                while seq
                    .next_element_seed(BucketSeed(&mut *self.marks, &mut *self.records))?
                    .is_some()
                {}
            }
            Item::Record => {
                while let Some(record) = seq.next_element::<RecordAddress>()? {
                    let address = sha256_bytes(&record.sha256).ok_or_else(|| {
                        de::Error::custom(format!("{:?} is not a sha256", record.sha256))
                    })?;
                    self.marks.insert(address);
                    *self.records += 1;
                }
            }
        }
        Ok(())
    }
}

/// One bucket: its `objects` are marked, the rest skipped.
struct BucketSeed<'a>(&'a mut MarkSet, &'a mut u64);

impl<'de> DeserializeSeed<'de> for BucketSeed<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BucketSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a bucket of a gateway snapshot")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut objects = false;
        while let Some(key) = map.next_key::<String>()? {
            if key == "objects" {
                map.next_value_seed(Each {
                    marks: &mut *self.0,
                    records: &mut *self.1,
                    item: Item::Record,
                })?;
                objects = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if objects {
            Ok(())
        } else {
            Err(de::Error::missing_field("objects"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    fn marks_of(json: &[u8]) -> Result<(u32, MarkSet, u64), serde_json::Error> {
        let mut marks = MarkSet::new();
        let mut records = 0;
        let mut de = serde_json::Deserializer::from_slice(json);
        let version = SnapshotSeed {
            marks: &mut marks,
            records: &mut records,
        }
        .deserialize(&mut de)?;
        de.end()?;
        Ok((version, marks, records))
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
        let (version, marks, records) = marks_of(&json).unwrap();
        assert_eq!((version, records), (SNAPSHOT_FORMAT, 3));
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
