//! Each job's restore step as the `Job` trait exposes it: run the job's restore and describe
//! what it did (or, in a dry run, would do) in lines for the operator. The commands layer only
//! prints a [`RestoreReport`].

use super::etcd::restore_etcd;
use super::gateway::restore_gateway;
use super::{restore_database, restore_volume, RestoreError};
use crate::config::Settings;
use crate::store::{Destination, Manifest};
use crate::util::human_bytes;

/// One job's restore step: the set into the cluster, described for the operator.
pub type RestoreStep = fn(
    &Settings,
    &dyn Destination,
    &Manifest,
    &RestoreRequest,
) -> Result<RestoreReport, RestoreError>;

/// What the operator asked a restore to do (the command line's options).
#[derive(Debug, Clone, Default)]
pub struct RestoreRequest {
    /// Read and check everything, write nothing.
    pub dry_run: bool,
    /// Restore over a target that is not empty (volume).
    pub force: bool,
    /// The database container to restore into (default: `database.container`).
    pub container: Option<String>,
    /// etcd: also write the keys skipped by default.
    pub include_all: bool,
    /// etcd: the etcd to write into (default: `etcd.endpoints`).
    pub etcd_target: Option<String>,
    /// gateway: only these buckets of the snapshot (empty: all).
    pub buckets: Vec<String>,
}

/// What one job's restore did, for the operator.
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// What was (or would be) done, one line each, prefixed with the set.
    pub lines: Vec<String>,
    /// What the operator should look at (printed to stderr).
    pub warnings: Vec<String>,
    /// Entries were refused: what is there is incomplete (the command exits 1).
    pub refused: bool,
}

impl RestoreReport {
    fn line(&mut self, text: String) {
        self.lines.push(text);
    }
}

fn verb(dry_run: bool) -> &'static str {
    if dry_run {
        "would restore"
    } else {
        "restoring"
    }
}

/// The `volume` step: the archive into `volume.path`.
pub fn volume(
    settings: &Settings,
    dest: &dyn Destination,
    manifest: &Manifest,
    request: &RestoreRequest,
) -> Result<RestoreReport, RestoreError> {
    let set = format!("volume/{}", manifest.run_id);
    let target = &settings.volume.path;
    let mut report = RestoreReport::default();
    report.line(format!(
        "{set}: {} into {}",
        verb(request.dry_run),
        target.display()
    ));
    let done = restore_volume(dest, manifest, target, request.dry_run, request.force)?;
    report.line(format!(
        "{set}: {} files ({}), {} folders, {} symlinks, {} hard links{}",
        done.files,
        human_bytes(done.bytes),
        done.directories,
        done.symlinks,
        done.hard_links,
        if request.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    ));
    if let Some(note) = &done.ownership_note {
        report.warnings.push(format!("volume: warning: {note}"));
    }
    if !done.refused.is_empty() {
        report.refused = true;
        for (entry, reason) in &done.refused {
            report
                .warnings
                .push(format!("volume: refused entry {entry:?}: {reason}"));
        }
        report.warnings.push(format!(
            "volume: {} archive entries refused; nothing was written for them",
            done.refused.len()
        ));
    }
    Ok(report)
}

/// The `database` step: the dump into `psql` in the target container.
pub fn database(
    settings: &Settings,
    dest: &dyn Destination,
    manifest: &Manifest,
    request: &RestoreRequest,
) -> Result<RestoreReport, RestoreError> {
    let set = format!("database/{}", manifest.run_id);
    let container = request
        .container
        .as_deref()
        .unwrap_or(&settings.database.container);
    let mut report = RestoreReport::default();
    report.line(format!(
        "{set}: {} into container {container}",
        verb(request.dry_run)
    ));
    let done = restore_database(
        dest,
        manifest,
        &settings.database,
        container,
        request.dry_run,
    )?;
    for statement in &done.skipped_statements {
        report.line(format!(
            "{set}: skipped `{statement}` (the role exists in every cluster)"
        ));
    }
    if done.dry_run {
        report.line(format!(
            "{set}: would run `{}` in container {}, feeding it {} of SQL (dry run: nothing executed)",
            done.command,
            done.container,
            human_bytes(done.bytes)
        ));
    } else {
        report.line(format!(
            "{set}: restored {} of SQL through `{}` in container {} (exit code 0)",
            human_bytes(done.bytes),
            done.command,
            done.container
        ));
        if !done.stderr.is_empty() {
            report
                .warnings
                .push(format!("database: psql said: {}", done.stderr));
        }
    }
    Ok(report)
}

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
    let done = restore_etcd(
        dest,
        manifest,
        &target,
        request.dry_run,
        request.include_all,
    )?;
    let mut report = RestoreReport::default();
    let verb = if request.dry_run {
        "would write"
    } else {
        "wrote"
    };
    for key in &done.plan.write {
        report.line(format!("{set}: {verb} {}", key.key));
    }
    for (key, reason) in &done.plan.skip {
        report.line(format!("{set}: skip {key}: {reason}"));
    }
    let into = target.endpoints.join(",");
    report.line(match &done.target_api {
        Some(api) => format!(
            "{set}: {} keys written into {into} (API {api}), {} skipped",
            done.written,
            done.plan.skip.len()
        ),
        None => format!(
            "{set}: {} keys would be written into {into}, {} skipped (dry run: nothing written)",
            done.plan.write.len(),
            done.plan.skip.len()
        ),
    });
    Ok(report)
}

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
    let done = restore_gateway(
        dest,
        manifest,
        &settings.gateway,
        &settings.timeouts,
        &request.buckets,
        request.dry_run,
    )?;
    for b in &done.buckets {
        report.line(if done.dry_run {
            format!(
                "{set}: bucket {}: would upload {} objects ({}), creating the bucket if missing (dry run: nothing written)",
                b.name,
                b.objects,
                human_bytes(b.bytes)
            )
        } else {
            format!(
                "{set}: bucket {}{}: {} objects ({}): {} uploaded ({}), {} already identical",
                b.name,
                if b.created { " (created)" } else { "" },
                b.objects,
                human_bytes(b.bytes),
                b.uploaded,
                human_bytes(b.uploaded_bytes),
                b.skipped
            )
        });
    }
    Ok(report)
}
