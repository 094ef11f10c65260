//! Backup jobs: each one turns a source into artifacts of a new set, then writes its manifest.

mod compressed;
pub mod database;
pub mod etcd_keys;
pub mod gateway;
pub mod prune;
pub mod volume;

pub use compressed::{CompressedArtifact, FinishError};

use crate::config::Settings;
use crate::store::{
    Artifact, Destination, JobKind, Manifest, PendingSet, RunId, SetRef, StoreError, ToolInfo,
    Warning, FORMAT_VERSION,
};
use chrono::{DateTime, Utc};
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
    #[error(transparent)]
    Gateway(#[from] gateway::GatewayJobError),
    #[error(transparent)]
    Etcd(#[from] etcd_keys::EtcdJobError),
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
        JobKind::Gateway => gateway::run_gateway(settings, dest),
        JobKind::Etcd => etcd_keys::run_etcd(settings, dest),
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
    let compressed = start_artifact(&mut pending, VOLUME_ARTIFACT, settings)?;
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

    let changed = outcome
        .warnings
        .iter()
        .filter(|w| w.kind == crate::store::WarningKind::ChangedDuringRead)
        .count();
    crate::metrics::metrics()
        .files_changed_during_read
        .inc_by(changed as u64);
    let manifest = complete_set(
        pending,
        &set,
        started_at,
        serde_json::json!({ "kind": "volume", "path": root }),
        vec![artifact],
        outcome.warnings,
        &outcome.stats,
    )?;
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

/// Starts the artifact `name` of a pending set, compressed at the configured level.
pub(crate) fn start_artifact(
    pending: &mut Box<dyn PendingSet>,
    name: &'static str,
    settings: &Settings,
) -> Result<CompressedArtifact, JobError> {
    let sink = pending.create_artifact(name)?;
    CompressedArtifact::new(name, sink, settings.compression.level).map_err(|source| {
        JobError::Compressor {
            artifact: name,
            source,
        }
    })
}

/// Writes the manifest of a finished run, which makes its set complete, and returns it.
/// Everything every manifest carries (format, job, run id, times, host, tool) is filled in
/// here; a job gives what is its own.
pub(crate) fn complete_set(
    pending: Box<dyn PendingSet>,
    set: &SetRef,
    started_at: DateTime<Utc>,
    source: serde_json::Value,
    artifacts: Vec<Artifact>,
    warnings: Vec<Warning>,
    stats: &impl serde::Serialize,
) -> Result<Manifest, StoreError> {
    let stats = match serde_json::to_value(stats).expect("stats serialize") {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        job: set.job,
        run_id: set.run_id.clone(),
        started_at,
        finished_at: Utc::now(),
        host: crate::util::host_name(),
        tool: ToolInfo::this_build(),
        source,
        artifacts,
        warnings,
        stats,
    };
    pending.complete(&manifest.to_json())?;
    Ok(manifest)
}
