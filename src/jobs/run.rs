//! What a job sees of its run: the settings, the destination (cancellable), the set being
//! written, and helpers that create that set lazily so that a job can fail its checks
//! (source reachable, listings readable) before anything is written.

use super::{CompressedArtifact, JobError, Workers};
use crate::config::Settings;
use crate::store::{Artifact, Destination, PendingSet, SetRef, Warning};
use crate::util::Cancel;
use chrono::{DateTime, Utc};

/// One run of a job, as the job sees it.
pub struct Run<'a> {
    pub settings: &'a Settings,
    /// The destination; its writes fail once the run is cancelled.
    pub dest: &'a dyn Destination,
    /// The set this run writes.
    pub set: SetRef,
    pub started_at: DateTime<Utc>,
    cancel: Cancel,
    pending: Option<Box<dyn PendingSet>>,
}

/// What a successful backup hands the harness for the manifest (beyond what every manifest
/// carries: format, job, run id, times, host, tool).
#[derive(Debug, Default)]
pub struct Backup {
    /// What was backed up, e.g. `{"kind": "volume", "path": "/var/lib/deis/store"}`.
    pub source: serde_json::Value,
    pub artifacts: Vec<Artifact>,
    pub warnings: Vec<Warning>,
    /// Job-specific counters; serialized into the manifest's `stats`.
    pub stats: serde_json::Value,
}

impl<'a> Run<'a> {
    pub(super) fn new(
        settings: &'a Settings,
        dest: &'a dyn Destination,
        set: SetRef,
        started_at: DateTime<Utc>,
        cancel: Cancel,
    ) -> Self {
        Self {
            settings,
            dest,
            set,
            started_at,
            cancel,
            pending: None,
        }
    }

    /// Creates the run's set at the destination, once (later calls do nothing).
    pub fn begin(&mut self) -> Result<(), JobError> {
        if self.pending.is_none() {
            self.pending = Some(self.dest.begin_set(&self.set)?);
        }
        Ok(())
    }

    /// Starts the artifact `name` of the run's set, zstd-compressed at the configured level.
    pub fn start_artifact(&mut self, name: &'static str) -> Result<CompressedArtifact, JobError> {
        self.start_artifact_with(name, Workers::PerCore)
    }

    /// [`Run::start_artifact`] with the compression run by `workers`.
    pub fn start_artifact_with(
        &mut self,
        name: &'static str,
        workers: Workers,
    ) -> Result<CompressedArtifact, JobError> {
        self.begin()?;
        let pending = self.pending.as_mut().expect("begun above");
        let sink = pending.create_artifact(name)?;
        let level = self.settings.compression.level;
        CompressedArtifact::with_workers(name, sink, level, workers, self.cancel.clone()).map_err(
            |source| JobError::Compressor {
                artifact: name,
                source,
            },
        )
    }

    /// `Err` once the run has been cancelled (for loops that do not write on every step).
    pub fn check_cancelled(&self) -> Result<(), JobError> {
        match self.cancel.reason() {
            Some(reason) => Err(JobError::Cancelled(reason)),
            None => Ok(()),
        }
    }

    /// The run's cancellation flag (for worker threads the job starts).
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// The set being written, for the harness to complete.
    pub(super) fn take_pending(&mut self) -> Option<Box<dyn PendingSet>> {
        self.pending.take()
    }
}
