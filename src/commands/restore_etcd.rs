//! `deis-backup restore --only etcd`: the etcd branch of the restore command.

use super::restore::RestoreArgs;
use crate::config::Settings;
use crate::restore::etcd::restore_etcd;
use crate::store::{find_set, Destination, JobKind, Listing};
use anyhow::anyhow;

/// Restores the selected `etcd` set into the target etcd (`--etcd-target`, else the
/// configured endpoints). Prints keys, never values.
pub fn restore_etcd_job(
    settings: &Settings,
    dest: &dyn Destination,
    listing: &Listing,
    args: &RestoreArgs,
) -> anyhow::Result<()> {
    let manifest = find_set(listing, &args.selector, Some(JobKind::Etcd)).ok_or_else(|| {
        anyhow!(
            "no complete etcd backup set matches {:?} at {}",
            args.selector,
            dest.describe()
        )
    })?;
    let mut target = settings.etcd.clone();
    if let Some(url) = &args.etcd_target {
        target.endpoints = url.split(',').map(|s| s.trim().to_string()).collect();
    }
    if target.endpoints.is_empty() && !args.dry_run {
        return Err(anyhow!(
            "no target etcd: pass --etcd-target URL or configure etcd.endpoints (ETCD=host:port)"
        ));
    }
    let run = &manifest.run_id;
    let report = restore_etcd(dest, manifest, &target, args.dry_run, args.include_all)?;
    let verb = if args.dry_run { "would write" } else { "wrote" };
    for key in &report.plan.write {
        println!("etcd/{run}: {verb} {}", key.key);
    }
    for (key, reason) in &report.plan.skip {
        println!("etcd/{run}: skip {key}: {reason}");
    }
    let into = target.endpoints.join(",");
    match &report.target_api {
        Some(api) => println!(
            "etcd/{run}: {} keys written into {into} (API {api}), {} skipped",
            report.written,
            report.plan.skip.len()
        ),
        None => println!(
            "etcd/{run}: {} keys would be written into {into}, {} skipped (dry run: nothing written)",
            report.plan.write.len(),
            report.plan.skip.len()
        ),
    }
    Ok(())
}
