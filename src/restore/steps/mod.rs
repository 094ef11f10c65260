//! Each job's restore step as the `Job` trait exposes it: run the job's restore and describe
//! what it did (or, in a dry run, would do) in lines for the operator. The commands layer only
//! prints a [`RestoreReport`].

mod database;
mod etcd;
mod gateway;
mod volume;

pub use database::database;
pub use etcd::etcd;
pub use gateway::gateway;
pub use volume::volume;

use super::RestoreError;
use crate::config::Settings;
use crate::store::{Destination, Manifest};

/// One job's restore step: the set into the cluster, described for the operator.
pub type RestoreStep = fn(
    &Settings,
    &dyn Destination,
    &Manifest,
    &RestoreRequest,
) -> Result<RestoreReport, RestoreError>;

/// What the operator asked a restore to do (the command line's options).
#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    /// Read and check everything, write nothing.
    pub dry_run: bool,
    /// Write over what the target holds: a non-empty volume folder, gateway objects and etcd
    /// keys with other content, a database cluster with data. The command sets it per job.
    pub force: bool,
    /// The database container to restore into (default: `database.container`).
    pub container: Option<String>,
    /// etcd: also write the keys skipped by default.
    pub include_all: bool,
    /// etcd: the etcd to write into (default: `etcd.endpoints`).
    pub etcd_target: Option<String>,
    /// gateway: only these buckets of the snapshot (empty: all).
    pub buckets: Vec<String>,
}

/// What one job's restore did, for the operator.
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// What was (or would be) done, one line each, prefixed with the set.
    pub lines: Vec<String>,
    /// What the operator should look at (printed to stderr).
    pub warnings: Vec<String>,
    /// Entries were refused: what is there is incomplete (the command exits 1).
    pub refused: bool,
}

impl RestoreReport {
    fn line(&mut self, text: String) {
        self.lines.push(text);
    }
}

/// How a step's first line starts.
fn verb(dry_run: bool) -> &'static str {
    if dry_run {
        "would restore"
    } else {
        "restoring"
    }
}
