//! Backup jobs: each one turns a source into artifacts of a new set, then writes its manifest.

mod compressed;
pub mod database;
pub mod volume;

pub use compressed::{CompressedArtifact, FinishError};

use crate::config::Settings;
use crate::store::{
    Destination, JobKind, Manifest, RunId, SetRef, StoreError, ToolInfo, FORMAT_VERSION,
};
use chrono::Utc;
use std::io::BufWriter;
use std::path::PathBuf;

/// The artifact of the `volume` job.
pub const VOLUME_ARTIFACT: &str = "store.tar.zst";

/// The artifact of the `database` job.
pub const DATABASE_ARTIFACT: &str = "pg_dumpall.sql.zst";

/// Why a backup run failed. Whatever it wrote has been removed: no manifest, no set.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("the {0} job is not available in this version yet")]
    NotAvailable(JobKind),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Volume(#[from] volume::VolumeError),
    #[error(transparent)]
    Database(#[from] database::DatabaseError),
    #[error("cannot start compressing {artifact}")]
    Compressor {
        artifact: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot complete {artifact}")]
    Finish {
        artifact: &'static str,
        #[source]
        source: FinishError,
    },
}

impl JobError {
    /// True for jobs this build does not implement yet (exit code 2 at the CLI).
    pub fn is_not_available(&self) -> bool {
        matches!(self, JobError::NotAvailable(_))
            || matches!(self, JobError::Store(StoreError::NotAvailable(_)))
    }
}

/// Runs one backup of `job` into `dest` and returns the manifest of the complete set.
pub fn run_backup(
    job: JobKind,
    settings: &Settings,
    dest: &dyn Destination,
) -> Result<Manifest, JobError> {
    match job {
        JobKind::Volume => run_volume(settings, dest),
        JobKind::Database => database::run_database(settings, dest),
        other => Err(JobError::NotAvailable(other)),
    }
}

fn run_volume(settings: &Settings, dest: &dyn Destination) -> Result<Manifest, JobError> {
    let started_at = Utc::now();
    let set = SetRef {
        job: JobKind::Volume,
        run_id: RunId::new(started_at),
    };
    let root = absolute(&settings.volume.path);
    let span = tracing::info_span!("backup", job = "volume", set = %set.run_id);
    let _entered = span.enter();
    tracing::info!(path = %root.display(), destination = %dest.describe(), "Volume backup started.");

    let mut pending = dest.begin_set(&set)?;
    let sink = pending.create_artifact(VOLUME_ARTIFACT)?;
    let level = settings.compression.level;
    let compressed = CompressedArtifact::new(VOLUME_ARTIFACT, sink, level).map_err(|source| {
        JobError::Compressor {
            artifact: VOLUME_ARTIFACT,
            source,
        }
    })?;
    let (buffered, outcome) =
        volume::write_volume_tar(&root, BufWriter::with_capacity(256 << 10, compressed))?;
    let compressed = buffered
        .into_inner()
        .map_err(|e| volume::VolumeError::Write {
            path: "end of archive".into(),
            source: e.into_error(),
        })?;
    let artifact = compressed
        .finish("tar")
        .map_err(|source| JobError::Finish {
            artifact: VOLUME_ARTIFACT,
            source,
        })?;

    let stats = serde_json::to_value(&outcome.stats).expect("stats serialize");
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        job: JobKind::Volume,
        run_id: set.run_id.clone(),
        started_at,
        finished_at: Utc::now(),
        host: host_name(),
        tool: ToolInfo::this_build(),
        source: serde_json::json!({ "kind": "volume", "path": root }),
        artifacts: vec![artifact],
        warnings: outcome.warnings,
        stats: stats.as_object().cloned().unwrap_or_default(),
    };
    pending.complete(&manifest.to_json())?;
    tracing::info!(
        bytes_read = outcome.stats.bytes_read,
        bytes_written = manifest.stored_bytes(),
        warnings = manifest.warnings.len(),
        "Volume backup complete."
    );
    Ok(manifest)
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// This host's name, for manifests.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
