//! What a gateway restore does to one bucket, decided from the snapshot and the bucket's
//! listing (pure): upload what is missing, leave what is identical alone, and name what is
//! there with other content (overwritten only with `--force`). Objects at the gateway that
//! the snapshot does not hold are never touched.

use crate::gateway::ListedObject;
use crate::jobs::gateway::{BucketSnapshot, ObjectRecord};
use std::collections::HashMap;

/// How one object of the snapshot compares with the gateway's object of the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compared {
    /// Not at the gateway.
    Missing,
    /// Same size and ETag.
    Identical,
    /// Other size, or another single-part ETag (an MD5 of other bytes).
    Different,
    /// Same size, but the ETags come from uploads of different shapes (one is a multipart
    /// ETag, as a restore of a big object makes): only the bytes can tell.
    Unsure,
}

/// Compares a snapshot record with what the gateway lists under its key.
pub fn compare(record: &ObjectRecord, there: Option<&ListedObject>) -> Compared {
    match there {
        None => Compared::Missing,
        Some(listed) if listed.size != record.size => Compared::Different,
        Some(listed) if listed.etag == record.etag => Compared::Identical,
        Some(listed) if is_multipart(&listed.etag) || is_multipart(&record.etag) => {
            Compared::Unsure
        }
        Some(_) => Compared::Different,
    }
}

/// A multipart upload's ETag is `md5-of-part-md5s-PARTS`, not an MD5 of the bytes.
fn is_multipart(etag: &str) -> bool {
    etag.contains('-')
}

/// The plan for one bucket.
#[derive(Debug, Default)]
pub struct BucketPlan<'s> {
    pub name: String,
    /// The bucket exists at the gateway (otherwise the restore creates it).
    pub exists: bool,
    /// Not at the gateway: uploaded.
    pub missing: Vec<&'s ObjectRecord>,
    /// Already there with the same content: left alone.
    pub identical: Vec<&'s ObjectRecord>,
    /// There with other content: refused, or overwritten with `--force`.
    pub different: Vec<&'s ObjectRecord>,
    /// To be compared by content (see [`Compared::Unsure`]).
    pub unsure: Vec<&'s ObjectRecord>,
    /// At the gateway but not in the snapshot: left alone.
    pub extra: u64,
}

impl BucketPlan<'_> {
    /// Objects and bytes the snapshot holds for this bucket.
    pub fn totals(&self) -> (u64, u64) {
        let records = (self.missing.iter())
            .chain(&self.identical)
            .chain(&self.different)
            .chain(&self.unsure);
        records.fold((0, 0), |(n, bytes), r| (n + 1, bytes + r.size))
    }
}

/// Compares every object of `bucket` with `listing` (`None`: the bucket does not exist).
pub fn plan_bucket<'s>(
    bucket: &'s BucketSnapshot,
    listing: Option<&[ListedObject]>,
) -> BucketPlan<'s> {
    let listed: HashMap<&str, &ListedObject> = listing
        .unwrap_or_default()
        .iter()
        .map(|l| (l.key.as_str(), l))
        .collect();
    let mut plan = BucketPlan {
        name: bucket.name.clone(),
        exists: listing.is_some(),
        ..Default::default()
    };
    let mut matched = 0u64;
    for record in &bucket.objects {
        let there = listed.get(record.key.as_str()).copied();
        matched += u64::from(there.is_some());
        match compare(record, there) {
            Compared::Missing => plan.missing.push(record),
            Compared::Identical => plan.identical.push(record),
            Compared::Different => plan.different.push(record),
            Compared::Unsure => plan.unsure.push(record),
        }
    }
    // saturating: a forged snapshot may name a key twice
    plan.extra = (listed.len() as u64).saturating_sub(matched);
    plan
}

/// Up to `n` keys of `records`, for a message.
pub fn some_keys(records: &[&ObjectRecord], n: usize) -> String {
    let mut named: Vec<&str> = records.iter().take(n).map(|r| r.key.as_str()).collect();
    if records.len() > n {
        named.push("...");
    }
    named.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, size: u64, etag: &str) -> ObjectRecord {
        ObjectRecord {
            key: key.into(),
            size,
            etag: etag.into(),
            sha256: "0".repeat(64),
            content_type: None,
            metadata: Default::default(),
            location: String::new(),
        }
    }

    fn listed(key: &str, size: u64, etag: &str) -> ListedObject {
        ListedObject {
            key: key.into(),
            size,
            etag: etag.into(),
        }
    }

    #[test]
    fn each_object_is_missing_identical_different_or_compared_by_content() {
        let bucket = BucketSnapshot {
            name: "registry".into(),
            objects: vec![
                record("a", 1, "e1"),
                record("b", 2, "e2"),
                record("c", 3, "e3"),
                record("d", 4, "e4"),
                record("e", 6 << 20, "abc"),
            ],
        };
        let there = [
            listed("b", 2, "e2"),
            listed("c", 3, "other"),
            listed("d", 5, "e4"),
            listed("e", 6 << 20, "def-2"),
            listed("z", 9, "ez"),
        ];
        let plan = plan_bucket(&bucket, Some(&there));
        assert!(plan.exists);
        let keys = |v: &[&ObjectRecord]| v.iter().map(|r| r.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(&plan.missing), ["a"]);
        assert_eq!(keys(&plan.identical), ["b"]);
        assert_eq!(keys(&plan.different), ["c", "d"]);
        assert_eq!(keys(&plan.unsure), ["e"]);
        assert_eq!(plan.extra, 1, "z is left alone");
        assert_eq!(plan.totals(), (5, 1 + 2 + 3 + 4 + (6 << 20)));
        assert_eq!(some_keys(&plan.different, 1), "c, ...");
    }

    #[test]
    fn a_missing_bucket_means_every_object_is_missing() {
        let bucket = BucketSnapshot {
            name: "db_wal".into(),
            objects: vec![record("a", 1, "e1"), record("b", 2, "e2")],
        };
        let plan = plan_bucket(&bucket, None);
        assert!(!plan.exists);
        assert_eq!(plan.missing.len(), 2);
        assert_eq!((plan.identical.len(), plan.extra), (0, 0));
    }
}
