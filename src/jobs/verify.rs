//! Re-reads a set's artifacts and checks them against the manifest: size, sha256, and that the
//! compressed stream decodes (a tar to its last entry) to the recorded uncompressed size.

use super::gateway::SnapshotError;
use crate::io_util::{CountingReader, HashingReader};
use crate::store::{Artifact, Destination, Manifest, StoreError};
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

/// Checks every artifact of a complete set and, when they are sound, what the job itself
/// checks beyond them ([`super::Job::verify_extra`]: a gateway snapshot's objects).
pub fn verify_set_with(
    dest: &dyn Destination,
    manifest: &Manifest,
    read_data: bool,
) -> Result<Vec<ArtifactCheck>, VerifyError> {
    let mut checks = verify_set(dest, manifest)?;
    if checks.iter().all(|c| c.problems.is_empty()) {
        checks.extend(super::job(manifest.job).verify_extra(dest, manifest, read_data)?);
    }
    Ok(checks)
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
