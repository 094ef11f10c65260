//! The S3 destination's side of the catalog: listing which sets have a manifest from a flat
//! listing of the job's keys (about a thousand keys per request, no manifest read), and the
//! job's index object, replaced by a single PutObject (atomic in S3).

use super::bucket::Bucket;
use super::layout::Keys;
use super::S3Error;
use crate::store::{JobKind, ListedManifest, INDEX_NAME};

/// Sets of `job` whose manifest key is listed, with its size and etag.
///
/// Run ids begin with a digit and markers with `.`, so every key of a set sorts before the
/// letter-named entries of the job's folder (`index.json.zst`, the gateway's `objects/`):
/// the listing stops at the first of those and never walks the object store.
pub async fn list_manifests(
    bucket: &Bucket,
    keys: &Keys,
    job: JobKind,
) -> Result<Vec<ListedManifest>, S3Error> {
    let prefix = keys.job_prefix(job);
    let mut listed = Vec::new();
    bucket
        .for_each_key_while(&prefix, |key| {
            let rest = key.key.strip_prefix(&prefix).unwrap_or_default();
            if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
                return Ok::<bool, S3Error>(false);
            }
            if let Some(set) = keys.set_of_key(&key.key) {
                if set.job == job && key.key == keys.manifest(&set) {
                    listed.push(ListedManifest {
                        set,
                        size: key.size,
                        version: key.etag,
                    });
                }
            }
            Ok(true)
        })
        .await?;
    Ok(listed)
}

/// `<prefix>/<job>/index.json.zst`.
pub fn index_key(keys: &Keys, job: JobKind) -> String {
    format!("{}{INDEX_NAME}", keys.job_prefix(job))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MANIFEST_NAME;

    #[test]
    fn the_index_sorts_after_every_set_and_before_the_objects() {
        let keys = Keys::new("p");
        let index = index_key(&keys, JobKind::Gateway);
        assert_eq!(index, "p/gateway/index.json.zst");
        let set = "gateway/20991231T235959Z-ffffff".parse().unwrap();
        assert!(keys.manifest(&set) < index);
        assert!(index < keys.object("00"));
        assert!(keys.marker(&set) < keys.manifest(&set));
        assert_eq!(keys.set_of_key(&index), None);
        assert!(MANIFEST_NAME.starts_with(char::is_alphabetic));
    }
}
