//! The `volume` step's report: the archive into `volume.path`, refused over a non-empty
//! folder without `--force`.

use super::{verb, RestoreReport, RestoreRequest};
use crate::config::Settings;
use crate::restore::{restore_volume, RestoreError};
use crate::store::{Destination, Manifest};
use crate::util::human_bytes;

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
            format!(
                "; {} of them already at the target (replaced only with --force=volume); dry run: \
                 nothing written",
                done.existing
            )
        } else {
            String::new()
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
