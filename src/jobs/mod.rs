//! Backup jobs: each turns a source into the artifacts of a new set. A job implements [`Job`];
//! everything around a run (run id, span, sweep, set lifecycle, deadline, metrics, status,
//! retention) is the [`harness`]'s. A new job is its own module and one line in [`registry`].

mod compressed;
pub mod database;
pub mod etcd_keys;
pub mod gateway;
pub mod harness;
mod pipe_writer;
pub mod prune;
mod run;
pub mod status;
pub mod verify;
pub mod volume;
mod volume_job;

pub use compressed::{CompressedArtifact, FinishError, Workers};
pub use harness::{run_job, RunOutcome, RunResult};
pub use run::{Backup, Run};

use crate::config::{ConfigDuration, Settings};
use crate::restore::{RestoreError, RestoreReport, RestoreRequest, RestoreStep};
use crate::store::{Destination, JobKind, Manifest, StoreError};
use verify::{ArtifactCheck, VerifyError};

/// The artifact of the `volume` job.
pub const VOLUME_ARTIFACT: &str = "store.tar.zst";

/// The artifact of the `database` job.
pub const DATABASE_ARTIFACT: &str = "pg_dumpall.sql.zst";

/// One kind of backup. Implementations hold no state: a run's state lives in its [`Run`].
pub trait Job: Send + Sync {
    /// Which job this is (its name in the CLI, etcd keys, metrics and the destination).
    fn kind(&self) -> JobKind;

    /// The job's cron schedule in `settings` (`""` = disabled): `schedule.<job>`.
    fn schedule<'s>(&self, settings: &'s Settings) -> &'s str {
        settings.schedule.of(self.kind().as_str())
    }

    /// How long one run may take before the harness cancels it: `deadline.<job>`.
    fn deadline(&self, settings: &Settings) -> ConfigDuration {
        settings.deadline.of(self.kind().as_str())
    }

    /// The configuration key of [`Job::deadline`], for messages.
    fn deadline_key(&self) -> String {
        format!("deadline.{}", self.kind())
    }

    /// Backs the source up into `run`'s set: artifacts through [`Run::start_artifact`]
    /// (or objects through `run.dest.objects()`); returns what the manifest records. The
    /// harness writes the manifest, last, only when this returns `Ok`.
    fn backup(&self, run: &mut Run<'_>) -> Result<Backup, JobError>;

    /// How a complete set of this job is restored (one of `restore::steps`).
    fn restore_step(&self) -> RestoreStep;

    /// Restores a complete set of this job as `request` asks (nothing written in a dry run);
    /// the report says what was, or would be, done.
    fn restore(
        &self,
        settings: &Settings,
        dest: &dyn Destination,
        manifest: &Manifest,
        request: &RestoreRequest,
    ) -> Result<RestoreReport, RestoreError> {
        (self.restore_step())(settings, dest, manifest, request)
    }

    /// What `verify` checks of a complete set beyond its artifacts' size, sha256 and decoding
    /// (which every job gets): e.g. the objects a gateway snapshot references.
    fn verify_extra(
        &self,
        _dest: &dyn Destination,
        _manifest: &Manifest,
        _read_data: bool,
    ) -> Result<Vec<ArtifactCheck>, VerifyError> {
        Ok(Vec::new())
    }
}

/// Every job this build knows, in the order `backup all` runs them.
pub fn registry() -> [&'static dyn Job; 4] {
    [
        &gateway::GatewayJob,
        &volume_job::VolumeJob,
        &database::DatabaseJob,
        &etcd_keys::EtcdJob,
    ]
}

/// The job of `kind`.
pub fn job(kind: JobKind) -> &'static dyn Job {
    registry()
        .into_iter()
        .find(|j| j.kind() == kind)
        .expect("every JobKind is registered")
}

/// Why a backup run failed. Whatever it wrote has been removed: no manifest, no set.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
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
    #[error("the {job} job finished without creating its backup set")]
    NoSet { job: JobKind },
    #[error("{0}")]
    Cancelled(String),
}

impl JobError {
    /// True for what this build cannot do at all (exit code 2 at the CLI).
    pub fn is_not_available(&self) -> bool {
        matches!(self, JobError::Store(StoreError::NotAvailable(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_is_registered_once_with_its_schedule_and_deadline() {
        let settings = Settings::default();
        for kind in JobKind::ALL {
            let j = job(kind);
            assert_eq!(j.kind(), kind);
            assert!(!j.schedule(&settings).is_empty(), "{kind}");
            assert!(j.deadline(&settings).get().as_secs() >= 3600, "{kind}");
            assert_eq!(j.deadline_key(), format!("deadline.{kind}"));
        }
        assert_eq!(registry().len(), JobKind::ALL.len());
        assert_eq!(job(JobKind::Gateway).deadline(&settings).to_string(), "6h");
    }
}
