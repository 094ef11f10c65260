//! Each job's restore step as the `Job` trait exposes it: run the job's restore and describe
//! what it did (or, in a dry run, would do) in lines for the operator. The commands layer only
//! prints a [`RestoreReport`].

use super::database::FilterEvent;
use super::etcd::{restore_etcd, some_keys, EtcdRestoreMode};
use super::gateway::{restore_gateway, BucketRestore, GatewayRestoreMode, GatewayRestoreReport};
use super::{
    restore_database, restore_volume, DatabaseRestoreError, DatabaseRestoreMode,
    DatabaseRestoreReport, RestoreError,
};
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
    /// Write over what the target holds: a non-empty volume folder, gateway objects and etcd
    /// keys with other content, a database cluster with data. The command sets it per job.
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
    let present = entries_in(target).map_err(|source| RestoreError::Target {
        path: target.clone(),
        source,
    })?;
    if present > 0 && !request.force {
        report.refused = true;
        report.warnings.push(format!(
            "volume: refused: the target {} is not empty ({present} entries); pass \
             --force=volume to restore over what is there",
            target.display()
        ));
        if !request.dry_run {
            report.line(format!("{set}: refused; nothing was written"));
            return Ok(report);
        }
    } else if present > 0 {
        report.line(format!(
            "{set}: the target holds {present} entries; archive entries of the same name are \
             replaced (--force)"
        ));
    }
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

/// How many entries the folder `path` holds (0 when it does not exist yet).
fn entries_in(path: &std::path::Path) -> std::io::Result<usize> {
    match std::fs::read_dir(path) {
        Ok(entries) => Ok(entries.count()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

/// The `database` step: the dump into `psql` in the target container, which is inspected
/// first: refused when it holds data (unless forced), its existing roles and empty databases
/// used as they are.
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
    let mode = DatabaseRestoreMode {
        dry_run: request.dry_run,
        force: request.force,
    };
    let mut report = RestoreReport::default();
    report.line(format!(
        "{set}: {} into container {container}",
        verb(request.dry_run)
    ));
    let done = match restore_database(dest, manifest, settings, container, mode) {
        Err(RestoreError::Database(DatabaseRestoreError::LiveData { found, .. })) => {
            report.refused = true;
            report.line(format!("{set}: refused; nothing was written"));
            report.warnings.push(format!(
                "database: refused: container {container} already holds data ({found}); pass \
                 --force=database to drop and recreate the databases the dump creates (roles \
                 are kept)"
            ));
            return Ok(report);
        }
        other => other?,
    };
    report.lines.extend(
        database_lines(&done, request.force)
            .into_iter()
            .map(|line| format!("{set}: {line}")),
    );
    if let Some(found) = &done.refusal {
        report.refused = true;
        report.warnings.push(format!(
            "database: refused: container {container} already holds data ({found}); pass \
             --force=database to drop and recreate the databases the dump creates (roles are \
             kept)"
        ));
    }
    if !done.dry_run && !done.stderr.is_empty() {
        report
            .warnings
            .push(format!("database: psql said: {}", done.stderr));
    }
    Ok(report)
}

/// What a database restore did (or would do), one line each, in dump order.
fn database_lines(done: &DatabaseRestoreReport, force: bool) -> Vec<String> {
    let dry = done.dry_run;
    let would = |did: &str, will: &str| {
        if dry {
            will.to_string()
        } else {
            did.to_string()
        }
    };
    let mut lines = Vec::new();
    if let Some(found) = &done.emptied_postgres {
        lines.push(if force {
            format!(
                "{} database postgres ({found}) and {} it empty before the dump (--force)",
                would("dropped", "would drop"),
                would("created", "create")
            )
        } else {
            format!("refused without --force: database postgres holds {found} (with --force it would be dropped and created empty before the dump)")
        });
    }
    for event in &done.events {
        lines.push(match event {
            FilterEvent::RoleSkipped { statement } => format!(
                "{} `{statement}`: the role exists in the target (its ALTER ROLE still applies)",
                would("skipped", "would skip")
            ),
            FilterEvent::DatabaseCreated { name } => {
                format!("{} database {name}", would("created", "would create"))
            }
            FilterEvent::DatabaseUsed {
                name,
                statement,
                owner_set,
            } => format!(
                "{} the existing empty database {name}: skipped `{statement}`{}",
                would("used", "would use"),
                owner_set
                    .as_ref()
                    .map(|s| format!(", ran `{s}` instead"))
                    .unwrap_or_default()
            ),
            FilterEvent::DatabaseRecreated { name, found } if force => format!(
                "{} database {name} ({found}) and {} it from the dump (--force)",
                would("dropped", "would drop"),
                would("recreated", "recreate")
            ),
            FilterEvent::DatabaseRecreated { name, found } => format!(
                "refused without --force: database {name} holds {found} (with --force it would be dropped and recreated from the dump)"
            ),
        });
    }
    for database in &done.untouched {
        lines.push(format!(
            "{database} is not in the dump: {}",
            would("left as it is", "would be left as it is")
        ));
    }
    lines.push(if dry {
        format!(
            "would run `{}` in container {}, feeding it {} of SQL (dry run: nothing executed)",
            done.command,
            done.container,
            human_bytes(done.bytes)
        )
    } else {
        format!(
            "restored {} of SQL through `{}` in container {} (exit code 0)",
            human_bytes(done.bytes),
            done.command,
            done.container
        )
    });
    lines
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
