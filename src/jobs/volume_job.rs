//! The `volume` job as the harness runs it: the store volume as one `store.tar.zst`.

use super::{pipe_writer, volume, Backup, Job, JobError, Run, VOLUME_ARTIFACT};
use crate::store::JobKind;
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
        // the tar writer (which reads the files) and the compressor each on their own thread
        let (compressed, outcome) = std::thread::scope(|scope| {
            let (pipe, compressing) = pipe_writer::spawn(scope, compressed);
            let written = volume::write_volume_tar_with(&root, pipe, read_ahead).and_then(
                |(pipe, outcome)| {
                    pipe.finish().map_err(|source| volume::VolumeError::Write {
                        path: "end of archive".into(),
                        source,
                    })?;
                    Ok(outcome)
                },
            );
            // a failed write reached the tar writer as its error (or the tar writer failed
            // first and dropped the pipe); either way `written` says why
            let compressed = compressing.join().expect("the compressing thread panicked");
            written.map(|outcome| (compressed, outcome))
        })?;
        let compressed = compressed.map_err(|source| volume::VolumeError::Write {
            path: "end of archive".into(),
            source,
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
