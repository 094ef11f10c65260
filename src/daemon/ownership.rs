//! What a daemon does when it becomes or stops being a job's owner: an owner exports the
//! job's gauges, seeded from the destination's newest complete set so that a restart or a
//! change of owner never blinds the alerts; a daemon that is not the owner exports none.

use crate::config::Settings;
use crate::error_chain::error_chain;
use crate::jobs::job;
use crate::metrics::metrics;
use crate::store::{self, list_complete, JobKind};

/// Seeds the gauges of `jobs` from the destination, then marks this daemon their owner.
/// Blocking (reads manifests): call from a blocking thread or before the runtime serves.
pub fn take_ownership(settings: &Settings, jobs: &[JobKind]) {
    seed(settings, jobs);
    let m = metrics();
    for &kind in jobs {
        m.run_deadline
            .with_label_values(&[kind.as_str()])
            .set(job(kind).deadline(settings).get().as_secs() as i64);
        m.running.with_label_values(&[kind.as_str()]).set(0);
        m.own(kind.as_str());
    }
}

/// This daemon no longer owns `jobs`: their per-job gauges disappear from its metrics.
pub fn give_up_ownership(jobs: &[JobKind]) {
    for &kind in jobs {
        metrics().disown(kind.as_str());
    }
}

/// `last_success` and `last_run` of each job from the finish time of its newest complete set
/// at the destination (and the stored size of that set). A destination that cannot be read
/// leaves the gauges unset (a warning says so): the first run then sets them.
fn seed(settings: &Settings, jobs: &[JobKind]) {
    let listing =
        store::open_destination(settings).and_then(|dest| list_complete(dest.as_ref(), None));
    let listing = match listing {
        Ok(listing) => listing,
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "Cannot read the destination to seed the jobs' last-success metrics; the next run sets them.");
            return;
        }
    };
    let m = metrics();
    for &kind in jobs {
        let newest = listing
            .complete
            .iter()
            .filter(|manifest| manifest.job == kind)
            .max_by_key(|manifest| (manifest.finished_at, manifest.run_id.clone()));
        let Some(newest) = newest else {
            continue;
        };
        let label = [kind.as_str()];
        let finished = newest.finished_at.timestamp();
        m.last_success.with_label_values(&label).set(finished);
        if m.last_run.with_label_values(&label).get() < finished {
            m.last_run.with_label_values(&label).set(finished);
        }
        m.artifact_bytes
            .with_label_values(&label)
            .set(newest.stored_bytes() as i64);
        let partial = newest
            .warnings
            .iter()
            .any(|w| w.kind == crate::store::WarningKind::Unreadable);
        m.last_run_partial
            .with_label_values(&label)
            .set(i64::from(partial));
        tracing::debug!(backup_job = %kind, set = %newest.run_id, "Seeded the job's metrics from its newest set.");
    }
}
