//! The `etcd` step's report: keys written, overwritten and skipped (named, values never).

use super::{RestoreReport, RestoreRequest};
use crate::config::Settings;
use crate::restore::etcd::{restore_etcd, some_keys, EtcdRestoreMode};
use crate::restore::RestoreError;
use crate::store::{Destination, Manifest};

/// The `etcd` step: the exported keys into the target etcd (keys named, values never).
pub fn etcd(
    settings: &Settings,
    dest: &dyn Destination,
    manifest: &Manifest,
    request: &RestoreRequest,
) -> Result<RestoreReport, RestoreError> {
    let set = format!("etcd/{}", manifest.run_id);
    let mut target = settings.etcd.clone();
    if let Some(url) = &request.etcd_target {
        target.endpoints = url.split(',').map(|s| s.trim().to_string()).collect();
    }
    if target.endpoints.is_empty() && !request.dry_run {
        return Err(RestoreError::NoEtcdTarget);
    }
    let mode = EtcdRestoreMode {
        dry_run: request.dry_run,
        include_all: request.include_all,
        force: request.force,
    };
    let done = restore_etcd(dest, manifest, &target, mode)?;
    let plan = &done.plan;
    let mut report = RestoreReport::default();
    let (write, overwrite) = if done.dry_run || done.refused {
        ("would write", "would overwrite")
    } else {
        ("wrote", "overwrote")
    };
    for key in &plan.write {
        report.line(format!("{set}: {write} {}", key.key));
    }
    for key in &plan.overwrite {
        if done.refused {
            report.line(format!("{set}: refused: {} holds another value", key.key));
        } else {
            report.line(format!("{set}: {overwrite} {}", key.key));
        }
    }
    for (key, reason) in &plan.skip {
        report.line(format!("{set}: skip {key}: {reason}"));
    }
    let into = target.endpoints.join(",");
    let counts = format!(
        "{} new, {} with another value, {} identical, {} skipped",
        plan.write.len(),
        plan.overwrite.len(),
        plan.identical.len(),
        plan.skip.len()
    );
    report.line(match (&done.target_api, done.refused, done.dry_run) {
        (None, _, _) => format!(
            "{set}: {} keys would be written, {} skipped (no target etcd to compare with; dry run: nothing written)",
            plan.write.len(),
            plan.skip.len()
        ),
        (Some(api), true, _) => format!(
            "{set}: refused; nothing was written into {into} (API {api}): {counts}"
        ),
        (Some(api), false, true) => format!(
            "{set}: into {into} (API {api}): {counts} (dry run: nothing written)"
        ),
        (Some(api), false, false) => format!(
            "{set}: {} keys written into {into} (API {api}): {counts}",
            done.written
        ),
    });
    if done.refused {
        report.refused = true;
        report.warnings.push(format!(
            "etcd: refused: the target etcd holds {} key(s) with other values than the export \
             ({}); pass --force=etcd to overwrite them",
            plan.overwrite.len(),
            some_keys(&plan.overwrite, 5)
        ));
    }
    Ok(report)
}
