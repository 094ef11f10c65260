//! The `volume` job as the harness runs it: the store volume as one `store.tar.zst`.

use super::{volume, Backup, Job, JobError, Run, VOLUME_ARTIFACT};
use crate::store::JobKind;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

/// Backs up `volume.path` (Deis: the CephFS store volume).
pub struct VolumeJob;

impl Job for VolumeJob {
    fn kind(&self) -> JobKind {
        JobKind::Volume
    }

    fn restore_step(&self) -> crate::restore::RestoreStep {
        crate::restore::steps::volume
    }

    fn backup(&self, run: &mut Run<'_>) -> Result<Backup, JobError> {
        let root = absolute(&run.settings.volume.path);
        tracing::info!(path = %root.display(), destination = %run.dest.describe(), "Volume backup started.");
        let compressed = run.start_artifact(VOLUME_ARTIFACT)?;
        let read_ahead = volume::ReadAhead {
            threads: run.settings.volume.read_ahead as usize,
            ..volume::ReadAhead::default()
        };
        let (buffered, outcome) = volume::write_volume_tar_with(
            &root,
            BufWriter::with_capacity(256 << 10, compressed),
            read_ahead,
        )?;
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
        tracing::info!(
            bytes_read = outcome.stats.bytes_read,
            bytes_written = artifact.size,
            warnings = outcome.warnings.len(),
            "Volume backup written."
        );
        Ok(Backup {
            source: serde_json::json!({ "kind": "volume", "path": root }),
            artifacts: vec![artifact],
            warnings: outcome.warnings,
            stats: serde_json::to_value(&outcome.stats).expect("stats serialize"),
        })
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
