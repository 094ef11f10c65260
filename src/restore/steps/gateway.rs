//! The `gateway` step's report: per bucket what was (or would be) uploaded, overwritten and
//! left alone, and the objects that make it refuse.

use super::{verb, RestoreReport, RestoreRequest};
use crate::config::Settings;
use crate::restore::gateway::{
    restore_gateway, BucketRestore, GatewayRestoreMode, GatewayRestoreReport,
};
use crate::restore::RestoreError;
use crate::store::{Destination, Manifest};
use crate::util::human_bytes;

/// The `gateway` step: the snapshot's buckets (or `--buckets`) into the store-gateway.
pub fn gateway(
    settings: &Settings,
    dest: &dyn Destination,
    manifest: &Manifest,
    request: &RestoreRequest,
) -> Result<RestoreReport, RestoreError> {
    let set = format!("gateway/{}", manifest.run_id);
    let endpoint = settings
        .gateway
        .endpoint
        .as_deref()
        .unwrap_or("(not configured)");
    let mut report = RestoreReport::default();
    report.line(format!(
        "{set}: {} into the gateway at {endpoint}",
        verb(request.dry_run)
    ));
    let mode = GatewayRestoreMode {
        dry_run: request.dry_run,
        force: request.force,
    };
    let done = restore_gateway(
        dest,
        manifest,
        &settings.gateway,
        &settings.timeouts,
        &request.buckets,
        mode,
    )?;
    for b in &done.buckets {
        report.line(gateway_bucket_line(&set, &done, b));
        if b.conflicts > 0 {
            report.warnings.push(format!(
                "gateway: refused: bucket {} holds {} object(s) with other content than the \
                 snapshot ({}); pass --force=gateway to overwrite them",
                b.name, b.conflicts, b.conflict_keys
            ));
        }
    }
    if done.refused {
        report.refused = true;
        report.line(format!(
            "{set}: refused; nothing was written to the gateway"
        ));
    } else if done.dry_run {
        report.line(format!("{set}: dry run: nothing written"));
    }
    Ok(report)
}

/// One bucket's line of the gateway step: what was (or would be) uploaded, overwritten and
/// left alone.
fn gateway_bucket_line(set: &str, done: &GatewayRestoreReport, b: &BucketRestore) -> String {
    let name = &b.name;
    let total = format!("{} objects ({})", b.objects, human_bytes(b.bytes));
    if !done.compared {
        return format!(
            "{set}: bucket {name}: {total} to upload (no gateway configured to compare with)"
        );
    }
    let upload = format!("{} ({})", b.uploaded, human_bytes(b.uploaded_bytes));
    let alone = format!(
        "{} already identical, {} not in the snapshot (left alone)",
        b.identical, b.extra
    );
    let bucket = if !b.created {
        format!("bucket {name}")
    } else if done.dry_run || done.refused {
        format!("bucket {name} (to be created)")
    } else {
        format!("bucket {name} (created)")
    };
    if done.refused {
        format!(
            "{set}: {bucket}: {total}: {upload} to upload, {} with other content, {alone}",
            b.conflicts
        )
    } else if done.dry_run {
        format!(
            "{set}: {bucket}: {total}: would upload {upload}, overwrite {}, {alone}",
            b.overwritten
        )
    } else {
        format!(
            "{set}: {bucket}: {total}: uploaded {upload}, overwrote {}, {alone}",
            b.overwritten
        )
    }
}
