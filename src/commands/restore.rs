//! `deis-backup restore [SET|latest] --only JOBS`: put a backup back, job by job, each through
//! its own restore step (`Job::restore`).

use super::{load_settings, open_destination, EXIT_FAILURE};
use crate::config::LoadOptions;
use crate::jobs;
use crate::restore::RestoreRequest;
use crate::store::{find_set, list_complete, JobKind, SetSelector};
use anyhow::{anyhow, Context};
use std::process::ExitCode;

/// What the user asked to restore.
pub struct RestoreArgs {
    pub selector: SetSelector,
    /// Empty means every job.
    pub only: Vec<JobKind>,
    /// The options every job's restore step reads.
    pub request: RestoreRequest,
}

pub fn restore(options: &LoadOptions, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let settings = load_settings(options)?;
    let dest = open_destination(&settings)?;
    let listing = list_complete(dest.as_ref(), None)?;
    let kinds: Vec<JobKind> = match (&args.selector, args.only.is_empty()) {
        (SetSelector::Set(set), true) => vec![set.job],
        (_, true) => JobKind::ALL.to_vec(),
        (_, false) => args.only.clone(),
    };
    let mut refused = false;
    for kind in kinds {
        let manifest = find_set(&listing, &args.selector, Some(kind)).ok_or_else(|| {
            anyhow!(
                "no complete {kind} backup set matches {:?} at {}",
                args.selector,
                dest.describe()
            )
        })?;
        let report = jobs::job(kind)
            .restore(&settings, dest.as_ref(), manifest, &args.request)
            .with_context(|| format!("cannot restore {kind}/{}", manifest.run_id))?;
        for line in &report.lines {
            println!("{line}");
        }
        for warning in &report.warnings {
            eprintln!("{warning}");
        }
        refused |= report.refused;
    }
    Ok(if refused {
        ExitCode::from(EXIT_FAILURE)
    } else {
        ExitCode::SUCCESS
    })
}
