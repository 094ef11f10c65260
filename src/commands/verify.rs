//! `deis-backup verify [SET|latest]`: re-read a set and check it against its manifest.

use super::{human_bytes, load_settings, open_destination, EXIT_FAILURE};
use crate::config::LoadOptions;
use crate::jobs::verify::verify_set_with;
use crate::store::{find_set, list_complete, JobKind, SetSelector};
use anyhow::anyhow;
use std::process::ExitCode;

pub fn verify(
    options: &LoadOptions,
    selector: &SetSelector,
    job: Option<JobKind>,
    read_data: bool,
) -> anyhow::Result<ExitCode> {
    let settings = load_settings(options)?;
    let dest = open_destination(&settings)?;
    let listing = list_complete(dest.as_ref(), job)?;
    let manifest = find_set(&listing, selector, job).ok_or_else(|| {
        anyhow!(
            "no complete backup set matches {selector:?} at {}",
            dest.describe()
        )
    })?;
    let set = format!("{}/{}", manifest.job, manifest.run_id);
    let checks = verify_set_with(dest.as_ref(), manifest, read_data)?;
    let mut ok = true;
    for check in &checks {
        if check.problems.is_empty() {
            println!("{set} {}: OK ({})", check.name, human_bytes(check.size));
        } else {
            ok = false;
            for problem in &check.problems {
                println!("{set} {}: FAILED: {problem}", check.name);
            }
        }
    }
    if ok {
        println!("{set}: verified");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{set}: verification FAILED");
        Ok(ExitCode::from(EXIT_FAILURE))
    }
}
