//! Pure rules of the S3 destination: object keys, part sizes, and who counts as a dead writer.
//!
//! Layout (identical to the local destination):
//! `<prefix>/<job>/<run-id>/<artifact>`, `<prefix>/<job>/<run-id>/manifest.json` written last,
//! and `<prefix>/<job>/.<run-id>.in-progress`, the writer's marker, while the set is written.

use crate::store::{JobKind, RunId, SetRef, MANIFEST_NAME};

mod writer;

pub use writer::{
    loose_upload_is_dead, writer_state, FoundMarker, Vantage, Writer, WriterMarker,
    HEARTBEAT_EVERY, STALE_AFTER,
};

/// Size of the first parts of a multipart upload.
pub const BASE_PART_SIZE: usize = 8 << 20;
/// Parts never grow beyond this, which bounds memory (about three parts per artifact).
pub const MAX_PART_SIZE: usize = 64 << 20;
/// S3 accepts at most this many parts per upload.
pub const MAX_PARTS: i32 = 10_000;

const IN_PROGRESS_SUFFIX: &str = ".in-progress";

/// Builds and parses the object keys under one `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `""` or `"prefix/"`.
    root: String,
}

impl Keys {
    /// Keys under `prefix` (no leading or trailing slash; may be empty).
    pub fn new(prefix: &str) -> Self {
        let prefix = prefix.trim_matches('/');
        Self {
            root: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        }
    }

    /// Everything of ours starts with this (`""` or `"prefix/"`).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `<prefix>/<job>/`, listed with delimiter `/` to find the sets of a job.
    pub fn job_prefix(&self, job: JobKind) -> String {
        format!("{}{job}/", self.root)
    }

    /// `<prefix>/<job>/<run-id>/`, the folder of a set.
    pub fn set_prefix(&self, set: &SetRef) -> String {
        format!("{}{}/", self.root, set.dir())
    }

    /// The key of an artifact (or of the manifest) of a set.
    pub fn artifact(&self, set: &SetRef, name: &str) -> String {
        format!("{}{name}", self.set_prefix(set))
    }

    pub fn manifest(&self, set: &SetRef) -> String {
        self.artifact(set, MANIFEST_NAME)
    }

    /// `<prefix>/<job>/.<run-id>.in-progress`.
    pub fn marker(&self, set: &SetRef) -> String {
        format!(
            "{}.{}{IN_PROGRESS_SUFFIX}",
            self.job_prefix(set.job),
            set.run_id
        )
    }

    /// The set a common prefix `<prefix>/<job>/<run-id>/` of a job listing names.
    pub fn set_of_folder(&self, job: JobKind, folder: &str) -> Option<SetRef> {
        let run = folder
            .strip_prefix(&self.job_prefix(job))?
            .strip_suffix('/')?;
        Some(SetRef {
            job,
            run_id: run.parse().ok()?,
        })
    }

    /// The set whose marker `key` is, if it is one.
    pub fn set_of_marker(&self, job: JobKind, key: &str) -> Option<SetRef> {
        let run = key
            .strip_prefix(&self.job_prefix(job))?
            .strip_prefix('.')?
            .strip_suffix(IN_PROGRESS_SUFFIX)?;
        Some(SetRef {
            job,
            run_id: run.parse::<RunId>().ok()?,
        })
    }

    /// `<prefix>/gateway/objects/ab/abcdef...`: a gateway object by its sha256.
    pub fn object(&self, sha256: &str) -> String {
        format!("{}{}", self.root, crate::store::object_path(sha256))
    }

    /// Whether `key` is an object's address `<prefix>/gateway/objects/ab/<sha256>`.
    pub fn is_object(&self, key: &str) -> bool {
        key.strip_prefix(&self.root)
            .and_then(|k| k.strip_prefix(crate::store::OBJECTS_DIR))
            .and_then(|k| k.strip_prefix('/'))
            .and_then(|k| k.split_once('/'))
            .is_some_and(|(fanout, name)| {
                crate::store::is_object_name(name) && name.starts_with(fanout) && fanout.len() == 2
            })
    }

    /// `<prefix>/gateway/objects/.staging/`, where objects wait for their address.
    pub fn staging_root(&self) -> String {
        format!("{}{}/", self.root, crate::store::STAGING_DIR)
    }

    /// `<prefix>/gateway/objects/.staging/<run-id>/<name>`: a staged object of a gateway run.
    pub fn staged(&self, set: &SetRef, name: &str) -> String {
        format!("{}{}/{name}", self.staging_root(), set.run_id)
    }

    /// The gateway set whose staged object (or staging folder) `key` is, if it is one.
    pub fn set_of_staged(&self, key: &str) -> Option<SetRef> {
        let run = key.strip_prefix(&self.staging_root())?.split('/').next()?;
        Some(SetRef {
            job: JobKind::Gateway,
            run_id: run.parse().ok()?,
        })
    }

    /// The set an object key `<prefix>/<job>/<run-id>/<name>` belongs to, if any.
    pub fn set_of_key(&self, key: &str) -> Option<SetRef> {
        let mut parts = key.strip_prefix(&self.root)?.splitn(3, '/');
        let (job, run, name) = (parts.next()?, parts.next()?, parts.next()?);
        if name.is_empty() {
            return None;
        }
        Some(SetRef {
            job: job.parse().ok()?,
            run_id: run.parse().ok()?,
        })
    }
}

/// The size of part `part_number` (1-based) of a multipart upload: 8 MiB for the first 1,000
/// parts, then doubling every 1,000 parts up to 64 MiB, so that an upload reaches about 500 GB
/// within the 10,000 parts S3 allows while small artifacts keep small buffers.
pub fn part_size(part_number: i32) -> usize {
    let tier = (part_number.max(1) - 1) / 1000;
    (BASE_PART_SIZE << tier.min(3)).min(MAX_PART_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> SetRef {
        "volume/20261125T034500Z-3fa9c1".parse().unwrap()
    }

    #[test]
    fn keys_follow_the_local_layout() {
        let k = Keys::new("cluster-a/");
        assert_eq!(k.job_prefix(JobKind::Volume), "cluster-a/volume/");
        assert_eq!(
            k.artifact(&set(), "store.tar.zst"),
            "cluster-a/volume/20261125T034500Z-3fa9c1/store.tar.zst"
        );
        assert_eq!(
            k.manifest(&set()),
            "cluster-a/volume/20261125T034500Z-3fa9c1/manifest.json"
        );
        assert_eq!(
            k.marker(&set()),
            "cluster-a/volume/.20261125T034500Z-3fa9c1.in-progress"
        );
        let bare = Keys::new("");
        assert_eq!(bare.root(), "");
        assert_eq!(bare.set_prefix(&set()), "volume/20261125T034500Z-3fa9c1/");
    }

    #[test]
    fn keys_parse_back_to_their_set() {
        let k = Keys::new("p/q");
        assert_eq!(
            k.set_of_folder(JobKind::Volume, &k.set_prefix(&set())),
            Some(set())
        );
        assert_eq!(
            k.set_of_marker(JobKind::Volume, &k.marker(&set())),
            Some(set())
        );
        assert_eq!(
            k.set_of_key(&k.artifact(&set(), "store.tar.zst")),
            Some(set())
        );
        assert_eq!(k.set_of_key("p/q/gateway/objects/ab/cd"), None);
        let gw: SetRef = "gateway/20261125T034500Z-3fa9c1".parse().unwrap();
        assert_eq!(k.object("abcd"), "p/q/gateway/objects/ab/abcd");
        let sha = "ab".repeat(32);
        assert!(k.is_object(&k.object(&sha)));
        assert!(!k.is_object(&k.object("abcd")));
        assert!(!k.is_object(&k.staged(&gw, "7")));
        assert!(!k.is_object(&format!("p/q/gateway/objects/cd/{sha}")));
        assert!(!k.is_object(&Keys::new("other").object(&sha)));
        assert_eq!(k.set_of_staged(&k.staged(&gw, "7")), Some(gw.clone()));
        assert_eq!(k.set_of_staged("p/q/gateway/objects/.staging/junk/7"), None);
        assert_eq!(
            k.set_of_folder(JobKind::Gateway, "p/q/gateway/objects/"),
            None
        );
        assert_eq!(k.set_of_key("p/q/volume/20261125T034500Z-3fa9c1/"), None);
        assert_eq!(k.set_of_key("other/volume/20261125T034500Z-3fa9c1/x"), None);
        assert_eq!(k.set_of_folder(JobKind::Volume, "p/q/volume/junk/"), None);
        assert_eq!(k.set_of_marker(JobKind::Volume, "p/q/volume/x.txt"), None);
    }

    #[test]
    fn parts_grow_in_tiers_and_stay_bounded() {
        assert_eq!(part_size(1), 8 << 20);
        assert_eq!(part_size(1000), 8 << 20);
        assert_eq!(part_size(1001), 16 << 20);
        assert_eq!(part_size(3001), 64 << 20);
        assert_eq!(part_size(MAX_PARTS), MAX_PART_SIZE);
        let total: u64 = (1..=MAX_PARTS).map(|n| part_size(n) as u64).sum();
        assert!(total > 500 * 1000 * 1000 * 1000, "{total}");
    }
}
