//! The `database` step's report: the dump into psql in the target container, what the
//! target check found, and every statement left out or added.

use super::{verb, RestoreReport, RestoreRequest};
use crate::config::Settings;
use crate::restore::database::FilterEvent;
use crate::restore::{
    restore_database, DatabaseRestoreError, DatabaseRestoreMode, DatabaseRestoreReport,
    RestoreError,
};
use crate::store::{Destination, Manifest};
use crate::util::human_bytes;

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
