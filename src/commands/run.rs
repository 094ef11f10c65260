//! `deis-backup run`: the daemon.

use crate::config::LoadOptions;
use std::process::ExitCode;

/// Runs the daemon until SIGTERM/SIGINT; exit 0 after a clean stop.
pub fn run(options: &LoadOptions) -> anyhow::Result<ExitCode> {
    crate::daemon::run(options.clone())?;
    Ok(ExitCode::SUCCESS)
}
