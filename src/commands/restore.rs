//! `deis-backup restore [SET|latest] --only JOBS`: put a backup back, job by job, each through
//! its own restore step (`Job::restore`), in the order of a Deis bring-up.

use super::{load_settings, open_destination, EXIT_FAILURE};
use crate::config::LoadOptions;
use crate::jobs::{self, gateway};
use crate::restore::RestoreRequest;
use crate::store::{find_set, list_complete, Destination, JobKind, Listing, SetSelector};
use anyhow::{anyhow, Context};
use std::process::ExitCode;

/// The order of a Deis bring-up: the buckets (the database restores itself from `db_wal`),
/// the store volume, the etcd keys, and the database dump last (only when WAL-E cannot).
pub const BRING_UP: [JobKind; 4] = [
    JobKind::Gateway,
    JobKind::Volume,
    JobKind::Etcd,
    JobKind::Database,
];

/// What is left for the operator after a whole-cluster restore.
const NEXT_STEPS: &str = "\
Next steps on the new cluster:
  1. deisctl start platform
     (deis-database restores itself from the WAL-E backups in db_wal when they are there)
  2. deis-backup restore finish
     (the controller re-publishes its keys, apps and domains to etcd; it runs
     `./manage.py load_db_state_to_etcd` in deis-controller, or on Deis before 1.11 saves
     every Key, App and Domain from `./manage.py shell`, and lists the apps to scale)
  3. scale every app to 0 and back as `restore finish` lists it (`deis scale web=0 -a APP`,
     then its old count) so that its containers are registered again";

/// What the user asked to restore.
pub struct RestoreArgs {
    pub selector: SetSelector,
    /// Empty means every job.
    pub only: Vec<JobKind>,
    /// Which jobs may write over what their targets hold.
    pub force: Force,
    /// The options every job's restore step reads (`force` is set per job from [`Force`]).
    pub request: RestoreRequest,
}

/// `--force`: which jobs may write over live data at their targets.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Force {
    /// No `--force`: every step refuses a target that holds other data.
    #[default]
    Nothing,
    /// A bare `--force`: every job of this restore.
    Every,
    /// `--force=JOBS`: only these.
    Jobs(Vec<JobKind>),
}

impl Force {
    fn covers(&self, kind: JobKind) -> bool {
        match self {
            Force::Nothing => false,
            Force::Every => true,
            Force::Jobs(jobs) => jobs.contains(&kind),
        }
    }
}

pub fn restore(options: &LoadOptions, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let settings = load_settings(options)?;
    let dest = open_destination(&settings)?;
    let listing = list_complete(dest.as_ref(), None)?;
    // a whole-cluster restore: every job that has a set, naming those that have none
    let whole = args.only.is_empty() && !matches!(args.selector, SetSelector::Set(_));
    let kinds: Vec<JobKind> = match &args.selector {
        SetSelector::Set(set) if args.only.is_empty() => vec![set.job],
        _ => BRING_UP
            .into_iter()
            .filter(|k| whole || args.only.contains(k))
            .collect(),
    };
    if let Force::Jobs(forced) = &args.force {
        if let Some(kind) = forced.iter().find(|k| !kinds.contains(k)) {
            return Err(anyhow!(
                "--force names {kind}, which this restore does not include ({})",
                names(&kinds)
            ));
        }
    }
    let mut refused = Vec::new();
    let mut failed = false;
    for kind in kinds {
        let Some(manifest) = find_set(&listing, &args.selector, Some(kind)) else {
            let missing = format!(
                "no complete {kind} backup set matches {:?} at {}",
                args.selector,
                dest.describe()
            );
            if whole {
                println!("{kind}: {missing}; nothing to restore for it");
                continue;
            }
            return Err(anyhow!(missing));
        };
        if whole && kind == JobKind::Database {
            if let Some(n) = wal_e_backups(dest.as_ref(), &listing, &args.selector) {
                println!(
                    "database/{}: skipped: db_wal holds {n} WAL-E base backup(s), from which \
                     deis-database restores itself when it starts (replaying the dump on top would \
                     collide); pass --only database to replay it instead",
                    manifest.run_id
                );
                continue;
            }
        }
        let mut request = args.request.clone();
        request.force = args.force.covers(kind);
        let step = jobs::job(kind)
            .restore(&settings, dest.as_ref(), manifest, &request)
            .with_context(|| format!("cannot restore {kind}/{}", manifest.run_id));
        let report = match step {
            Ok(report) => report,
            // a dry run shows the whole plan: one step's trouble does not hide the others
            Err(e) if request.dry_run => {
                eprintln!("deis-backup: error: {e:#}");
                failed = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        for line in &report.lines {
            println!("{line}");
        }
        for warning in &report.warnings {
            eprintln!("{warning}");
        }
        if report.refused {
            refused.push(kind);
        }
    }
    if !refused.is_empty() {
        eprintln!(
            "restore: refused for {}: what was refused (named above) was not written; where a \
             target holds other data, look at what is there, then pass --force={} to write over it",
            names(&refused),
            refused
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    if whole {
        println!("{NEXT_STEPS}");
    }
    Ok(if failed || !refused.is_empty() {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}

fn names(kinds: &[JobKind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The WAL-E base backups in the gateway set this restore uses, when it has any.
fn wal_e_backups(
    dest: &dyn Destination,
    listing: &Listing,
    selector: &SetSelector,
) -> Option<usize> {
    let manifest = find_set(listing, selector, Some(JobKind::Gateway))?;
    let snapshot = gateway::read_snapshot(dest, manifest).ok()?;
    Some(gateway::wal_e_base_backups(&snapshot)).filter(|n| *n > 0)
}
