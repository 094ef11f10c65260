//! `deis-backup list`: the complete backup sets at the destination.

use super::{human_bytes, load_settings, open_destination};
use crate::config::LoadOptions;
use crate::store::{list_complete, JobKind};
use std::process::ExitCode;

pub fn list(options: &LoadOptions, job: Option<JobKind>, json: bool) -> anyhow::Result<ExitCode> {
    let settings = load_settings(options)?;
    let dest = open_destination(&settings)?;
    let listing = list_complete(dest.as_ref(), job)?;
    for (set, reason) in &listing.unreadable {
        tracing::warn!(set = %set, "Skipped a backup set: {reason}.");
    }
    if json {
        let rows: Vec<_> = listing
            .complete
            .iter()
            .map(|m| {
                serde_json::json!({
                    "set": format!("{}/{}", m.job, m.run_id),
                    "job": m.job,
                    "run_id": m.run_id,
                    "started_at": m.started_at,
                    "finished_at": m.finished_at,
                    "host": m.host,
                    "stored_bytes": m.stored_bytes(),
                    "warnings": m.warnings.len(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if listing.complete.is_empty() {
        eprintln!("No complete backup sets at {}.", dest.describe());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<34} {:<21} {:>10} {:>8}",
        "SET", "FINISHED (UTC)", "SIZE", "WARNINGS"
    );
    for m in &listing.complete {
        println!(
            "{:<34} {:<21} {:>10} {:>8}",
            format!("{}/{}", m.job, m.run_id),
            m.finished_at.format("%Y-%m-%d %H:%M:%S"),
            human_bytes(m.stored_bytes()),
            m.warnings.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
