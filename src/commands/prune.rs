//! `deis-backup prune [--dry-run] [--job J]`: apply the retention policy.

use crate::config::LoadOptions;
use crate::store::JobKind;
use std::process::ExitCode;

/// Prunes every job (or `job` only); exit 0 when every prune succeeded.
pub fn prune(
    _options: &LoadOptions,
    _job: Option<JobKind>,
    _dry_run: bool,
) -> anyhow::Result<ExitCode> {
    Ok(super::not_available("`prune` (retention)"))
}
