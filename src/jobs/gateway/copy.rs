//! Copying one object from the gateway into the object store: streamed GET -> sha256 ->
//! staged write -> commit under its address.
//!
//! Every S3 request (the GET itself, the store's part uploads) is retried by the SDK (see
//! [`crate::s3::client`]). What the SDK cannot retry is a response body that breaks or stalls
//! half-way (it has handed the stream over already): only then does this module start the
//! object over, a few times.

use super::snapshot::ObjectRecord;
use crate::error_chain::error_chain;
use crate::gateway::{GatewayClient, GatewayError, ListedObject};
use crate::runtime::block_on;
use crate::store::{object_path, ObjectStore, SetRef, StoreError};
use std::io::{self, Write};
use std::time::Duration;

/// Reads of an object whose body broke half-way before it counts as failed.
pub const BODY_ATTEMPTS: u32 = 3;
/// The first restart waits this long; the next one twice as long.
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
    /// A body that broke or stalled half-way, or came short: the SDK's retries did not cover it.
    fn body_broke(&self) -> bool {
        matches!(
            self,
            AttemptError::Gateway(GatewayError::Body { .. }) | AttemptError::Short { .. }
        )
    }
}

/// Copies `listed` from `bucket`, starting over (with backoff) when its body breaks half-way.
pub fn copy_object(
    gateway: &GatewayClient,
    store: &dyn ObjectStore,
    set: &SetRef,
    bucket: &str,
    listed: &ListedObject,
) -> Copied {
    let mut wait = FIRST_BACKOFF;
    for attempt in 1..=BODY_ATTEMPTS {
        match attempt_copy(gateway, store, set, bucket, listed) {
            Ok(Some((record, deduplicated))) => {
                return Copied::Stored {
                    record,
                    deduplicated,
                }
            }
            Ok(None) => return Copied::Vanished,
            Err(e) if e.body_broke() && attempt < BODY_ATTEMPTS => {
                tracing::debug!(bucket, key = %listed.key, attempt, "Reading an object again: {e}");
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
            endpoint: gateway.endpoint().to_owned(),
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
