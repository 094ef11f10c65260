//! `deis-backup prune [--dry-run] [--job J]`: apply the retention policy.
//!
//! Removes what interrupted runs left (incomplete sets, staged objects, open uploads) first,
//! then prunes each job and prints, per job, the kept sets with the rules that keep them, the
//! removed ones, and what happened to the gateway object store.

use super::{human_bytes, EXIT_FAILURE};
use crate::config::{LoadOptions, Settings};
use crate::error_chain::error_chain;
use crate::jobs::prune::{prune_job, PruneOptions, PruneReport};
use crate::store::JobKind;
use std::process::ExitCode;

/// Prunes every job (or `job` only); exit 0 when every prune succeeded.
pub fn prune(
    options: &LoadOptions,
    job: Option<JobKind>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let settings = super::load_settings(options)?;
    let dest = super::open_destination(&settings)?;
    if dry_run {
        println!("Dry run: nothing is deleted at {}.", dest.describe());
    } else {
        for set in dest.sweep_incomplete()? {
            println!("swept incomplete set {set}");
        }
    }
    let prune_options = PruneOptions {
        dry_run,
        now: chrono::Utc::now(),
    };
    let jobs: Vec<JobKind> = job.map_or(JobKind::ALL.to_vec(), |j| vec![j]);
    let mut failed = false;
    for job in jobs {
        match prune_job(dest.as_ref(), &settings, job, &prune_options) {
            Ok(report) => print_report(job, &report, &settings, dry_run),
            Err(e) => {
                failed = true;
                eprintln!("{job}: prune failed: {}", error_chain(&e));
            }
        }
    }
    Ok(if failed {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

/// What one job's prune kept and removed, for people.
fn print_report(job: JobKind, report: &PruneReport, settings: &Settings, dry_run: bool) {
    let remove = if dry_run { "would remove" } else { "removed" };
    println!(
        "{job}: {} complete set(s), keeping {}, {remove} {}",
        report.kept.len() + report.removed.len(),
        report.kept.len(),
        report.removed.len()
    );
    for (set, reasons) in &report.kept {
        println!("  keep          {set}  ({})", reasons.join(", "));
    }
    for set in &report.removed {
        println!("  {remove:<12}  {set}");
    }
    for (set, reason) in &report.unreadable {
        println!("  left alone    {set}  (unusable manifest: {reason})");
    }
    if let Some(why) = &report.objects_skipped {
        println!("  objects: not collected: {why}");
    }
    if let Some(sweep) = &report.objects {
        println!(
            "  objects: {} stored, {} referenced by kept snapshots, {remove} {} ({}), {} \
             unreferenced but within the {} grace period",
            sweep.listed,
            sweep.referenced,
            sweep.removed,
            human_bytes(sweep.removed_bytes),
            sweep.young,
            settings.retention.object_grace,
        );
    }
}
