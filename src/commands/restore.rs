//! `deis-backup restore [SET|latest] --only JOBS`: put a backup back.

use super::{human_bytes, load_settings, open_destination, EXIT_FAILURE, EXIT_NOT_AVAILABLE};
use crate::config::LoadOptions;
use crate::config::Settings;
use crate::restore::{restore_database, restore_volume};
use crate::store::{find_set, list_complete, Destination, JobKind, Listing, SetSelector};
use anyhow::anyhow;
use std::process::ExitCode;

/// What the user asked to restore.
pub struct RestoreArgs {
    pub selector: SetSelector,
    /// Empty means every job.
    pub only: Vec<JobKind>,
    pub dry_run: bool,
    pub force: bool,
    /// The database container to restore into (default: `database.container`).
    pub container: Option<String>,
    /// etcd: also write the keys skipped by default (see `restore::etcd::SKIP_RULES`).
    pub include_all: bool,
    /// etcd: the etcd to write into (default: `etcd.endpoints`).
    pub etcd_target: Option<String>,
    /// gateway: only these buckets of the snapshot (empty: all).
    pub buckets: Vec<String>,
}

pub fn restore(options: &LoadOptions, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let settings = load_settings(options)?;
    let dest = open_destination(&settings)?;
    let listing = list_complete(dest.as_ref(), None)?;
    let jobs: Vec<JobKind> = match (&args.selector, args.only.is_empty()) {
        (SetSelector::Set(set), true) => vec![set.job],
        (_, true) => JobKind::ALL.to_vec(),
        (_, false) => args.only.clone(),
    };
    let mut unavailable = false;
    let mut failed = false;
    for job in jobs {
        if job == JobKind::Database {
            restore_database_job(&settings, dest.as_ref(), &listing, args)?;
            continue;
        }
        if job == JobKind::Etcd {
            super::restore_etcd::restore_etcd_job(&settings, dest.as_ref(), &listing, args)?;
            continue;
        }
        if job == JobKind::Gateway {
            super::restore_gateway::restore_gateway_job(&settings, dest.as_ref(), &listing, args)?;
            continue;
        }
        if job != JobKind::Volume {
            eprintln!("{job}: restore of this job is not available in this version yet.");
            unavailable = true;
            continue;
        }
        let manifest = find_set(&listing, &args.selector, Some(job)).ok_or_else(|| {
            anyhow!(
                "no complete {job} backup set matches {:?} at {}",
                args.selector,
                dest.describe()
            )
        })?;
        let target = &settings.volume.path;
        let verb = if args.dry_run {
            "would restore"
        } else {
            "restoring"
        };
        println!(
            "volume/{}: {verb} into {}",
            manifest.run_id,
            target.display()
        );
        let report = restore_volume(dest.as_ref(), manifest, target, args.dry_run, args.force)?;
        println!(
            "volume/{}: {} files ({}), {} folders, {} symlinks, {} hard links{}",
            manifest.run_id,
            report.files,
            human_bytes(report.bytes),
            report.directories,
            report.symlinks,
            report.hard_links,
            if args.dry_run {
                " (dry run: nothing written)"
            } else {
                ""
            }
        );
        if let Some(note) = &report.ownership_note {
            eprintln!("volume: warning: {note}");
        }
        if !report.refused.is_empty() {
            failed = true;
            for (entry, reason) in &report.refused {
                eprintln!("volume: refused entry {entry:?}: {reason}");
            }
            eprintln!(
                "volume: {} archive entries refused; nothing was written for them",
                report.refused.len()
            );
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

/// Restores the selected `database` set into the target container; errors fail the command.
fn restore_database_job(
    settings: &Settings,
    dest: &dyn Destination,
    listing: &Listing,
    args: &RestoreArgs,
) -> anyhow::Result<()> {
    let manifest = find_set(listing, &args.selector, Some(JobKind::Database)).ok_or_else(|| {
        anyhow!(
            "no complete database backup set matches {:?} at {}",
            args.selector,
            dest.describe()
        )
    })?;
    let container = args
        .container
        .as_deref()
        .unwrap_or(&settings.database.container);
    let verb = if args.dry_run {
        "would restore"
    } else {
        "restoring"
    };
    println!(
        "database/{}: {verb} into container {container}",
        manifest.run_id
    );
    let report = restore_database(dest, manifest, &settings.database, container, args.dry_run)?;
    for statement in &report.skipped_statements {
        println!(
            "database/{}: skipped `{statement}` (the role exists in every cluster)",
            manifest.run_id
        );
    }
    if report.dry_run {
        println!(
            "database/{}: would run `{}` in container {}, feeding it {} of SQL (dry run: nothing executed)",
            manifest.run_id,
            report.command,
            report.container,
            human_bytes(report.bytes)
        );
    } else {
        println!(
            "database/{}: restored {} of SQL through `{}` in container {} (exit code 0)",
            manifest.run_id,
            human_bytes(report.bytes),
            report.command,
            report.container
        );
        if !report.stderr.is_empty() {
            eprintln!("database: psql said: {}", report.stderr);
        }
    }
    Ok(())
}
