//! Restoring a gateway snapshot into the configured store-gateway: missing buckets are
//! created, every object of the snapshot is uploaded with its content type and user metadata
//! (checking its sha256 on the way), objects already identical there (size and ETag) are
//! skipped, and objects run in parallel (`gateway.concurrency`).

use crate::config::{GatewaySettings, TimeoutSettings};
use crate::gateway::{GatewayClient, GatewayError};
use crate::io_util::HashingReader;
use crate::jobs::gateway::{read_snapshot, ObjectRecord, SnapshotError};
use crate::runtime::block_on;
use crate::store::{Destination, Manifest, ObjectStore, StoreError};
use crate::util::parallel_map;
use std::io::{self, Read};

/// Objects up to this size go up in one PutObject; larger ones as multipart uploads of parts
/// this size (or larger, for objects over ~45 GB), one part in memory per object at a time.
const PART: u64 = 5 << 20;

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

/// What happened to one bucket.
#[derive(Debug, Clone, Default)]
pub struct BucketRestore {
    pub name: String,
    /// The bucket did not exist and was created (or would be, in a dry run).
    pub created: bool,
    pub objects: u64,
    pub bytes: u64,
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    /// Already identical at the gateway.
    pub skipped: u64,
}

/// The outcome of [`restore_gateway`].
#[derive(Debug, Clone, Default)]
pub struct GatewayRestoreReport {
    pub buckets: Vec<BucketRestore>,
    pub dry_run: bool,
}

/// Restores the buckets of a gateway set (all, or those in `only`) into the gateway of
/// `settings`, under the deadlines of `timeouts`. With `dry_run`, only reads the snapshot and
/// reports the plan.
pub fn restore_gateway(
    dest: &dyn Destination,
    manifest: &Manifest,
    settings: &GatewaySettings,
    timeouts: &TimeoutSettings,
    only: &[String],
    dry_run: bool,
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
    let chosen = snapshot
        .buckets
        .iter()
        .filter(|b| only.is_empty() || only.contains(&b.name));
    let mut report = GatewayRestoreReport {
        dry_run,
        ..Default::default()
    };
    if dry_run {
        for bucket in chosen {
            report.buckets.push(BucketRestore {
                name: bucket.name.clone(),
                objects: bucket.objects.len() as u64,
                bytes: bucket.objects.iter().map(|o| o.size).sum(),
                ..Default::default()
            });
        }
        return Ok(report);
    }
    let store = dest
        .objects()
        .ok_or_else(|| GatewayRestoreError::NoObjectStore(dest.describe()))?;
    let gateway = block_on(GatewayClient::connect(settings, timeouts))?;
    let workers = settings.concurrency.max(1) as usize;
    let mut failures = Vec::new();
    for bucket in chosen {
        let mut done = BucketRestore {
            name: bucket.name.clone(),
            objects: bucket.objects.len() as u64,
            bytes: bucket.objects.iter().map(|o| o.size).sum(),
            ..Default::default()
        };
        if !block_on(gateway.bucket_exists(&bucket.name))? {
            block_on(gateway.create_bucket(&bucket.name))?;
            done.created = true;
            tracing::info!(bucket = %bucket.name, "Created a missing bucket on the gateway.");
        }
        let results = parallel_map(bucket.objects.iter().collect(), workers, |record| {
            (
                record,
                restore_object(&gateway, store, &bucket.name, record),
            )
        });
        for (record, result) in results {
            match result {
                Ok(true) => {
                    done.uploaded += 1;
                    done.uploaded_bytes += record.size;
                }
                Ok(false) => done.skipped += 1,
                Err(e) => {
                    tracing::error!(bucket = %bucket.name, key = %record.key, "An object could not be restored: {e}");
                    failures.push(format!("{}/{}: {e}", bucket.name, record.key));
                }
            }
        }
        report.buckets.push(done);
    }
    if !failures.is_empty() {
        let count = failures.len();
        failures.truncate(10);
        return Err(GatewayRestoreError::ObjectsFailed {
            count,
            named: failures.join("; "),
        });
    }
    Ok(report)
}

/// Why one object could not be restored.
#[derive(Debug, thiserror::Error)]
enum ObjectError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read it from the object store: {0}")]
    Read(#[source] io::Error),
    #[error("its bytes in the object store do not match the snapshot ({0}); not restored")]
    Corrupt(String),
}

/// Uploads one object unless identical there; `Ok(false)` when skipped. Every request is
/// retried by the SDK (bodies are in memory, so it can send them again); nothing to loop here.
fn restore_object(
    gateway: &GatewayClient,
    store: &dyn ObjectStore,
    bucket: &str,
    record: &ObjectRecord,
) -> Result<bool, ObjectError> {
    if let Some((size, etag)) = block_on(gateway.head(bucket, &record.key))? {
        if size == record.size && etag == record.etag {
            return Ok(false);
        }
    }
    upload(gateway, store, bucket, record).map(|()| true)
}

/// Reads `n` bytes (fewer at the end of the stream).
fn read_up_to(reader: &mut impl Read, n: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n as usize);
    reader.take(n).read_to_end(&mut buf)?;
    Ok(buf)
}

fn check(record: &ObjectRecord, hashing: HashingReader<impl Read>) -> Result<(), ObjectError> {
    let (size, sha256) = hashing.finish().map_err(ObjectError::Read)?;
    if size != record.size || sha256 != record.sha256 {
        return Err(ObjectError::Corrupt(format!(
            "read {size} bytes with sha256 {sha256}, snapshot says {} bytes with {}",
            record.size, record.sha256
        )));
    }
    Ok(())
}

fn upload(
    gateway: &GatewayClient,
    store: &dyn ObjectStore,
    bucket: &str,
    record: &ObjectRecord,
) -> Result<(), ObjectError> {
    let mut reader = HashingReader::new(store.open_object(&record.sha256)?);
    let (content_type, metadata) = (record.content_type.as_deref(), &record.metadata);
    if record.size <= PART {
        let body = read_up_to(&mut reader, PART + 1).map_err(ObjectError::Read)?;
        check(record, reader)?;
        block_on(gateway.put(bucket, &record.key, body, content_type, metadata))?;
        return Ok(());
    }
    let part = PART.max(record.size.div_ceil(9_000));
    let upload_id = block_on(gateway.create_upload(bucket, &record.key, content_type, metadata))?;
    let result = (|| {
        let mut parts = Vec::new();
        loop {
            let body = read_up_to(&mut reader, part).map_err(ObjectError::Read)?;
            if body.is_empty() {
                break;
            }
            let number = parts.len() as i32 + 1;
            parts.push(block_on(gateway.upload_part(
                bucket,
                &record.key,
                &upload_id,
                number,
                body,
            ))?);
        }
        check(record, reader)?;
        block_on(gateway.complete_upload(bucket, &record.key, &upload_id, parts))?;
        Ok(())
    })();
    if result.is_err() {
        if let Err(e) = block_on(gateway.abort_upload(bucket, &record.key, &upload_id)) {
            tracing::warn!(bucket, key = %record.key, "Could not abort a failed upload: {e}");
        }
    }
    result
}
