//! Writing a snapshot artifact as a stream: buckets and records go out as the run decides
//! them, in the very JSON layout `serde_json` gives [`Snapshot`](super::Snapshot), so readers
//! cannot tell the two apart and no snapshot is held in memory whole.

use super::snapshot::{ObjectRecord, SNAPSHOT_FORMAT};
use std::io::{self, Write};

/// A snapshot being written: `begin_bucket`, its `record`s, the next bucket..., `finish`.
pub struct SnapshotWriter<W: Write> {
    out: W,
    /// Buckets begun so far.
    buckets: usize,
    /// Records of the current bucket so far.
    records: usize,
}

impl<W: Write> SnapshotWriter<W> {
    /// Writes the head of the document.
    pub fn new(mut out: W) -> io::Result<Self> {
        write!(out, r#"{{"format_version":{SNAPSHOT_FORMAT},"buckets":["#)?;
        Ok(Self {
            out,
            buckets: 0,
            records: 0,
        })
    }

    /// Ends the current bucket, if any, and starts the one named `name`.
    pub fn begin_bucket(&mut self, name: &str) -> io::Result<()> {
        if self.buckets > 0 {
            self.out.write_all(b"]},")?;
        }
        self.out.write_all(br#"{"name":"#)?;
        serde_json::to_writer(&mut self.out, name)?;
        self.out.write_all(br#","objects":["#)?;
        self.buckets += 1;
        self.records = 0;
        Ok(())
    }

    /// Adds a record to the current bucket.
    pub fn record(&mut self, record: &ObjectRecord) -> io::Result<()> {
        assert!(self.buckets > 0, "a record is written inside a bucket");
        if self.records > 0 {
            self.out.write_all(b",")?;
        }
        serde_json::to_writer(&mut self.out, record)?;
        self.records += 1;
        Ok(())
    }

    /// Closes the document; returns the writer for the caller to finish.
    pub fn finish(mut self) -> io::Result<W> {
        if self.buckets > 0 {
            self.out.write_all(b"]}")?;
        }
        self.out.write_all(b"]}")?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::gateway::{BucketSnapshot, Snapshot};
    use std::collections::BTreeMap;

    fn record(key: &str, metadata: &[(&str, &str)]) -> ObjectRecord {
        ObjectRecord {
            key: key.into(),
            size: 3,
            etag: "e\"q".into(),
            sha256: "ab".repeat(32),
            content_type: (!metadata.is_empty()).then(|| "text/plain".into()),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            location: crate::store::object_path(&"ab".repeat(32)),
        }
    }

    fn streamed(snapshot: &Snapshot) -> Vec<u8> {
        let mut writer = SnapshotWriter::new(Vec::new()).unwrap();
        for bucket in &snapshot.buckets {
            writer.begin_bucket(&bucket.name).unwrap();
            for r in &bucket.objects {
                writer.record(r).unwrap();
            }
        }
        writer.finish().unwrap()
    }

    #[test]
    fn the_stream_is_byte_for_byte_what_serde_writes() {
        let cases = [
            vec![],
            vec![BucketSnapshot {
                name: "empty".into(),
                objects: vec![],
            }],
            vec![
                BucketSnapshot {
                    name: "db_wal \"quoted\"".into(),
                    objects: vec![record("a", &[]), record("b ü\n", &[("k", "v")])],
                },
                BucketSnapshot {
                    name: "registry".into(),
                    objects: vec![],
                },
                BucketSnapshot {
                    name: "last".into(),
                    objects: vec![record("z", &[("x", "y"), ("a", "b")])],
                },
            ],
        ];
        for buckets in cases {
            let snapshot = Snapshot {
                format_version: SNAPSHOT_FORMAT,
                buckets,
            };
            assert_eq!(
                String::from_utf8(streamed(&snapshot)).unwrap(),
                serde_json::to_string(&snapshot).unwrap()
            );
        }
    }
}
