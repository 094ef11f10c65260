//! The `gateway` job: an incremental, history-keeping snapshot of the store-gateway buckets.
//!
//! Each run lists every bucket page by page and merges the listing with the newest complete
//! gateway snapshot, read as a stream (key, size, ETag); it copies only new or changed objects
//! into the destination's shared object store (in parallel, streamed, content-addressed by
//! sha256) and writes the run's snapshot artifact as it goes, then its manifest, last. Memory
//! does not grow with the number of objects, except for the addresses of copied objects the
//! store held already (re-checked before the snapshot is kept; few unless the previous
//! snapshot could not be read). A run where an object still fails after its retries writes
//! no manifest and names the keys.

mod copy;
mod merge;
pub mod referenced;
pub mod snapshot;
mod stream;
mod verify;
mod writer;

pub use snapshot::{
    read_snapshot, wal_e_base_backups, BucketSnapshot, ObjectRecord, Snapshot, SnapshotError,
    SNAPSHOT_ARTIFACT,
};

use super::{Backup, Job, JobError, Run};
use crate::gateway::{GatewayClient, GatewayError};
use crate::runtime::block_on;
use crate::store::{list_complete, Destination, JobKind, Manifest, Warning, WarningKind};
use crate::util::{ordered_pipeline, PipelineShape};
use copy::Copied;
use merge::{merge, previous_records, Action, Listing};
use serde::Serialize;
use writer::SnapshotWriter;

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

/// Items of a bucket taken but not yet written to the snapshot, at most: the workers may run
/// this far ahead of the oldest object still being copied.
const PIPELINE_WINDOW: usize = 1024;

/// How one listed object ended, on its way from a worker to the snapshot writer.
enum Outcome {
    Unchanged(ObjectRecord),
    Copied {
        key: String,
        copied: Copied,
    },
    /// A listing page could not be read: the run fails.
    ListFailed(GatewayError),
}

/// What a run has gathered beyond its counters.
#[derive(Default)]
struct Tally {
    stats: GatewayStats,
    warnings: Vec<Warning>,
    /// The first failures, named in the error (`stats.failed` counts them all).
    failures: Vec<String>,
    /// Objects this run found already stored and did not write: referenced, so far, only by
    /// older snapshots, which a prune may be collecting.
    reused: Vec<String>,
}

impl Tally {
    /// Counts one object's outcome; returns the record the snapshot keeps, if any.
    fn count(
        &mut self,
        bucket: &str,
        outcome: Outcome,
    ) -> Result<Option<ObjectRecord>, GatewayError> {
        let counted = |action: &str| {
            crate::metrics::metrics()
                .gateway_objects
                .with_label_values(&[bucket, action])
                .inc()
        };
        let record = match outcome {
            Outcome::ListFailed(e) => return Err(e),
            Outcome::Unchanged(record) => {
                counted("unchanged");
                self.stats.unchanged += 1;
                record
            }
            Outcome::Copied {
                copied:
                    Copied::Stored {
                        record,
                        deduplicated,
                    },
                ..
            } => {
                counted("copied");
                self.stats.copied += 1;
                self.stats.copied_bytes += record.size;
                self.stats.deduplicated += u64::from(deduplicated);
                if deduplicated {
                    self.reused.push(record.sha256.clone());
                }
                record
            }
            Outcome::Copied {
                key,
                copied: Copied::Vanished,
            } => {
                self.stats.vanished += 1;
                self.warnings.push(Warning {
                    path: format!("{bucket}/{key}"),
                    kind: WarningKind::Vanished,
                    detail: "listed, then deleted before it could be read".into(),
                });
                return Ok(None);
            }
            Outcome::Copied {
                key,
                copied: Copied::Failed(reason),
            } => {
                counted("failed");
                self.stats.failed += 1;
                tracing::error!(bucket = %bucket, key = %key, "An object could not be copied: {reason}");
                if self.failures.len() < NAMED_FAILURES {
                    self.failures.push(format!("{bucket}/{key}: {reason}"));
                }
                return Ok(None);
            }
        };
        self.stats.objects += 1;
        self.stats.bytes += record.size;
        Ok(Some(record))
    }

    /// The run's error if any object failed.
    fn failed(&self) -> Option<GatewayJobError> {
        let count = self.stats.failed as usize;
        if count == 0 {
            return None;
        }
        let mut named = self.failures.join("; ");
        if count > self.failures.len() {
            named.push_str(&format!("; and {} more", count - self.failures.len()));
        }
        Some(GatewayJobError::ObjectsFailed { count, named })
    }
}

/// Runs one gateway backup into the run's set: each bucket's listing streams, page by page,
/// through the merge with the previous snapshot and the copy workers into the new snapshot.
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
    let previous = previous_manifest(dest);
    let mut tally = Tally {
        stats: GatewayStats {
            buckets: settings.gateway.buckets.len(),
            previous: previous.as_ref().map(|m| format!("gateway/{}", m.run_id)),
            signature: gateway.signature().to_string(),
            ..GatewayStats::default()
        },
        ..Tally::default()
    };

    // the first page of every bucket before anything is written: a bucket that cannot be
    // listed fails the run here
    let mut first_pages = Vec::new();
    for bucket in &settings.gateway.buckets {
        first_pages.push(block_on(gateway.list_page(bucket, None)).map_err(GatewayJobError::from)?);
    }

    let cancel = run.cancel().clone();
    let write_failed = |e| JobError::from(GatewayJobError::WriteSnapshot(e));
    let mut snapshot =
        SnapshotWriter::new(run.start_artifact(SNAPSHOT_ARTIFACT)?).map_err(write_failed)?;
    let shape = PipelineShape {
        workers: settings.gateway.concurrency.max(1) as usize,
        window: PIPELINE_WINDOW,
    };
    for (bucket, first) in settings.gateway.buckets.iter().zip(first_pages) {
        snapshot.begin_bucket(bucket).map_err(write_failed)?;
        std::thread::scope(|scope| {
            let previous = previous
                .as_ref()
                .map(|manifest| previous_records(scope, dest, manifest, bucket));
            let listing = Listing::new(first, |marker| {
                block_on(gateway.list_page(bucket, Some(marker)))
            });
            let actions = merge(listing, previous.into_iter().flatten());
            let work = |action| match action {
                Err(e) => Outcome::ListFailed(e),
                Ok(Action::Unchanged(record)) => Outcome::Unchanged(record),
                Ok(Action::Copy(listed)) => Outcome::Copied {
                    copied: match cancel.reason() {
                        Some(reason) => Copied::Failed(reason),
                        None => copy::copy_object(&gateway, store, &set, bucket, &listed),
                    },
                    key: listed.key,
                },
            };
            ordered_pipeline(actions, shape, work, |outcome| {
                if let Some(reason) = cancel.reason() {
                    return Err(JobError::Cancelled(reason));
                }
                match tally
                    .count(bucket, outcome)
                    .map_err(GatewayJobError::from)?
                {
                    Some(record) => snapshot.record(&record).map_err(write_failed),
                    None => Ok(()),
                }
            })
        })?;
    }
    if let Some(failed) = tally.failed() {
        return Err(failed.into());
    }

    check_reused(store, &tally.reused)?;
    run.check_cancelled()?;
    let artifact = snapshot
        .finish()
        .map_err(write_failed)?
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
    let stats = &tally.stats;
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
        warnings: tally.warnings,
        stats: serde_json::to_value(stats).expect("stats serialize"),
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

/// The manifest of the newest complete gateway snapshot, if the sets can be listed (else
/// every object is copied).
fn previous_manifest(dest: &dyn Destination) -> Option<Manifest> {
    let listing = match list_complete(dest, Some(JobKind::Gateway)) {
        Ok(listing) => listing,
        Err(e) => {
            tracing::warn!("Cannot list earlier gateway snapshots; copying every object: {e}");
            return None;
        }
    };
    // newest by start time: run ids order runs only to the second
    listing
        .complete
        .into_iter()
        .max_by_key(|m| (m.started_at, m.run_id.clone()))
}
