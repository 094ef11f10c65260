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
/// the listing stops at the first of those and never walks the object store. Keys that sort
/// before the sets (an empty "folder" object, names starting with a space or `-`) are skipped.
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
            match place_of(rest) {
                Place::Set => {}
                Place::Before => return Ok::<bool, S3Error>(true),
                Place::After => return Ok(false),
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

/// Where a key of the job's folder (its name below the folder) sorts against the sets.
#[derive(Debug, PartialEq)]
enum Place {
    /// A set's key: run ids begin with a digit, markers with `.`.
    Set,
    /// None of ours, sorting before the sets (a "folder" object made by a console, a name
    /// starting with a space or `-`): skipped.
    Before,
    /// Past every set: the letter-named entries (the index, the gateway's objects).
    After,
}

fn place_of(name: &str) -> Place {
    match name.bytes().next() {
        Some(b'.' | b'0'..=b'9') => Place::Set,
        Some(c) if c > b'9' => Place::After,
        _ => Place::Before,
    }
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
    fn keys_before_the_sets_are_skipped_and_letters_end_the_listing() {
        for name in ["", " x", "-", "!", "/", "+plus"] {
            assert_eq!(place_of(name), Place::Before, "{name:?}");
        }
        for name in ["20261202T000000Z-abcdef/manifest.json", ".marker", "9"] {
            assert_eq!(place_of(name), Place::Set, "{name:?}");
        }
        for name in ["index.json.zst", "objects/ab/cd", "A", "~"] {
            assert_eq!(place_of(name), Place::After, "{name:?}");
        }
    }

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
