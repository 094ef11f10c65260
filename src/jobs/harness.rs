//! Runs any [`Job`]: run id and span, sweep of what interrupted runs left, the set's life
//! (begin, artifacts, manifest last), the run deadline and cancellation, metrics, the status
//! key, and retention after a kept set.
//!
//! Retry policy: the harness does not re-run a failed job. Network operations retry inside
//! their clients (the S3 layer's retry budget, etcd fail-over), and the next scheduled tick is
//! the job's retry; a failure is reported at once (metrics, status, log) so alerts see it.

use super::prune::{prune_job, PruneOptions};
use super::{Backup, Job, JobError, Run};
use crate::config::Settings;
use crate::error_chain::error_chain;
use crate::metrics::metrics;
use crate::store::{
    Cancellable, Destination, JobKind, Manifest, RunId, SetRef, ToolInfo, WarningKind,
    FORMAT_VERSION,
};
use crate::util::Cancel;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunResult {
    /// The set is complete and nothing that matters went wrong.
    Success,
    /// The set is complete and kept, but lacks something (e.g. an unreadable file).
    Partial,
    /// No set was kept.
    Failure,
}

impl RunResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RunResult::Success => "success",
            RunResult::Partial => "partial",
            RunResult::Failure => "failure",
        }
    }
}

/// What one run did.
#[derive(Debug)]
pub struct RunOutcome {
    pub job: JobKind,
    pub run_id: RunId,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub result: RunResult,
    /// The manifest of the kept set (success or partial).
    pub manifest: Option<Manifest>,
    /// Why the run failed (its whole error chain; never a secret).
    pub error: Option<String>,
    /// The failure is "not available in this build" (exit code 2 at the CLI).
    pub not_available: bool,
}

/// How often the harness looks at the deadline and the shutdown flag while a run goes on.
const TICK: Duration = Duration::from_millis(200);

/// Runs `job` once into `dest`. `shutdown` cancels the run from outside (daemon stopping).
/// Never panics on the job's behalf: every failure is in the returned outcome.
pub fn run_job(
    job: &dyn Job,
    settings: &Settings,
    dest: &dyn Destination,
    shutdown: &Cancel,
) -> RunOutcome {
    let kind = job.kind();
    let started_at = Utc::now();
    let set = SetRef {
        job: kind,
        run_id: RunId::new(started_at),
    };
    let span = tracing::info_span!("run", backup_job = %kind, set = %set.run_id);
    let _entered = span.enter();
    let deadline = job.deadline(settings);
    let label = [kind.as_str()];
    let m = metrics();
    m.running.with_label_values(&label).set(1);
    m.run_started
        .with_label_values(&label)
        .set(started_at.timestamp());
    m.run_deadline
        .with_label_values(&label)
        .set(deadline.get().as_secs() as i64);

    sweep(dest);
    let cancel = Cancel::new();
    let result = run_with_deadline(
        job,
        settings,
        dest,
        &set,
        started_at,
        &cancel,
        shutdown,
        deadline.get(),
    );
    let outcome = finish(kind, set.run_id, started_at, result, &cancel);

    m.running.with_label_values(&label).set(0);
    m.duration
        .with_label_values(&label)
        .observe((outcome.finished_at - started_at).num_milliseconds() as f64 / 1000.0);
    report(settings, &outcome);
    if outcome.manifest.is_some() {
        crate::store::refresh_index(dest, kind);
        prune_after(dest, settings, kind);
    }
    outcome
}

/// Reports an ended run: its metrics, its log line and its status key.
fn report(settings: &Settings, outcome: &RunOutcome) {
    let m = metrics();
    let label = [outcome.job.as_str()];
    m.last_run
        .with_label_values(&label)
        .set(outcome.finished_at.timestamp());
    m.count_run(outcome.job.as_str(), outcome.result.as_str());
    if let Some(manifest) = &outcome.manifest {
        m.record_success(manifest);
        m.last_success
            .with_label_values(&label)
            .set(manifest.finished_at.timestamp());
        m.last_run_partial
            .with_label_values(&label)
            .set(i64::from(outcome.result == RunResult::Partial));
        count_warnings(manifest);
    }
    log_outcome(outcome);
    super::status::publish(settings, outcome);
}

/// Removes what interrupted runs left (sets without a manifest whose writer is gone, staged
/// objects, multipart uploads). A failing sweep is logged; the run (or the daemon) goes on.
pub fn sweep(dest: &dyn Destination) {
    match dest.sweep_incomplete() {
        Ok(removed) => {
            for set in removed {
                tracing::info!(set = %set, "Removed an incomplete backup set left by an interrupted run.");
            }
        }
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "Cannot sweep incomplete backup sets; every run sweeps again before it starts.")
        }
    }
}

/// Runs the job on its own thread and waits for it, cancelling it when the deadline passes or
/// `shutdown` is set; a cancelled run then unwinds at its next write (network operations have
/// their own timeouts), and its set is discarded.
#[allow(clippy::too_many_arguments)]
fn run_with_deadline(
    job: &dyn Job,
    settings: &Settings,
    dest: &dyn Destination,
    set: &SetRef,
    started_at: DateTime<Utc>,
    cancel: &Cancel,
    shutdown: &Cancel,
    deadline: Duration,
) -> Result<Manifest, JobError> {
    let until = Instant::now() + deadline;
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let span = tracing::Span::current();
        scope.spawn(move || {
            let _entered = span.enter();
            let guarded = Cancellable::new(dest, cancel.clone());
            let mut run = Run::new(settings, &guarded, set.clone(), started_at, cancel.clone());
            let result = job
                .backup(&mut run)
                .and_then(|backup| complete(&mut run, backup));
            let _ = tx.send(result);
        });
        loop {
            match rx.recv_timeout(TICK) {
                Ok(result) => return result,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(JobError::Cancelled(
                        "the run's thread ended without a result".into(),
                    ))
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if cancel.is_cancelled() {
                continue;
            }
            if let Some(reason) = shutdown.reason() {
                tracing::warn!(reason = %reason, "Cancelling the run.");
                cancel.cancel(reason);
            } else if Instant::now() >= until {
                let reason = format!(
                    "the run passed its deadline of {} ({})",
                    crate::config::ConfigDuration(deadline),
                    job.deadline_key()
                );
                tracing::error!(reason = %reason, "Cancelling the run.");
                cancel.cancel(reason);
            }
        }
    })
}

/// Writes the manifest of a finished backup, last, which makes its set complete.
fn complete(run: &mut Run<'_>, backup: Backup) -> Result<Manifest, JobError> {
    run.check_cancelled()?;
    let pending = run
        .take_pending()
        .ok_or(JobError::NoSet { job: run.set.job })?;
    let stats = match backup.stats {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        job: run.set.job,
        run_id: run.set.run_id.clone(),
        started_at: run.started_at,
        finished_at: Utc::now(),
        host: crate::util::host_name(),
        tool: ToolInfo::this_build(),
        source: backup.source,
        artifacts: backup.artifacts,
        warnings: backup.warnings,
        stats,
    };
    pending.complete(&manifest.to_json())?;
    Ok(manifest)
}

fn finish(
    job: JobKind,
    run_id: RunId,
    started_at: DateTime<Utc>,
    result: Result<Manifest, JobError>,
    cancel: &Cancel,
) -> RunOutcome {
    match result {
        Ok(manifest) => {
            // the run ends when its manifest is written: last_run == last_success then
            let finished_at = manifest.finished_at;
            let partial = manifest
                .warnings
                .iter()
                .any(|w| w.kind == WarningKind::Unreadable);
            RunOutcome {
                job,
                run_id,
                started_at,
                finished_at,
                result: if partial {
                    RunResult::Partial
                } else {
                    RunResult::Success
                },
                manifest: Some(manifest),
                error: None,
                not_available: false,
            }
        }
        Err(e) => {
            let finished_at = Utc::now();
            let chain = error_chain(&e);
            let error = match cancel.reason() {
                Some(reason) if !chain.contains(&reason) => format!("{reason}; {chain}"),
                _ => chain,
            };
            RunOutcome {
                job,
                run_id,
                started_at,
                finished_at,
                result: RunResult::Failure,
                manifest: None,
                error: Some(error),
                not_available: e.is_not_available(),
            }
        }
    }
}

fn count_warnings(manifest: &Manifest) {
    let count = |kind: WarningKind| manifest.warnings.iter().filter(|w| w.kind == kind).count();
    let m = metrics();
    m.files_changed_during_read
        .inc_by(count(WarningKind::ChangedDuringRead) as u64);
    m.files_unreadable
        .inc_by(count(WarningKind::Unreadable) as u64);
}

fn log_outcome(outcome: &RunOutcome) {
    match (&outcome.manifest, &outcome.error) {
        (Some(manifest), _) if outcome.result == RunResult::Partial => {
            let unreadable: Vec<&str> = manifest
                .warnings
                .iter()
                .filter(|w| w.kind == WarningKind::Unreadable)
                .map(|w| w.path.as_str())
                .collect();
            tracing::error!(unreadable = ?unreadable, "The run is partial: the set is kept, but these files could not be read. Check their permissions or the disk.");
        }
        (Some(manifest), _) => tracing::info!(
            bytes_written = manifest.stored_bytes(),
            warnings = manifest.warnings.len(),
            "The run succeeded."
        ),
        (None, Some(error)) => tracing::error!(error = %error, "The run failed; no set was kept."),
        (None, None) => {}
    }
}

/// Applies retention to the job after a kept set; a failing prune is logged, the run stands.
fn prune_after(dest: &dyn Destination, settings: &Settings, job: JobKind) {
    let options = PruneOptions {
        dry_run: false,
        now: Utc::now(),
    };
    match prune_job(dest, settings, job, &options) {
        Ok(report) if !report.removed.is_empty() || report.objects_removed > 0 => {
            tracing::info!(
                removed = ?report.removed,
                objects_removed = report.objects_removed,
                "Retention removed old sets."
            )
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "Retention could not prune; the run's set is kept.")
        }
    }
}

/// Records a scheduled run that could not start (e.g. the destination cannot be opened) as a
/// failure: metrics, log and status key, as for a run that failed.
pub fn record_unstarted(kind: JobKind, settings: &Settings, error: &str) {
    let now = Utc::now();
    let outcome = RunOutcome {
        job: kind,
        run_id: RunId::new(now),
        started_at: now,
        finished_at: now,
        result: RunResult::Failure,
        manifest: None,
        error: Some(format!("cannot open the backup destination: {error}")),
        not_available: false,
    };
    let span = tracing::info_span!("run", backup_job = %kind, set = %outcome.run_id);
    let _entered = span.enter();
    report(settings, &outcome);
}

#[cfg(test)]
#[path = "harness_tests.rs"]
mod tests;
