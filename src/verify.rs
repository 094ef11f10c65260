//! Re-reads a set's artifacts and checks them against the manifest: size, sha256, and that the
//! compressed stream decodes (a tar to its last entry) to the recorded uncompressed size.

use crate::io_util::{CountingReader, HashingReader};
use crate::jobs::gateway::{read_snapshot, SnapshotError};
use crate::store::{Artifact, Destination, JobKind, Manifest, ObjectStore, StoreError};
use crate::util::parallel_map;
use std::collections::BTreeMap;
use std::io::{self, Read};

/// The result of checking one artifact.
#[derive(Debug, Clone)]
pub struct ArtifactCheck {
    pub name: String,
    pub size: u64,
    /// Empty when the artifact matches its manifest entry.
    pub problems: Vec<String>,
}

/// Why a set could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// Problems listed per check before the rest are only counted.
const LISTED_PROBLEMS: usize = 20;

/// Checks every artifact of a complete set and, for a gateway set, every object its snapshot
/// references: present in the object store with its size, and with `read_data` re-hashed
/// (sha256). The objects are reported as one more check named `objects`.
pub fn verify_set_with(
    dest: &dyn Destination,
    manifest: &Manifest,
    read_data: bool,
) -> Result<Vec<ArtifactCheck>, VerifyError> {
    let mut checks = verify_set(dest, manifest)?;
    if manifest.job == JobKind::Gateway && checks.iter().all(|c| c.problems.is_empty()) {
        checks.push(verify_gateway_objects(dest, manifest, read_data)?);
    }
    Ok(checks)
}

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

/// Checks every artifact of a complete set.
pub fn verify_set(
    dest: &dyn Destination,
    manifest: &Manifest,
) -> Result<Vec<ArtifactCheck>, VerifyError> {
    let set = manifest.set_ref();
    manifest
        .artifacts
        .iter()
        .map(|artifact| {
            let reader = match dest.open_artifact(&set, &artifact.name) {
                Ok(reader) => reader,
                Err(StoreError::MissingArtifact { .. }) => {
                    return Ok(ArtifactCheck {
                        name: artifact.name.clone(),
                        size: 0,
                        problems: vec!["artifact is missing at the destination".into()],
                    })
                }
                Err(e) => return Err(e.into()),
            };
            Ok(check_artifact(artifact, reader))
        })
        .collect()
}

/// Reads one artifact to its end and lists every way it differs from `expected`.
pub fn check_artifact(expected: &Artifact, reader: impl Read) -> ArtifactCheck {
    let mut hashing = HashingReader::new(reader);
    let mut problems = Vec::new();
    let decoded = decode(expected, &mut hashing);
    let (size, sha256) = match hashing.finish() {
        Ok(result) => result,
        Err(e) => {
            problems.push(format!("cannot read it: {e}"));
            return ArtifactCheck {
                name: expected.name.clone(),
                size: 0,
                problems,
            };
        }
    };
    if size != expected.size {
        problems.push(format!(
            "size is {size} bytes, manifest says {}",
            expected.size
        ));
    }
    if sha256 != expected.sha256 {
        problems.push(format!(
            "sha256 is {sha256}, manifest says {}",
            expected.sha256
        ));
    }
    match decoded {
        Ok(n) if n != expected.uncompressed_size => problems.push(format!(
            "decodes to {n} bytes, manifest says {}",
            expected.uncompressed_size
        )),
        Ok(_) => {}
        Err(e) => problems.push(format!("does not decode: {e}")),
    }
    ArtifactCheck {
        name: expected.name.clone(),
        size,
        problems,
    }
}

/// Decodes the artifact's content to its end and returns the uncompressed byte count.
fn decode(expected: &Artifact, reader: &mut impl Read) -> io::Result<u64> {
    let mut plain: Box<dyn Read + '_> = match expected.compression.as_str() {
        "zstd" => Box::new(zstd::stream::read::Decoder::new(reader)?.single_frame()),
        "none" => Box::new(reader),
        other => return Err(io::Error::other(format!("unknown compression {other:?}"))),
    };
    let mut counted = CountingReader::new(&mut plain);
    if expected.content == "tar" {
        let mut archive = tar::Archive::new(&mut counted);
        for entry in archive.entries()? {
            io::copy(&mut entry?, &mut io::sink())?;
        }
        // the archive stops at its end marker; count the rest (padding) too
        io::copy(&mut archive.into_inner(), &mut io::sink())?;
    } else {
        io::copy(&mut counted, &mut io::sink())?;
    }
    Ok(CountingReader::bytes(&counted))
}
