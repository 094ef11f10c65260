//! Cron scheduling of the backup jobs: one tokio task per job with a non-empty schedule, which
//! sleeps until croner's next fire time and then runs the job on a blocking thread.
//!
//! Why croner and a sleep loop rather than tokio-cron-scheduler: validation already parses
//! schedules with croner, so the daemon fires exactly what `config check` accepted; a reload
//! is "abort the loops, start new ones" with no job ids to track; and the settings a run uses
//! are read at fire time, so a rotated key is used from the next run on.

use crate::config::Settings;
use crate::error_chain::error_chain;
use crate::jobs::{self, run_job, RunResult};
use crate::metrics::metrics;
use crate::store::{self, JobKind};
use crate::util::Cancel;
use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The schedule of one job as a parsed cron (`None` when disabled or unparsable).
pub fn parse_schedule(cron: &str) -> Option<Cron> {
    if crate::config::schedule_is_off(cron) {
        return None;
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(cron)
        .ok()
}

/// The next fire time strictly after `now`.
pub fn next_fire(cron: &Cron, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_next_occurrence(&now, false).ok()
}

/// Seconds between the next two fire times (for the expected-interval metric).
pub fn interval_secs(cron: &Cron, now: DateTime<Utc>) -> Option<i64> {
    let first = next_fire(cron, now)?;
    let second = next_fire(cron, first)?;
    Some((second - first).num_seconds())
}

/// The running schedule loops, and which jobs have a run in progress.
pub struct Scheduler {
    loops: Vec<JoinHandle<()>>,
    running: HashMap<JobKind, Arc<AtomicBool>>,
    /// Cancels the runs started by the current loops (shutdown, loss of ownership).
    cancel: Cancel,
}

impl Scheduler {
    pub fn new() -> Self {
        Self {
            loops: Vec::new(),
            running: JobKind::ALL
                .iter()
                .map(|&j| (j, Arc::new(AtomicBool::new(false))))
                .collect(),
            cancel: Cancel::new(),
        }
    }

    /// Replaces the schedule loops by ones for `settings` (runs in progress go on).
    pub fn apply(&mut self, settings: &Settings, current: &watch::Receiver<Arc<Settings>>) {
        self.stop();
        let now = Utc::now();
        for job in jobs::registry() {
            let kind = job.kind();
            let label = [kind.as_str()];
            metrics()
                .run_deadline
                .with_label_values(&label)
                .set(job.deadline(settings).get().as_secs() as i64);
            let Some(cron) = parse_schedule(job.schedule(settings)) else {
                metrics().schedule_interval.with_label_values(&label).set(0);
                tracing::info!(backup_job = %kind, "Job disabled (no schedule).");
                continue;
            };
            if let Some(secs) = interval_secs(&cron, now) {
                metrics()
                    .schedule_interval
                    .with_label_values(&label)
                    .set(secs);
            }
            tracing::info!(backup_job = %kind, schedule = %cron.pattern, next = ?next_fire(&cron, now), "Job scheduled.");
            let running = self.running[&kind].clone();
            self.loops.push(tokio::spawn(job_loop(
                kind,
                cron,
                current.clone(),
                running,
                self.cancel.clone(),
            )));
        }
    }

    /// Stops scheduling; runs in progress go on (see [`Scheduler::busy`]).
    pub fn stop(&mut self) {
        for handle in self.loops.drain(..) {
            handle.abort();
        }
    }

    /// Stops scheduling and cancels the runs in progress with `reason` (they unwind at their
    /// next write, abort their uploads and keep no set). Later loops get a fresh flag.
    pub fn cancel_runs(&mut self, reason: &str) {
        self.stop();
        self.cancel.cancel(reason);
        self.cancel = Cancel::new();
    }

    /// The jobs with a run in progress.
    pub fn busy(&self) -> Vec<JobKind> {
        JobKind::ALL
            .into_iter()
            .filter(|j| self.running[j].load(Ordering::SeqCst))
            .collect()
    }
}

impl Default for Scheduler {
    fn default() -> Self {
        Self::new()
    }
}

async fn job_loop(
    kind: JobKind,
    cron: Cron,
    settings: watch::Receiver<Arc<Settings>>,
    running: Arc<AtomicBool>,
    shutdown: Cancel,
) {
    loop {
        let now = Utc::now();
        let Some(next) = next_fire(&cron, now) else {
            tracing::warn!(backup_job = %kind, "The schedule has no next fire time; the job stops.");
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        if running.swap(true, Ordering::SeqCst) {
            tracing::warn!(backup_job = %kind, "Run skipped: the previous run of this job is still going.");
            metrics().count_run(kind.as_str(), "skipped");
            continue;
        }
        let settings = settings.borrow().clone();
        let running = running.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let ended =
                tokio::task::spawn_blocking(move || run_scheduled(kind, &settings, &shutdown))
                    .await;
            if let Err(e) = ended {
                tracing::error!(backup_job = %kind, error = %e, "The run's thread panicked; the next run is on schedule.");
                metrics().count_run(kind.as_str(), RunResult::Failure.as_str());
            }
            running.store(false, Ordering::SeqCst);
        });
    }
}

/// One scheduled run: open the destination, run the job through the harness.
fn run_scheduled(kind: JobKind, settings: &Settings, shutdown: &Cancel) {
    match store::open_destination(settings) {
        Ok(dest) => {
            let outcome = run_job(jobs::job(kind), settings, dest.as_ref(), shutdown);
            if outcome.result == RunResult::Failure {
                tracing::warn!(backup_job = %kind, "The next run is on schedule.");
            }
        }
        Err(e) => jobs::harness::record_unstarted(kind, settings, &error_chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_and_six_field_crons_fire_in_utc() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap();
        let daily = parse_schedule("30 3 * * *").unwrap();
        assert_eq!(
            next_fire(&daily, now),
            Some(Utc.with_ymd_and_hms(2026, 11, 25, 3, 30, 0).unwrap())
        );
        assert_eq!(interval_secs(&daily, now), Some(86_400));
        let every_second = parse_schedule("*/1 * * * * *").unwrap();
        assert_eq!(interval_secs(&every_second, now), Some(1));
        assert_eq!(
            next_fire(&every_second, now),
            Some(Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 1).unwrap()),
            "strictly after now"
        );
    }

    #[test]
    fn empty_or_bad_schedules_disable_the_job() {
        assert!(parse_schedule("").is_none());
        assert!(parse_schedule("  ").is_none());
        assert!(parse_schedule("off").is_none() && parse_schedule("DISABLED").is_none());
        assert!(parse_schedule("61 * * * *").is_none());
    }
}
