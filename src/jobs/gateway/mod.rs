//! The `gateway` job: an incremental, history-keeping snapshot of the store-gateway buckets.
//!
//! Each run lists every bucket, compares it with the newest complete gateway snapshot (key,
//! size, ETag), copies only new or changed objects into the destination's shared object store
//! (in parallel, streamed, content-addressed by sha256), then writes the run's snapshot
//! artifact and its manifest, last. A run where an object still fails after its retries
//! writes no manifest and names the keys.

mod copy;
pub mod referenced;
pub mod snapshot;
mod verify;

pub use snapshot::{
    read_snapshot, wal_e_base_backups, BucketSnapshot, ObjectRecord, Snapshot, SnapshotError,
    SNAPSHOT_ARTIFACT,
};

use super::{Backup, Job, JobError, Run};
use crate::gateway::{GatewayClient, GatewayError};
use crate::runtime::block_on;
use crate::store::{list_complete, Destination, JobKind, Manifest, Warning, WarningKind};
use crate::util::parallel_map;
use copy::Copied;
use serde::Serialize;
use snapshot::Action;

/// Failures named in the error message (the manifest-less run logs every one).
const NAMED_FAILURES: usize = 10;

/// Why a gateway run failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayJobError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("destination {destination} has no object store for gateway snapshots")]
    NoObjectStore { destination: String },
    #[error(
        "{count} object(s) could not be copied from the gateway, so no snapshot was written: {named}"
    )]
    ObjectsFailed { count: usize, named: String },
    #[error(
        "{count} object(s) this run found in the object store are gone (first: {first}): a \
         prune collected them during the run; no snapshot was written, the next run copies them"
    )]
    ReusedObjectsGone { count: usize, first: String },
    #[error("cannot write {SNAPSHOT_ARTIFACT}")]
    WriteSnapshot(#[source] std::io::Error),
}

/// Counters of one run, stored in the manifest's `stats`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct GatewayStats {
    pub buckets: usize,
    /// Objects in the snapshot.
    pub objects: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Objects read from the gateway this run (new or changed).
    pub copied: u64,
    pub copied_bytes: u64,
    /// Of the copied ones, those whose bytes the store held already.
    pub deduplicated: u64,
    /// Objects carried over from the previous snapshot without reading them.
    pub unchanged: u64,
    pub vanished: u64,
    pub failed: u64,
    /// The snapshot this run compared against, if any.
    pub previous: Option<String>,
    /// The signature the gateway accepted (`v2` or `v4`).
    pub signature: String,
}

/// Snapshots the store-gateway buckets incrementally into the shared object store.
pub struct GatewayJob;

impl Job for GatewayJob {
    fn kind(&self) -> JobKind {
        JobKind::Gateway
    }

    fn restore_step(&self) -> crate::restore::RestoreStep {
        crate::restore::steps::gateway
    }

    fn backup(&self, run: &mut Run<'_>) -> Result<Backup, JobError> {
        run_gateway(run)
    }

    fn verify_extra(
        &self,
        dest: &dyn Destination,
        manifest: &Manifest,
        read_data: bool,
    ) -> Result<Vec<crate::jobs::verify::ArtifactCheck>, crate::jobs::verify::VerifyError> {
        Ok(vec![verify::verify_gateway_objects(
            dest, manifest, read_data,
        )?])
    }
}

/// Runs one gateway backup into the run's set.
fn run_gateway(run: &mut Run<'_>) -> Result<Backup, JobError> {
    let settings = run.settings;
    let dest = run.dest;
    let set = run.set.clone();
    let store = dest
        .objects()
        .ok_or_else(|| GatewayJobError::NoObjectStore {
            destination: dest.describe(),
        })?;
    let gateway = block_on(GatewayClient::connect(
        &settings.gateway,
        &settings.timeouts,
    ))
    .map_err(GatewayJobError::from)?;
    tracing::info!(
        endpoint = gateway.endpoint(),
        signature = %gateway.signature(),
        buckets = ?settings.gateway.buckets,
        destination = %dest.describe(),
        "Gateway backup started."
    );
    let previous = previous_snapshot(dest);
    let mut stats = GatewayStats {
        buckets: settings.gateway.buckets.len(),
        previous: previous
            .as_ref()
            .map(|(m, _)| format!("gateway/{}", m.run_id)),
        signature: gateway.signature().to_string(),
        ..GatewayStats::default()
    };

    // listings first: a bucket that cannot be listed fails the run before anything is written
    let mut plans = Vec::new();
    for bucket in &settings.gateway.buckets {
        let listed = block_on(gateway.list_bucket(bucket)).map_err(GatewayJobError::from)?;
        let prev = previous.as_ref().and_then(|(_, s)| s.bucket(bucket));
        plans.push((bucket.clone(), snapshot::plan(listed, prev)));
    }

    run.begin()?;
    let cancel = run.cancel().clone();
    let mut snapshot = Snapshot {
        format_version: snapshot::SNAPSHOT_FORMAT,
        buckets: Vec::new(),
    };
    let mut warnings = Vec::new();
    let mut failures = Vec::new();
    // objects this run found already stored and did not write: referenced, so far, only by
    // older snapshots, which a prune may be collecting
    let mut reused = Vec::new();
    let workers = settings.gateway.concurrency.max(1) as usize;
    for (bucket, actions) in plans {
        let results = parallel_map(actions, workers, |action| match action {
            Action::Unchanged(record) => (record.key.clone(), None, Some(record)),
            Action::Copy(listed) if cancel.is_cancelled() => {
                let reason = cancel.reason().unwrap_or_default();
                (listed.key, Some(Copied::Failed(reason)), None)
            }
            Action::Copy(listed) => {
                let copied = copy::copy_object(&gateway, store, &set, &bucket, &listed);
                (listed.key, Some(copied), None)
            }
        });
        let mut objects = Vec::with_capacity(results.len());
        let counted = |action: &str| {
            crate::metrics::metrics()
                .gateway_objects
                .with_label_values(&[bucket.as_str(), action])
                .inc()
        };
        for (key, copied, unchanged) in results {
            match &copied {
                None => counted("unchanged"),
                Some(Copied::Stored { .. }) => counted("copied"),
                Some(Copied::Failed(_)) => counted("failed"),
                Some(Copied::Vanished) => {}
            }
            match copied {
                None => {
                    stats.unchanged += 1;
                    objects.extend(unchanged);
                }
                Some(Copied::Stored {
                    record,
                    deduplicated,
                }) => {
                    stats.copied += 1;
                    stats.copied_bytes += record.size;
                    stats.deduplicated += u64::from(deduplicated);
                    if deduplicated {
                        reused.push(record.sha256.clone());
                    }
                    objects.push(record);
                }
                Some(Copied::Vanished) => {
                    stats.vanished += 1;
                    warnings.push(Warning {
                        path: format!("{bucket}/{key}"),
                        kind: WarningKind::Vanished,
                        detail: "listed, then deleted before it could be read".into(),
                    });
                }
                Some(Copied::Failed(reason)) => {
                    stats.failed += 1;
                    tracing::error!(bucket = %bucket, key = %key, "An object could not be copied: {reason}");
                    failures.push(format!("{bucket}/{key}: {reason}"));
                }
            }
        }
        stats.objects += objects.len() as u64;
        stats.bytes += objects.iter().map(|o| o.size).sum::<u64>();
        snapshot.buckets.push(BucketSnapshot {
            name: bucket,
            objects,
        });
    }
    if !failures.is_empty() {
        let mut named = failures[..failures.len().min(NAMED_FAILURES)].join("; ");
        if failures.len() > NAMED_FAILURES {
            named.push_str(&format!("; and {} more", failures.len() - NAMED_FAILURES));
        }
        return Err(GatewayJobError::ObjectsFailed {
            count: failures.len(),
            named,
        }
        .into());
    }

    check_reused(store, &reused)?;
    run.check_cancelled()?;
    let mut compressed = run.start_artifact(SNAPSHOT_ARTIFACT)?;
    serde_json::to_writer(&mut compressed, &snapshot)
        .map_err(|e| GatewayJobError::WriteSnapshot(e.into()))?;
    let artifact = compressed
        .finish("json")
        .map_err(|source| JobError::Finish {
            artifact: SNAPSHOT_ARTIFACT,
            source,
        })?;

    let source = serde_json::json!({
        "kind": "gateway",
        "endpoint": gateway.endpoint(),
        "signature": gateway.signature().as_str(),
        "buckets": settings.gateway.buckets,
    });
    tracing::info!(
        objects = stats.objects,
        copied = stats.copied,
        copied_bytes = stats.copied_bytes,
        unchanged = stats.unchanged,
        vanished = stats.vanished,
        "Gateway snapshot written."
    );
    Ok(Backup {
        source,
        artifacts: vec![artifact],
        warnings,
        stats: serde_json::to_value(&stats).expect("stats serialize"),
    })
}

/// Makes sure the objects this run reused are still stored before its snapshot references
/// them: a prune running beside this run (another process) may have collected an object that
/// only older, pruned snapshots referenced after this run found it. The run then fails (the
/// next one copies the object again) instead of writing a snapshot with a hole.
fn check_reused(store: &dyn crate::store::ObjectStore, reused: &[String]) -> Result<(), JobError> {
    let missing: Vec<&String> = reused
        .iter()
        .filter(|sha| !matches!(store.object_size(sha), Ok(Some(_))))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(GatewayJobError::ReusedObjectsGone {
        count: missing.len(),
        first: missing[0].clone(),
    }
    .into())
}

/// The newest complete gateway snapshot, if one can be read (else every object is copied).
fn previous_snapshot(dest: &dyn Destination) -> Option<(Manifest, Snapshot)> {
    let listing = match list_complete(dest, Some(JobKind::Gateway)) {
        Ok(listing) => listing,
        Err(e) => {
            tracing::warn!("Cannot list earlier gateway snapshots; copying every object: {e}");
            return None;
        }
    };
    // newest by start time: run ids order runs only to the second
    let manifest = listing
        .complete
        .iter()
        .max_by_key(|m| (m.started_at, m.run_id.clone()))?
        .clone();
    match read_snapshot(dest, &manifest) {
        Ok(snapshot) => Some((manifest, snapshot)),
        Err(e) => {
            tracing::warn!("Cannot read the previous gateway snapshot; copying every object: {e}");
            None
        }
    }
}
