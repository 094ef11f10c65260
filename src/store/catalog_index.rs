//! The per-job catalog index (`<destination>/<job>/index.json.zst`): a cache of the manifests
//! of a job's complete sets, so that `list`, `latest`, retention and the daemon find sets
//! without reading every manifest. Pure: the format and the merge of an index with a listing.
//!
//! The manifests stay the only source of truth. A listing of the manifests present says which
//! sets exist; the index only saves reading them. An entry is used only while the listing
//! shows its manifest with the same size and version tag (S3 etag, local mtime); a set the
//! index names whose manifest is gone is dropped; a listed manifest the index lacks, or whose
//! size or tag changed, is read. So a missing, stale, damaged or raced index costs reads,
//! never a wrong answer.

use super::{JobKind, Manifest, SetRef};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The most an index may decode to (about 100,000 sets); a bigger one is treated as damaged.
pub const MAX_INDEX_JSON: u64 = 256 << 20;
/// The file name of the index in a job's folder. Not a run id, so never taken for a set.
pub const INDEX_NAME: &str = "index.json.zst";

/// Version of the index format written by this build; any other version is rebuilt.
pub const INDEX_FORMAT: u32 = 1;

/// zstd level of the index (it is small and rewritten often).
const INDEX_ZSTD_LEVEL: i32 = 3;

/// A manifest present at the destination, as a listing shows it (without reading it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedManifest {
    pub set: SetRef,
    /// Size of the manifest in bytes.
    pub size: u64,
    /// What changes when the manifest is rewritten: the S3 etag, the local mtime.
    pub version: Option<String>,
}

/// One complete set in the index: the manifest as read, and how it was listed then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub manifest_size: u64,
    #[serde(default)]
    pub manifest_version: Option<String>,
    pub manifest: Manifest,
}

impl IndexEntry {
    /// Whether this entry describes the manifest `listed` shows, unchanged.
    fn matches(&self, listed: &ListedManifest) -> bool {
        self.manifest_size == listed.size && self.manifest_version == listed.version
    }
}

/// The whole index of one job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogIndex {
    pub format_version: u32,
    pub job: JobKind,
    /// Oldest first.
    pub sets: Vec<IndexEntry>,
}

impl CatalogIndex {
    /// An index of `job` holding `sets` (sorted oldest first here).
    pub fn new(job: JobKind, mut sets: Vec<IndexEntry>) -> Self {
        sets.sort_by(|a, b| a.manifest.run_id.cmp(&b.manifest.run_id));
        Self {
            format_version: INDEX_FORMAT,
            job,
            sets,
        }
    }

    /// zstd-compressed JSON.
    pub fn encode(&self) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("an index always serializes");
        zstd::encode_all(json.as_slice(), INDEX_ZSTD_LEVEL).expect("zstd encodes in memory")
    }

    /// Parses an index of `job`; the error says why it cannot be used (it is then rebuilt). A
    /// (forged) index that would decode to more than [`MAX_INDEX_JSON`] is refused unread.
    pub fn decode(bytes: &[u8], job: JobKind) -> Result<Self, String> {
        use std::io::Read;
        let mut json = Vec::new();
        zstd::stream::read::Decoder::new(bytes)
            .and_then(|d| d.take(MAX_INDEX_JSON + 1).read_to_end(&mut json))
            .map_err(|e| format!("not zstd data: {e}"))?;
        if json.len() as u64 > MAX_INDEX_JSON {
            return Err(format!(
                "it decodes to more than {} MiB",
                MAX_INDEX_JSON >> 20
            ));
        }
        let index: CatalogIndex =
            serde_json::from_slice(&json).map_err(|e| format!("not an index: {e}"))?;
        if index.format_version != INDEX_FORMAT {
            return Err(format!(
                "index format {} is not {INDEX_FORMAT}",
                index.format_version
            ));
        }
        if index.job != job || index.sets.iter().any(|e| e.manifest.job != job) {
            return Err(format!("index names sets of another job than {job}"));
        }
        Ok(index)
    }
}

/// What to do to answer a listing from an index.
#[derive(Debug, Default, PartialEq)]
pub struct MergePlan {
    /// Entries whose manifest is listed unchanged: used as they are.
    pub cached: Vec<IndexEntry>,
    /// Manifests listed that the index lacks or describes differently: to be read.
    pub to_read: Vec<ListedManifest>,
    /// Sets the index names whose manifest is not listed: never listed, dropped.
    pub dropped: Vec<SetRef>,
}

/// Compares the index entries with the manifests listed (the truth of what exists).
pub fn merge(index: &[IndexEntry], listed: &[ListedManifest]) -> MergePlan {
    let mut by_set: HashMap<SetRef, &IndexEntry> =
        index.iter().map(|e| (e.manifest.set_ref(), e)).collect();
    let mut plan = MergePlan::default();
    for manifest in listed {
        match by_set.remove(&manifest.set) {
            Some(entry) if entry.matches(manifest) => plan.cached.push(entry.clone()),
            _ => plan.to_read.push(manifest.clone()),
        }
    }
    plan.dropped = by_set.into_keys().collect();
    plan.dropped.sort();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ToolInfo, FORMAT_VERSION};

    fn set(run: &str) -> SetRef {
        format!("etcd/20261125T0345{run}Z-abcdef").parse().unwrap()
    }

    fn entry(run: &str, size: u64) -> IndexEntry {
        let set = set(run);
        IndexEntry {
            manifest_size: size,
            manifest_version: Some("v1".into()),
            manifest: Manifest {
                format_version: FORMAT_VERSION,
                job: set.job,
                run_id: set.run_id.clone(),
                started_at: set.run_id.started(),
                finished_at: set.run_id.started(),
                host: "node-1".into(),
                tool: ToolInfo::this_build(),
                source: serde_json::json!({"kind": "etcd"}),
                artifacts: Vec::new(),
                warnings: Vec::new(),
                stats: Default::default(),
            },
        }
    }

    fn listed(run: &str, size: u64, version: &str) -> ListedManifest {
        ListedManifest {
            set: set(run),
            size,
            version: Some(version.into()),
        }
    }

    #[test]
    fn an_up_to_date_index_needs_no_read() {
        let index = [entry("00", 10), entry("01", 11)];
        let plan = merge(&index, &[listed("00", 10, "v1"), listed("01", 11, "v1")]);
        assert_eq!(plan.cached, index.to_vec());
        assert!(plan.to_read.is_empty() && plan.dropped.is_empty());
    }

    #[test]
    fn no_index_reads_every_listed_manifest() {
        let all = [listed("00", 10, "v1"), listed("01", 11, "v1")];
        let plan = merge(&[], &all);
        assert_eq!(plan.to_read, all.to_vec());
        assert!(plan.cached.is_empty() && plan.dropped.is_empty());
    }

    #[test]
    fn sets_added_behind_the_index_back_are_read() {
        let plan = merge(
            &[entry("00", 10)],
            &[listed("00", 10, "v1"), listed("02", 9, "v1")],
        );
        assert_eq!(plan.cached.len(), 1);
        assert_eq!(plan.to_read, vec![listed("02", 9, "v1")]);
    }

    #[test]
    fn a_set_whose_manifest_is_gone_is_dropped_even_if_the_index_names_it() {
        let plan = merge(
            &[entry("00", 10), entry("01", 11)],
            &[listed("01", 11, "v1")],
        );
        assert_eq!(plan.dropped, vec![set("00")]);
        assert_eq!(plan.cached, vec![entry("01", 11)]);
        assert!(plan.to_read.is_empty());
    }

    #[test]
    fn a_rewritten_manifest_is_read_again() {
        let index = [entry("00", 10), entry("01", 11)];
        let plan = merge(&index, &[listed("00", 12, "v1"), listed("01", 11, "v2")]);
        assert!(plan.cached.is_empty() && plan.dropped.is_empty());
        assert_eq!(plan.to_read.len(), 2);
    }

    #[test]
    fn the_index_round_trips_and_refuses_damage_and_other_jobs() {
        let index = CatalogIndex::new(JobKind::Etcd, vec![entry("01", 11), entry("00", 10)]);
        assert_eq!(index.sets[0], entry("00", 10), "sorted oldest first");
        let bytes = index.encode();
        assert_eq!(CatalogIndex::decode(&bytes, JobKind::Etcd).unwrap(), index);
        assert!(CatalogIndex::decode(&bytes, JobKind::Volume)
            .unwrap_err()
            .contains("another job"));
        assert!(CatalogIndex::decode(&bytes[..bytes.len() / 2], JobKind::Etcd).is_err());
        assert!(CatalogIndex::decode(b"{not json", JobKind::Etcd)
            .unwrap_err()
            .contains("zstd"));
        let mut future = index.clone();
        future.format_version = INDEX_FORMAT + 1;
        assert!(CatalogIndex::decode(&future.encode(), JobKind::Etcd)
            .unwrap_err()
            .contains("format"));
    }
}
