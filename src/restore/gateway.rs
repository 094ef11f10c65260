//! Restoring a gateway snapshot into the configured store-gateway: each bucket is listed and
//! compared with the snapshot first (see [`super::gateway_plan`]); objects there with other
//! content make the step refuse without `--force`. Then missing buckets are created and every
//! object not already identical is uploaded with its content type and user metadata (its
//! sha256 checked on the way, see [`super::gateway_upload`]), `gateway.concurrency` at a time
//! across all buckets.

use crate::config::{GatewaySettings, TimeoutSettings};
use crate::gateway::{GatewayClient, GatewayError};
use crate::jobs::gateway::{read_snapshot, ObjectRecord, SnapshotError};
use crate::runtime::block_on;
use crate::store::{Destination, Manifest};
use crate::util::parallel_map;
use sha2::{Digest, Sha256};

use super::gateway_plan::{plan_bucket, some_keys, BucketPlan};
use super::gateway_upload::upload;

/// Why a gateway restore failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayRestoreError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error("the snapshot has no bucket {asked}; it holds: {available}")]
    UnknownBucket { asked: String, available: String },
    #[error("destination {0} has no object store for gateway snapshots")]
    NoObjectStore(String),
    #[error("{count} object(s) could not be restored to the gateway: {named}")]
    ObjectsFailed { count: usize, named: String },
}

/// What happened (or, in a dry run, would happen) to one bucket.
#[derive(Debug, Clone, Default)]
pub struct BucketRestore {
    pub name: String,
    /// The bucket did not exist and was created (or would be, in a dry run).
    pub created: bool,
    pub objects: u64,
    pub bytes: u64,
    /// Objects that were not at the gateway, uploaded (or to upload).
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    /// Objects there with other content, overwritten (or to overwrite) with `--force`.
    pub overwritten: u64,
    /// Already identical at the gateway, left alone.
    pub identical: u64,
    /// At the gateway but not in the snapshot, left alone.
    pub extra: u64,
    /// Objects there with other content while `--force` was not given (the step refuses).
    pub conflicts: u64,
    /// A few of their keys.
    pub conflict_keys: String,
}

/// The outcome of [`restore_gateway`].
#[derive(Debug, Clone, Default)]
pub struct GatewayRestoreReport {
    pub buckets: Vec<BucketRestore>,
    pub dry_run: bool,
    /// Objects exist with other content and `--force` was not given: nothing was written.
    pub refused: bool,
    /// The gateway was compared with the snapshot (a dry run without a configured gateway
    /// only reads the snapshot).
    pub compared: bool,
}

/// What the operator asked of a gateway restore.
#[derive(Debug, Clone, Copy, Default)]
pub struct GatewayRestoreMode {
    /// Compare and report, write nothing.
    pub dry_run: bool,
    /// Overwrite objects that exist with other content.
    pub force: bool,
}

/// Restores the buckets of a gateway set (all, or those in `only`) into the gateway of
/// `settings`, under the deadlines of `timeouts`. Every bucket is compared with the snapshot
/// first; objects there with other content make the step refuse (writing nothing at all)
/// unless `mode.force`. A dry run compares (reading only) and reports the plan.
pub fn restore_gateway(
    dest: &dyn Destination,
    manifest: &Manifest,
    settings: &GatewaySettings,
    timeouts: &TimeoutSettings,
    only: &[String],
    mode: GatewayRestoreMode,
) -> Result<GatewayRestoreReport, GatewayRestoreError> {
    let snapshot = read_snapshot(dest, manifest)?;
    for asked in only {
        if snapshot.bucket(asked).is_none() {
            let available: Vec<&str> = snapshot.buckets.iter().map(|b| b.name.as_str()).collect();
            return Err(GatewayRestoreError::UnknownBucket {
                asked: asked.clone(),
                available: available.join(", "),
            });
        }
    }
    let chosen: Vec<_> = snapshot
        .buckets
        .iter()
        .filter(|b| only.is_empty() || only.contains(&b.name))
        .collect();
    let mut report = GatewayRestoreReport {
        dry_run: mode.dry_run,
        ..Default::default()
    };
    if mode.dry_run && settings.endpoint.is_none() {
        for bucket in chosen {
            let plan = plan_bucket(bucket, None);
            let (objects, bytes) = plan.totals();
            report.buckets.push(BucketRestore {
                name: bucket.name.clone(),
                objects,
                bytes,
                uploaded: objects,
                uploaded_bytes: bytes,
                ..Default::default()
            });
        }
        return Ok(report);
    }
    let gateway = block_on(GatewayClient::connect(settings, timeouts))?;
    let workers = settings.concurrency.max(1) as usize;
    report.compared = true;
    let mut plans = Vec::new();
    for bucket in chosen {
        let listing = if block_on(gateway.bucket_exists(&bucket.name))? {
            Some(block_on(gateway.list_bucket(&bucket.name))?)
        } else {
            None
        };
        let mut plan = plan_bucket(bucket, listing.as_deref());
        settle_unsure(&gateway, &mut plan, workers)?;
        plans.push(plan);
    }
    report.refused = !mode.force && plans.iter().any(|p| !p.different.is_empty());
    for plan in &plans {
        let (objects, bytes) = plan.totals();
        let (conflicts, conflict_keys) = if mode.force {
            (0, String::new())
        } else {
            (plan.different.len() as u64, some_keys(&plan.different, 5))
        };
        report.buckets.push(BucketRestore {
            name: plan.name.clone(),
            created: !plan.exists,
            objects,
            bytes,
            uploaded: plan.missing.len() as u64,
            uploaded_bytes: plan.missing.iter().map(|r| r.size).sum(),
            overwritten: if mode.force {
                plan.different.len() as u64
            } else {
                0
            },
            identical: plan.identical.len() as u64,
            extra: plan.extra,
            conflicts,
            conflict_keys,
        });
    }
    if report.refused || mode.dry_run {
        return Ok(report);
    }
    let store = dest
        .objects()
        .ok_or_else(|| GatewayRestoreError::NoObjectStore(dest.describe()))?;
    for plan in plans.iter().filter(|p| !p.exists) {
        block_on(gateway.create_bucket(&plan.name))?;
        tracing::info!(bucket = %plan.name, "Created a missing bucket on the gateway.");
    }
    // One pool for every bucket, biggest objects first: no bucket waits for the last big
    // uploads of the one before, and the run does not end on one big object going up alone.
    let mut writes: Vec<(&str, &ObjectRecord)> = plans
        .iter()
        .flat_map(|plan| {
            (plan.missing.iter().chain(&plan.different)).map(|record| (plan.name.as_str(), *record))
        })
        .collect();
    writes.sort_by_key(|(_, record)| std::cmp::Reverse(record.size));
    let results = parallel_map(writes, workers, |(bucket, record)| {
        (bucket, record, upload(&gateway, store, bucket, record))
    });
    let mut failures = Vec::new();
    for (bucket, record, result) in results {
        if let Err(e) = result {
            tracing::error!(bucket, key = %record.key, "An object could not be restored: {e}");
            failures.push(format!("{bucket}/{}: {e}", record.key));
        }
    }
    if !failures.is_empty() {
        let count = failures.len();
        failures.sort();
        failures.truncate(10);
        return Err(GatewayRestoreError::ObjectsFailed {
            count,
            named: failures.join("; "),
        });
    }
    Ok(report)
}

/// Decides the [`Compared::Unsure`] objects of `plan` by reading them from the gateway and
/// comparing their sha256 with the snapshot's.
///
/// [`Compared::Unsure`]: super::gateway_plan::Compared::Unsure
fn settle_unsure(
    gateway: &GatewayClient,
    plan: &mut BucketPlan<'_>,
    workers: usize,
) -> Result<(), GatewayRestoreError> {
    let unsure = std::mem::take(&mut plan.unsure);
    let bucket = plan.name.clone();
    let results = parallel_map(unsure, workers, |record| {
        (record, same_bytes(gateway, &bucket, record))
    });
    for (record, same) in results {
        match same? {
            Some(true) => plan.identical.push(record),
            Some(false) => plan.different.push(record),
            None => plan.missing.push(record),
        }
    }
    Ok(())
}

/// Whether the gateway's object `record.key` holds exactly the snapshot's bytes (`None`: it
/// is gone since the listing).
fn same_bytes(
    gateway: &GatewayClient,
    bucket: &str,
    record: &ObjectRecord,
) -> Result<Option<bool>, GatewayError> {
    let Some(mut object) = block_on(gateway.get(bucket, &record.key))? else {
        return Ok(None);
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = block_on(object.body.next()) {
        let chunk = chunk.map_err(|source| GatewayError::Body {
            endpoint: gateway.endpoint().to_owned(),
            bucket: bucket.into(),
            key: record.key.clone(),
            source,
        })?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok(Some(
        size == record.size && hex::encode(hasher.finalize()) == record.sha256,
    ))
}
