//! `deis-backup backup <job|all>`: one run now, in the foreground.

use super::{
    human_bytes, load_settings, open_destination_creating, EXIT_FAILURE, EXIT_NOT_AVAILABLE,
};
use crate::config::LoadOptions;
use crate::jobs::run_backup;
use crate::store::JobKind;
use std::process::ExitCode;

/// Runs the given jobs one after the other; exit 0 only if every one succeeded.
/// `create_bucket` creates a missing S3 destination bucket first.
pub fn backup(
    options: &LoadOptions,
    jobs: &[JobKind],
    create_bucket: bool,
) -> anyhow::Result<ExitCode> {
    let settings = load_settings(options)?;
    let dest = open_destination_creating(&settings, create_bucket)?;
    match dest.sweep_incomplete() {
        Ok(removed) => {
            for set in removed {
                tracing::info!(set = %set, "Removed an incomplete backup set left by an interrupted run.");
            }
        }
        Err(e) => tracing::warn!(
            "Could not sweep incomplete sets: {:#}",
            anyhow::Error::from(e)
        ),
    }
    let mut failed = false;
    let mut unavailable = false;
    for &job in jobs {
        match run_backup(job, &settings, dest.as_ref()) {
            Ok(manifest) => {
                println!(
                    "{job}/{}: complete, {} stored, {} warning(s)",
                    manifest.run_id,
                    human_bytes(manifest.stored_bytes()),
                    manifest.warnings.len()
                );
                for w in &manifest.warnings {
                    println!("  warning: {}: {}", w.path, w.detail);
                }
            }
            Err(e) if e.is_not_available() => {
                eprintln!("{job}: {:#}", anyhow::Error::from(e));
                unavailable = true;
            }
            Err(e) => {
                failed = true;
                eprintln!("{job}: backup FAILED: {:#}", anyhow::Error::from(e));
            }
        }
    }
    Ok(if failed {
        ExitCode::from(EXIT_FAILURE)
    } else if unavailable {
        ExitCode::from(EXIT_NOT_AVAILABLE)
    } else {
        ExitCode::SUCCESS
    })
}
