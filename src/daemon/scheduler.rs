//! Cron scheduling of the backup jobs: one tokio task per job with a non-empty schedule, which
//! sleeps until croner's next fire time and then runs the job on a blocking thread.
//!
//! Why croner and a sleep loop rather than tokio-cron-scheduler: validation already parses
//! schedules with croner, so the daemon fires exactly what `config check` accepted; a reload
//! is "abort the loops, start new ones" with no job ids to track; and the settings a run uses
//! are read at fire time, so a rotated key is used from the next run on.

use crate::config::Settings;
use crate::error_chain::error_chain;
use crate::jobs::run_backup;
use crate::metrics::metrics;
use crate::store::{self, JobKind};
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
    if cron.trim().is_empty() {
        return None;
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(cron)
        .ok()
}

/// The schedule string of `job`.
pub fn schedule_of(settings: &Settings, job: JobKind) -> &str {
    match job {
        JobKind::Gateway => &settings.schedule.gateway,
        JobKind::Volume => &settings.schedule.volume,
        JobKind::Database => &settings.schedule.database,
        JobKind::Etcd => &settings.schedule.etcd,
    }
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
}

impl Scheduler {
    pub fn new() -> Self {
        Self {
            loops: Vec::new(),
            running: JobKind::ALL
                .iter()
                .map(|&j| (j, Arc::new(AtomicBool::new(false))))
                .collect(),
        }
    }

    /// Replaces the schedule loops by ones for `settings` (runs in progress go on).
    pub fn apply(&mut self, settings: &Settings, current: &watch::Receiver<Arc<Settings>>) {
        for handle in self.loops.drain(..) {
            handle.abort();
        }
        let now = Utc::now();
        for job in JobKind::ALL {
            let Some(cron) = parse_schedule(schedule_of(settings, job)) else {
                metrics()
                    .schedule_interval
                    .with_label_values(&[job.as_str()])
                    .set(0);
                continue;
            };
            if let Some(secs) = interval_secs(&cron, now) {
                metrics()
                    .schedule_interval
                    .with_label_values(&[job.as_str()])
                    .set(secs);
            }
            tracing::info!(job = %job, schedule = %cron.pattern, next = ?next_fire(&cron, now), "Job scheduled.");
            let running = self.running[&job].clone();
            self.loops
                .push(tokio::spawn(job_loop(job, cron, current.clone(), running)));
        }
    }

    /// Stops scheduling; runs in progress go on (see [`Scheduler::busy`]).
    pub fn stop(&mut self) {
        for handle in self.loops.drain(..) {
            handle.abort();
        }
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
    job: JobKind,
    cron: Cron,
    settings: watch::Receiver<Arc<Settings>>,
    running: Arc<AtomicBool>,
) {
    loop {
        let now = Utc::now();
        let Some(next) = next_fire(&cron, now) else {
            tracing::warn!(job = %job, "The schedule has no next fire time; the job stops.");
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        if running.swap(true, Ordering::SeqCst) {
            tracing::warn!(job = %job, "Run skipped: the previous run of this job is still going.");
            metrics()
                .runs
                .with_label_values(&[job.as_str(), "skipped"])
                .inc();
            continue;
        }
        let settings = settings.borrow().clone();
        let running = running.clone();
        tokio::spawn(async move {
            metrics().running.with_label_values(&[job.as_str()]).set(1);
            let started = std::time::Instant::now();
            let outcome = tokio::task::spawn_blocking(move || {
                let dest = store::open_destination(&settings).map_err(|e| e.to_string())?;
                run_backup(job, &settings, dest.as_ref()).map_err(|e| error_chain(&e))
            })
            .await
            .unwrap_or_else(|e| Err(format!("the run panicked or was cancelled: {e}")));
            let m = metrics();
            let label = [job.as_str()];
            m.running.with_label_values(&label).set(0);
            m.duration
                .with_label_values(&label)
                .observe(started.elapsed().as_secs_f64());
            m.last_run
                .with_label_values(&label)
                .set(Utc::now().timestamp());
            match outcome {
                Ok(manifest) => {
                    m.runs.with_label_values(&[job.as_str(), "success"]).inc();
                    m.record_success(&manifest);
                    m.last_success
                        .with_label_values(&label)
                        .set(Utc::now().timestamp());
                    tracing::info!(job = %job, set = %manifest.run_id, "Scheduled run succeeded.");
                }
                Err(error) => {
                    m.runs.with_label_values(&[job.as_str(), "failure"]).inc();
                    tracing::error!(job = %job, %error, "Scheduled run failed; the next run is on schedule.");
                }
            }
            running.store(false, Ordering::SeqCst);
        });
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
        assert!(parse_schedule("61 * * * *").is_none());
        let s = Settings::default();
        assert_eq!(schedule_of(&s, JobKind::Volume), "30 3 * * *");
    }
}
