//! Retention: which complete sets of a job the policy keeps, and deleting the rest (plus the
//! gateway objects no kept snapshot references). Filled in by the retention work.

use crate::config::Settings;
use crate::store::{Destination, JobKind};
use chrono::{DateTime, Utc};

/// How a prune runs.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Decide and report, delete nothing.
    pub dry_run: bool,
    /// "Now" for the grace period of gateway objects (tests pass a fake clock).
    pub now: DateTime<Utc>,
}

/// What a prune of one job kept and removed.
#[derive(Debug, Default, Clone)]
pub struct PruneReport {
    /// Kept sets, each with the rules that keep it (e.g. `last 1/3`, `daily 2026-11-25`).
    pub kept: Vec<(String, Vec<String>)>,
    /// Removed (or, in a dry run, to-be-removed) sets.
    pub removed: Vec<String>,
    /// Gateway objects removed (or to be removed).
    pub objects_removed: u64,
}

/// Why a prune failed.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Applies the retention policy of `settings` to the complete sets of `job` at `dest`.
pub fn prune_job(
    _dest: &dyn Destination,
    _settings: &Settings,
    _job: JobKind,
    _options: &PruneOptions,
) -> Result<PruneReport, PruneError> {
    Ok(PruneReport::default())
}
