//! `deis-backup backup <job|all>`: one run now, in the foreground, through the same harness
//! the daemon uses (sweep first, deadline, metrics, status key, retention after success).

use super::{
    human_bytes, load_settings, open_destination_creating, EXIT_FAILURE, EXIT_NOT_AVAILABLE,
    EXIT_PARTIAL,
};
use crate::config::LoadOptions;
use crate::jobs::{self, RunResult};
use crate::store::{JobKind, WarningKind};
use crate::util::Cancel;
use std::process::ExitCode;

/// Runs the given jobs one after the other. Exit 0 when every one succeeded, 3 when one or
/// more kept a partial set (and none failed), 1 when one failed.
pub fn backup(
    options: &LoadOptions,
    kinds: &[JobKind],
    create_bucket: bool,
) -> anyhow::Result<ExitCode> {
    let settings = load_settings(options)?;
    let dest = open_destination_creating(&settings, create_bucket)?;
    let interrupted = interrupt_on_signals();
    let (mut failed, mut partial, mut unavailable) = (false, false, false);
    for &kind in kinds {
        let outcome = jobs::run_job(jobs::job(kind), &settings, dest.as_ref(), &interrupted);
        match (&outcome.manifest, &outcome.error) {
            (Some(manifest), _) => {
                let state = match outcome.result {
                    RunResult::Partial => "PARTIAL (kept, but incomplete)",
                    _ => "complete",
                };
                println!(
                    "{kind}/{}: {state}, {} stored, {} warning(s)",
                    manifest.run_id,
                    human_bytes(manifest.stored_bytes()),
                    manifest.warnings.len()
                );
                for w in &manifest.warnings {
                    let mark = if w.kind == WarningKind::Unreadable {
                        "NOT BACKED UP"
                    } else {
                        "warning"
                    };
                    println!("  {mark}: {}: {}", w.path, w.detail);
                }
                partial |= outcome.result == RunResult::Partial;
            }
            (None, error) if outcome.not_available => {
                eprintln!("{kind}: {}", error.as_deref().unwrap_or("not available"));
                unavailable = true;
            }
            (None, error) => {
                failed = true;
                eprintln!(
                    "{kind}: backup FAILED: {}",
                    error.as_deref().unwrap_or("unknown error")
                );
            }
        }
    }
    Ok(if failed {
        ExitCode::from(EXIT_FAILURE)
    } else if unavailable {
        ExitCode::from(EXIT_NOT_AVAILABLE)
    } else if partial {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

/// A flag that SIGINT/SIGTERM set, so that an interrupted `backup` cancels its run cleanly
/// (uploads aborted, nothing half-written left) instead of dying mid-write.
fn interrupt_on_signals() -> Cancel {
    let cancel = Cancel::new();
    let flag = cancel.clone();
    crate::runtime::runtime().spawn(async move {
        let Ok(mut signals) = crate::runtime::Termination::listen() else {
            return;
        };
        let signal = signals.next().await;
        eprintln!("deis-backup: {signal}: cancelling the run (again to quit at once)");
        flag.cancel(format!("interrupted by {signal}"));
        signals.next().await;
        std::process::exit(130);
    });
    cancel
}
