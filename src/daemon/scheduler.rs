//! Cron scheduling of the jobs this daemon owns: one tokio task per owned job, which sleeps
//! until croner's next fire time (or a trigger) and then runs the job on a blocking thread.
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
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Notify};
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

/// A job's request to run now (`trigger/<job>`): at most one run waits behind a running one.
#[derive(Default)]
struct Trigger {
    notify: Notify,
    pending: AtomicBool,
}

/// The schedule loops of the jobs this daemon owns, and which jobs have a run in progress.
pub struct Scheduler {
    loops: Vec<JoinHandle<()>>,
    running: HashMap<JobKind, Arc<AtomicBool>>,
    /// Cancels the runs of a job (shutdown, loss of its lease).
    cancels: HashMap<JobKind, Cancel>,
    triggers: HashMap<JobKind, Arc<Trigger>>,
    owned: BTreeSet<JobKind>,
}

impl Scheduler {
    pub fn new() -> Self {
        Self {
            loops: Vec::new(),
            running: JobKind::ALL
                .iter()
                .map(|&j| (j, Arc::new(AtomicBool::new(false))))
                .collect(),
            cancels: JobKind::ALL.iter().map(|&j| (j, Cancel::new())).collect(),
            triggers: JobKind::ALL
                .iter()
                .map(|&j| (j, Arc::new(Trigger::default())))
                .collect(),
            owned: BTreeSet::new(),
        }
    }

    /// Replaces the loops by ones for `settings` and the jobs in `owned` (runs in progress go
    /// on). An owned job without a schedule gets a loop too: it runs when triggered.
    pub fn apply(
        &mut self,
        settings: &Settings,
        owned: &BTreeSet<JobKind>,
        current: &watch::Receiver<Arc<Settings>>,
    ) {
        self.stop();
        self.owned = owned.clone();
        let now = Utc::now();
        for job in jobs::registry() {
            let kind = job.kind();
            if !owned.contains(&kind) {
                continue;
            }
            let label = [kind.as_str()];
            metrics()
                .run_deadline
                .with_label_values(&label)
                .set(job.deadline(settings).get().as_secs() as i64);
            let cron = parse_schedule(job.schedule(settings));
            let interval = cron
                .as_ref()
                .and_then(|c| interval_secs(c, now))
                .unwrap_or(0);
            metrics()
                .schedule_interval
                .with_label_values(&label)
                .set(interval);
            match &cron {
                Some(cron) => {
                    tracing::info!(backup_job = %kind, schedule = %cron.pattern, next = ?next_fire(cron, now), "Job scheduled.")
                }
                None => {
                    tracing::info!(backup_job = %kind, "Job disabled (no schedule); it runs only when triggered.")
                }
            }
            self.loops.push(tokio::spawn(job_loop(
                kind,
                cron,
                current.clone(),
                self.running[&kind].clone(),
                self.triggers[&kind].clone(),
                self.cancels[&kind].clone(),
            )));
        }
    }

    /// Stops scheduling; runs in progress go on (see [`Scheduler::busy`]).
    pub fn stop(&mut self) {
        for handle in self.loops.drain(..) {
            handle.abort();
        }
    }

    /// Asks `job` to run now (after the run in progress, if one is; never twice). `false`
    /// when this daemon does not own the job.
    pub fn trigger(&self, job: JobKind) -> bool {
        if !self.owned.contains(&job) {
            return false;
        }
        let trigger = &self.triggers[&job];
        trigger.pending.store(true, Ordering::SeqCst);
        trigger.notify.notify_one();
        true
    }

    /// Cancels the run in progress of `job` with `reason` (it unwinds at its next write,
    /// aborts its uploads and keeps no set). Later runs get a fresh flag.
    pub fn cancel_job(&mut self, job: JobKind, reason: &str) {
        if let Some(cancel) = self.cancels.insert(job, Cancel::new()) {
            cancel.cancel(reason);
        }
    }

    /// Stops scheduling and cancels every run in progress with `reason`.
    pub fn cancel_runs(&mut self, reason: &str) {
        self.stop();
        for job in JobKind::ALL {
            self.cancel_job(job, reason);
        }
    }

    /// Whether `job` has a run in progress (shared flag, for waiting on it elsewhere).
    pub fn running_flag(&self, job: JobKind) -> Arc<AtomicBool> {
        self.running[&job].clone()
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

/// Sleeps until `cron`'s next fire time, or forever without a schedule.
async fn until_next_fire(kind: JobKind, cron: Option<&Cron>) {
    let next = cron.and_then(|c| next_fire(c, Utc::now()));
    match next {
        Some(next) => {
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
        }
        None => {
            if cron.is_some() {
                tracing::warn!(backup_job = %kind, "The schedule has no next fire time; the job runs only when triggered.");
            }
            std::future::pending::<()>().await;
        }
    }
}

async fn job_loop(
    kind: JobKind,
    cron: Option<Cron>,
    settings: watch::Receiver<Arc<Settings>>,
    running: Arc<AtomicBool>,
    trigger: Arc<Trigger>,
    cancel: Cancel,
) {
    loop {
        let triggered = tokio::select! {
            _ = until_next_fire(kind, cron.as_ref()) => false,
            _ = trigger.notify.notified() => true,
        };
        if running.swap(true, Ordering::SeqCst) {
            if !triggered {
                tracing::warn!(backup_job = %kind, "Run skipped: the previous run of this job is still going.");
                metrics().count_run(kind.as_str(), "skipped");
            }
            // a trigger stays pending: the run ending wakes this loop again
            continue;
        }
        if triggered && !trigger.pending.swap(false, Ordering::SeqCst) {
            running.store(false, Ordering::SeqCst);
            continue;
        }
        if triggered {
            tracing::info!(backup_job = %kind, "Running the job now: it was triggered.");
        }
        let settings = settings.borrow().clone();
        let running = running.clone();
        let trigger = trigger.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let ended =
                tokio::task::spawn_blocking(move || run_scheduled(kind, &settings, &cancel)).await;
            if let Err(e) = ended {
                tracing::error!(backup_job = %kind, error = %e, "The run's thread panicked; the next run is on schedule.");
                metrics().count_run(kind.as_str(), RunResult::Failure.as_str());
            }
            running.store(false, Ordering::SeqCst);
            if trigger.pending.load(Ordering::SeqCst) {
                trigger.notify.notify_one();
            }
        });
    }
}

/// One run: check that this host can still run the job, open the destination, run the job
/// through the harness.
fn run_scheduled(kind: JobKind, settings: &Settings, cancel: &Cancel) {
    if let Err(why) = crate::runtime::block_on(super::eligibility::check(kind, settings)) {
        tracing::warn!(backup_job = %kind, reason = %why, "Run skipped: this host cannot run the job now.");
        metrics().count_run(kind.as_str(), "skipped");
        return;
    }
    match store::open_destination(settings) {
        Ok(dest) => {
            let outcome = run_job(jobs::job(kind), settings, dest.as_ref(), cancel);
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
