//! Restoring backup sets: checks before writing anything, then one step per job.

pub mod database;
pub mod etcd;
mod extract;
pub mod finish;
pub mod gateway;
pub mod gateway_plan;
mod gateway_upload;
mod safe_path;
pub mod steps;

pub use database::{
    restore_database, DatabaseRestoreError, DatabaseRestoreMode, DatabaseRestoreReport,
};
pub use extract::{extract_tar, ExtractReport};
pub use steps::{RestoreReport, RestoreRequest, RestoreStep};

use crate::io_util::HashingReader;
use crate::jobs::VOLUME_ARTIFACT;
use crate::store::{Artifact, Destination, Manifest, SetRef, StoreError};
use std::io;
use std::path::{Path, PathBuf};

/// Why a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Database(#[from] DatabaseRestoreError),
    #[error(transparent)]
    Gateway(#[from] gateway::GatewayRestoreError),
    #[error(transparent)]
    Etcd(#[from] etcd::EtcdRestoreError),
    #[error("no target etcd: pass --etcd-target URL or configure etcd.endpoints (ETCD=host:port)")]
    NoEtcdTarget,
    #[error("restore target {0} is not empty; pass --force to restore over what is there")]
    TargetNotEmpty(PathBuf),
    #[error("restore target {path} cannot be used")]
    Target {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the archive {artifact} of {set}")]
    Archive {
        set: SetRef,
        artifact: String,
        #[source]
        source: io::Error,
    },
    #[error("set {set} has no artifact {artifact} in its manifest")]
    NotInManifest { set: SetRef, artifact: String },
    #[error("artifact {artifact} of {set} does not match its manifest ({detail}); what was restored may be damaged")]
    Corrupt {
        set: SetRef,
        artifact: String,
        detail: String,
    },
}

/// The artifact `name` of a set, or the error that its manifest lacks it.
fn artifact_of<'m>(manifest: &'m Manifest, name: &str) -> Result<&'m Artifact, RestoreError> {
    manifest
        .artifact(name)
        .ok_or_else(|| RestoreError::NotInManifest {
            set: manifest.set_ref(),
            artifact: name.into(),
        })
}

/// Restores a `volume` set into `target` (created when missing).
pub fn restore_volume(
    dest: &dyn Destination,
    manifest: &Manifest,
    target: &Path,
    dry_run: bool,
    force: bool,
) -> Result<ExtractReport, RestoreError> {
    let set = manifest.set_ref();
    let artifact = artifact_of(manifest, VOLUME_ARTIFACT)?;
    if !dry_run {
        prepare_target(target, force)?;
    }
    let archive_err = |source| RestoreError::Archive {
        set: set.clone(),
        artifact: artifact.name.clone(),
        source,
    };
    let mut hashing = HashingReader::new(dest.open_artifact(&set, &artifact.name)?);
    let decoder = zstd::stream::read::Decoder::new(&mut hashing)
        .map_err(archive_err)?
        .single_frame();
    let report = extract_tar(decoder, target, dry_run).map_err(archive_err)?;
    let (size, sha256) = hashing.finish().map_err(archive_err)?;
    artifact
        .check_read(size, &sha256)
        .map_err(|detail| RestoreError::Corrupt {
            set,
            artifact: artifact.name.clone(),
            detail,
        })?;
    Ok(report)
}

fn prepare_target(target: &Path, force: bool) -> Result<(), RestoreError> {
    let target_err = |source| RestoreError::Target {
        path: target.to_path_buf(),
        source,
    };
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() && !force {
                return Err(RestoreError::TargetNotEmpty(target.to_path_buf()));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(target).map_err(target_err)
        }
        Err(e) => Err(target_err(e)),
    }
}
