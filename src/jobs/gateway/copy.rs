//! Copying one object from the gateway into the object store: streamed GET -> sha256 ->
//! staged write -> commit under its address, retried with backoff on transient errors.

use super::snapshot::ObjectRecord;
use crate::error_chain::error_chain;
use crate::gateway::{GatewayClient, GatewayError, ListedObject};
use crate::runtime::block_on;
use crate::store::{object_path, ObjectStore, S3Error, SetRef, StoreError};
use std::io::{self, Write};
use std::time::Duration;

/// Attempts per object before it counts as failed.
pub const MAX_ATTEMPTS: u32 = 5;
/// The first retry waits this long; each next one twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// How copying one object ended.
#[derive(Debug)]
pub enum Copied {
    /// Stored (or found identical in the store already: `deduplicated`).
    Stored {
        record: ObjectRecord,
        deduplicated: bool,
    },
    /// Listed, then gone before it could be read.
    Vanished,
    /// Still failing after the retries (or failing in a way no retry helps).
    Failed(String),
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write to the object store: {0}")]
    Write(#[source] io::Error),
    #[error("the gateway sent {got} bytes, announced {announced}")]
    Short { got: u64, announced: u64 },
}

impl AttemptError {
    fn is_transient(&self) -> bool {
        match self {
            AttemptError::Gateway(e) => e.is_transient(),
            AttemptError::Store(StoreError::S3(S3Error::Request { .. } | S3Error::Body { .. })) => {
                true
            }
            AttemptError::Store(_) => false,
            AttemptError::Write(e) => e.kind() != io::ErrorKind::StorageFull,
            AttemptError::Short { .. } => true,
        }
    }
}

/// Copies `listed` from `bucket`, retrying transient failures with exponential backoff.
pub fn copy_object(
    gateway: &GatewayClient,
    store: &dyn ObjectStore,
    set: &SetRef,
    bucket: &str,
    listed: &ListedObject,
) -> Copied {
    let mut wait = FIRST_BACKOFF;
    for attempt in 1..=MAX_ATTEMPTS {
        match attempt_copy(gateway, store, set, bucket, listed) {
            Ok(Some((record, deduplicated))) => {
                return Copied::Stored {
                    record,
                    deduplicated,
                }
            }
            Ok(None) => return Copied::Vanished,
            Err(e) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                tracing::debug!(bucket, key = %listed.key, attempt, "Retrying an object copy: {e}");
                std::thread::sleep(wait);
                wait *= 2;
            }
            Err(e) => {
                let e = error_chain(&e);
                return Copied::Failed(if attempt > 1 {
                    format!("{e} (after {attempt} attempts)")
                } else {
                    e
                });
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// One attempt; `Ok(None)` when the object no longer exists.
fn attempt_copy(
    gateway: &GatewayClient,
    store: &dyn ObjectStore,
    set: &SetRef,
    bucket: &str,
    listed: &ListedObject,
) -> Result<Option<(ObjectRecord, bool)>, AttemptError> {
    let Some(mut object) = block_on(gateway.get(bucket, &listed.key))? else {
        return Ok(None);
    };
    let mut sink = store.stage_object(set, object.size)?;
    let mut got = 0u64;
    while let Some(chunk) = block_on(object.body.next()) {
        let chunk = chunk.map_err(|source| GatewayError::Body {
            bucket: bucket.into(),
            key: listed.key.clone(),
            source,
        })?;
        got += chunk.len() as u64;
        sink.write_all(&chunk).map_err(AttemptError::Write)?;
    }
    if got != object.size {
        return Err(AttemptError::Short {
            got,
            announced: object.size,
        });
    }
    let stored = sink.commit()?;
    Ok(Some((
        ObjectRecord {
            key: listed.key.clone(),
            size: stored.size,
            etag: object.etag,
            location: object_path(&stored.sha256),
            sha256: stored.sha256,
            content_type: object.content_type,
            metadata: object.metadata,
        },
        stored.deduplicated,
    )))
}
