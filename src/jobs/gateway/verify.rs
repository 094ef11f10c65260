//! Verify of a gateway snapshot beyond its artifact: every object it references is in the
//! object store with its size, and with `--read-data` re-hashed.

use super::read_snapshot;
use crate::io_util::HashingReader;
use crate::jobs::verify::{ArtifactCheck, VerifyError};
use crate::store::{Destination, Manifest, ObjectStore, StoreError};
use crate::util::parallel_map;
use std::collections::BTreeMap;

/// Problems listed per check before the rest are only counted.
const LISTED_PROBLEMS: usize = 20;

/// Checks the objects a gateway snapshot references (each distinct sha256 once, in parallel).
pub fn verify_gateway_objects(
    dest: &dyn Destination,
    manifest: &Manifest,
    read_data: bool,
) -> Result<ArtifactCheck, VerifyError> {
    let snapshot = read_snapshot(dest, manifest)?;
    let mut check = ArtifactCheck {
        name: "objects".into(),
        size: 0,
        problems: Vec::new(),
    };
    let Some(store) = dest.objects() else {
        check
            .problems
            .push("the destination has no object store for gateway snapshots".into());
        return Ok(check);
    };
    let mut unique: BTreeMap<&str, (u64, String)> = BTreeMap::new();
    for bucket in &snapshot.buckets {
        for o in &bucket.objects {
            unique
                .entry(&o.sha256)
                .or_insert_with(|| (o.size, format!("{}/{}", bucket.name, o.key)));
        }
    }
    let items: Vec<_> = unique.into_iter().collect();
    let results = parallel_map(items, 16, |(sha256, (size, name))| {
        check_object(store, sha256, size, read_data).map(|p| p.map(|p| format!("{name}: {p}")))
    });
    let mut problems = Vec::new();
    for result in results {
        match result {
            Ok(Some(problem)) => problems.push(problem),
            Ok(None) => {}
            Err(e) => return Err(e.into()),
        }
    }
    check.size = snapshot.totals().1;
    if problems.len() > LISTED_PROBLEMS {
        let more = problems.len() - LISTED_PROBLEMS;
        problems.truncate(LISTED_PROBLEMS);
        problems.push(format!("and {more} more objects with problems"));
    }
    check.problems = problems;
    Ok(check)
}

/// One object's problem, if any.
fn check_object(
    store: &dyn ObjectStore,
    sha256: &str,
    size: u64,
    read_data: bool,
) -> Result<Option<String>, StoreError> {
    match store.object_size(sha256)? {
        None => {
            return Ok(Some(format!(
                "object {sha256} is missing from the object store"
            )))
        }
        Some(found) if found != size => {
            return Ok(Some(format!(
                "object {sha256} holds {found} bytes, the snapshot says {size}"
            )))
        }
        Some(_) => {}
    }
    if !read_data {
        return Ok(None);
    }
    let reader = store.open_object(sha256)?;
    match HashingReader::new(reader).finish() {
        Ok((n, hash)) if n == size && hash == sha256 => Ok(None),
        Ok((n, hash)) => Ok(Some(format!(
            "object {sha256} reads as {n} bytes with sha256 {hash}"
        ))),
        Err(e) => Ok(Some(format!("object {sha256} cannot be read: {e}"))),
    }
}
