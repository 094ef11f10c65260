//! Retention of one job: decide with the pure policy (`store::retention`), delete the sets it
//! does not keep, and for the gateway job mark and sweep the shared object store: an object is
//! deleted only when no kept snapshot references it and it is older than the grace period.

use super::gateway::referenced::{mark_snapshot, MarkSet};
use super::gateway::SnapshotError;
use crate::config::Settings;
use crate::metrics::metrics;
use crate::store::retention::{self, Candidate, RetentionError};
use crate::store::{
    delete_sets, list_complete, refresh_index, sweep_objects, Destination, JobKind, Manifest,
    ObjectSweep, SetRef, StoreError,
};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// How a prune runs.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Decide and report, delete nothing.
    pub dry_run: bool,
    /// "Now" for the grace period of gateway objects (tests pass a fake clock).
    pub now: DateTime<Utc>,
}

/// What a prune of one job kept and removed.
#[derive(Debug, Default, Clone)]
pub struct PruneReport {
    /// Kept sets, each with the rules that keep it (e.g. `last 1/3`, `daily 2026-11-25`).
    pub kept: Vec<(String, Vec<String>)>,
    /// Removed (or, in a dry run, to-be-removed) sets.
    pub removed: Vec<String>,
    /// Gateway objects removed (or to be removed).
    pub objects_removed: u64,
    /// Sets whose manifest is unusable: neither kept nor removed, left for a human.
    pub unreadable: Vec<(String, String)>,
    /// The gateway object sweep, when it ran.
    pub objects: Option<ObjectSweep>,
    /// Why the gateway object sweep did not run, when it was due and did not.
    pub objects_skipped: Option<String>,
}

/// Why a prune failed.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("retention of the {job} sets")]
    Policy {
        job: JobKind,
        #[source]
        source: RetentionError,
    },
    #[error("deleted {deleted} of {total} {job} set(s) the policy removes, then failed")]
    Delete {
        job: JobKind,
        deleted: usize,
        total: usize,
        #[source]
        source: StoreError,
    },
    #[error(
        "no gateway object was deleted: the snapshot of kept set {set} cannot be read, so the \
         objects it references are unknown (check that set with `deis-backup verify {set}`)"
    )]
    Mark {
        set: SetRef,
        #[source]
        source: Box<SnapshotError>,
    },
    #[error(
        "no gateway object was deleted: the manifest of {set} is unusable ({reason}), so the \
         objects its snapshot references are unknown; repair or delete that set"
    )]
    UnreadableSet { set: String, reason: String },
}

/// Applies the retention policy of `settings` to the complete sets of `job` at `dest`.
pub fn prune_job(
    dest: &dyn Destination,
    settings: &Settings,
    job: JobKind,
    options: &PruneOptions,
) -> Result<PruneReport, PruneError> {
    let listing = list_complete(dest, Some(job))?;
    let by_name: HashMap<String, &Manifest> = listing
        .complete
        .iter()
        .map(|m| (set_of(m).to_string(), m))
        .collect();
    let candidates: Vec<Candidate> = listing
        .complete
        .iter()
        .map(|m| Candidate {
            name: set_of(m).to_string(),
            started_at: m.started_at,
        })
        .collect();
    let plan = retention::plan(&candidates, &settings.retention)
        .map_err(|source| PruneError::Policy { job, source })?;
    let mut report = PruneReport {
        kept: plan
            .keep
            .iter()
            .map(|k| (k.set.name.clone(), k.reasons.clone()))
            .collect(),
        removed: plan.remove.iter().map(|c| c.name.clone()).collect(),
        unreadable: listing
            .unreadable
            .iter()
            .map(|(set, reason)| (set.to_string(), reason.clone()))
            .collect(),
        ..PruneReport::default()
    };
    if !options.dry_run && !plan.remove.is_empty() {
        let doomed: Vec<SetRef> = plan
            .remove
            .iter()
            .map(|c| set_of(by_name[&c.name]))
            .collect();
        let (deleted, result) = delete_sets(dest, &doomed);
        if deleted > 0 {
            refresh_index(dest, job);
        }
        metrics()
            .retention_deleted
            .with_label_values(&[job.as_str(), "set"])
            .inc_by(deleted as u64);
        result.map_err(|source| PruneError::Delete {
            job,
            deleted,
            total: doomed.len(),
            source,
        })?;
    }
    if job == JobKind::Gateway {
        let kept: Vec<&Manifest> = plan.keep.iter().map(|k| by_name[&k.set.name]).collect();
        collect_objects(
            dest,
            settings,
            &kept,
            &listing.unreadable,
            options,
            &mut report,
        )?;
    }
    Ok(report)
}

fn set_of(m: &Manifest) -> SetRef {
    SetRef {
        job: m.job,
        run_id: m.run_id.clone(),
    }
}

/// Mark (the objects the kept snapshots reference) and sweep (the others, once older than the
/// grace period). Skipped while a gateway set is being written: a running job may reuse an
/// old object by its address, which the mark cannot see yet.
fn collect_objects(
    dest: &dyn Destination,
    settings: &Settings,
    kept: &[&Manifest],
    unreadable: &[(SetRef, String)],
    options: &PruneOptions,
    report: &mut PruneReport,
) -> Result<(), PruneError> {
    let Some(store) = dest.objects() else {
        return Ok(());
    };
    if let Some((set, reason)) = unreadable.first() {
        return Err(PruneError::UnreadableSet {
            set: set.to_string(),
            reason: reason.clone(),
        });
    }
    if kept.is_empty() {
        // an empty listing marks nothing and the sweep would take every object: never that
        report.objects_skipped =
            Some("no complete gateway set is listed; objects are left alone".into());
        return Ok(());
    }
    if let Some(set) = store.gateway_writer()? {
        report.objects_skipped = Some(format!(
            "gateway set {set} is being written; objects are collected by a later prune"
        ));
        return Ok(());
    }
    let mut marks = MarkSet::new();
    for manifest in kept {
        mark_snapshot(dest, manifest, &mut marks).map_err(|source| PruneError::Mark {
            set: set_of(manifest),
            source: Box::new(source),
        })?;
    }
    let grace = chrono::Duration::from_std(settings.retention.object_grace.get())
        .unwrap_or(chrono::Duration::MAX);
    let cutoff = options
        .now
        .checked_sub_signed(grace)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let sweep = sweep_objects(store, &marks, cutoff, options.dry_run)?;
    if let Some(set) = &sweep.deferred {
        report.objects_skipped = Some(format!(
            "gateway set {set} started being written during the prune; objects are collected \
             by a later prune"
        ));
        return Ok(());
    }
    if !options.dry_run {
        metrics()
            .retention_deleted
            .with_label_values(&[JobKind::Gateway.as_str(), "object"])
            .inc_by(sweep.removed);
    }
    report.objects_removed = sweep.removed;
    report.objects = Some(sweep);
    Ok(())
}

#[cfg(test)]
#[path = "prune_tests.rs"]
mod tests;
