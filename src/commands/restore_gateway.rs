//! The `gateway` branch of `deis-backup restore`: a snapshot back into the store-gateway.

use super::{human_bytes, RestoreArgs};
use crate::config::Settings;
use crate::restore::gateway::restore_gateway;
use crate::restore::RestoreError;
use crate::store::{find_set, Destination, JobKind, Listing};
use anyhow::anyhow;

/// Restores the selected gateway snapshot (its `--buckets`, or all) and prints what it did,
/// or with `--dry-run` the plan: buckets, objects, bytes.
pub fn restore_gateway_job(
    settings: &Settings,
    dest: &dyn Destination,
    listing: &Listing,
    args: &RestoreArgs,
) -> anyhow::Result<()> {
    let manifest = find_set(listing, &args.selector, Some(JobKind::Gateway)).ok_or_else(|| {
        anyhow!(
            "no complete gateway backup set matches {:?} at {}",
            args.selector,
            dest.describe()
        )
    })?;
    let endpoint = settings
        .gateway
        .endpoint
        .as_deref()
        .unwrap_or("(not configured)");
    let set = format!("gateway/{}", manifest.run_id);
    let verb = if args.dry_run {
        "would restore"
    } else {
        "restoring"
    };
    println!("{set}: {verb} into the gateway at {endpoint}");
    let report = restore_gateway(
        dest,
        manifest,
        &settings.gateway,
        &settings.timeouts,
        &args.buckets,
        args.dry_run,
    )
    .map_err(RestoreError::from)?;
    for b in &report.buckets {
        if report.dry_run {
            println!(
                "{set}: bucket {}: would upload {} objects ({}), creating the bucket if missing (dry run: nothing written)",
                b.name,
                b.objects,
                human_bytes(b.bytes)
            );
        } else {
            println!(
                "{set}: bucket {}{}: {} objects ({}): {} uploaded ({}), {} already identical",
                b.name,
                if b.created { " (created)" } else { "" },
                b.objects,
                human_bytes(b.bytes),
                b.uploaded,
                human_bytes(b.uploaded_bytes),
                b.skipped
            );
        }
    }
    Ok(())
}
