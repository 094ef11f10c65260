//! Uploading one snapshot object from the destination's object store to the gateway, its
//! sha256 checked on the way: small objects in one PutObject from memory, larger ones in one
//! PutObject streamed through a few 256 KiB chunks (the last chunk is held back until the whole
//! object has matched the snapshot, so wrong bytes never complete an upload), the largest as
//! multipart uploads. Every request is signed with the snapshot's sha256 where it covers the
//! body, so that a v4 gateway checks the bytes too and nothing is hashed twice here.

use crate::gateway::body::{channel_body, BodySender};
use crate::gateway::{GatewayClient, GatewayError};
use crate::io_util::HashingReader;
use crate::jobs::gateway::ObjectRecord;
use crate::runtime::{block_on, runtime};
use crate::s3::MAX_ATTEMPTS;
use crate::store::{ObjectStore, StoreError};
use crate::util::Backoff;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use std::io::{self, Read};
use std::time::Duration;

/// Objects up to this size go up in one PutObject from memory (the SDK retries those).
const IN_MEMORY: u64 = 1 << 20;
/// Objects up to this size go up in one streamed PutObject; larger ones as multipart uploads.
const STREAMED: u64 = 256 << 20;
/// A streamed body moves in chunks of this size, [`QUEUED`] of them waiting at most.
const CHUNK: u64 = 256 << 10;
const QUEUED: usize = 2;
/// Multipart uploads use parts this size (or larger, for objects over ~45 GB), one part in
/// memory per object at a time.
const PART: u64 = 5 << 20;

/// Why one object could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read it from the object store: {0}")]
    Read(#[source] io::Error),
    #[error("its bytes in the object store do not match the snapshot ({0}); not restored")]
    Corrupt(String),
}

/// Uploads `record` into `bucket`, with its content type and metadata.
pub fn upload(
    gateway: &GatewayClient,
    store: &dyn ObjectStore,
    bucket: &str,
    record: &ObjectRecord,
) -> Result<(), ObjectError> {
    if record.size <= IN_MEMORY {
        upload_in_memory(gateway, store, bucket, record)
    } else if record.size <= STREAMED {
        upload_streamed(gateway, store, bucket, record)
    } else {
        upload_multipart(gateway, store, bucket, record)
    }
}

/// Reads `n` bytes (fewer at the end of the stream).
fn read_up_to(reader: &mut impl Read, n: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n as usize);
    reader.take(n).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Reads what is left, then compares size and sha256 of everything read with the snapshot.
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

fn upload_in_memory(
    gateway: &GatewayClient,
    store: &dyn ObjectStore,
    bucket: &str,
    record: &ObjectRecord,
) -> Result<(), ObjectError> {
    let mut reader = HashingReader::new(store.open_object(&record.sha256)?);
    // one byte more than the snapshot says: a longer object fails the check
    let body = read_up_to(&mut reader, record.size + 1).map_err(ObjectError::Read)?;
    check(record, reader)?;
    block_on(gateway.put(
        bucket,
        &record.key,
        ByteStream::from(body),
        record.size,
        &record.sha256,
        record.content_type.as_deref(),
        &record.metadata,
    ))?;
    Ok(())
}

/// One streamed PutObject, tried again (from the first byte) while it fails transiently.
fn upload_streamed(
    gateway: &GatewayClient,
    store: &dyn ObjectStore,
    bucket: &str,
    record: &ObjectRecord,
) -> Result<(), ObjectError> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut attempt = 1;
    loop {
        match put_streamed(gateway, store, bucket, record) {
            Err(ObjectError::Gateway(e)) if e.is_transient() && attempt < MAX_ATTEMPTS => {
                tracing::debug!(bucket, key = %record.key, attempt, "Retrying an upload: {e}");
                std::thread::sleep(backoff.next_wait());
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Whether the feeder handed over every byte, or stopped because the request ended first.
enum Fed {
    All,
    Stopped,
}

fn put_streamed(
    gateway: &GatewayClient,
    store: &dyn ObjectStore,
    bucket: &str,
    record: &ObjectRecord,
) -> Result<(), ObjectError> {
    let reader = store.open_object(&record.sha256)?;
    let (tx, body) = channel_body(record.size, QUEUED);
    let request = {
        let (gateway, bucket, record) = (gateway.clone(), bucket.to_owned(), record.clone());
        runtime().spawn(async move {
            gateway
                .put(
                    &bucket,
                    &record.key,
                    ByteStream::from_body_1_x(body),
                    record.size,
                    &record.sha256,
                    record.content_type.as_deref(),
                    &record.metadata,
                )
                .await
        })
    };
    let fed = feed(reader, record, &tx);
    drop(tx);
    let sent = block_on(request).unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    match (fed?, sent) {
        (_, Err(e)) => Err(e.into()),
        (Fed::All, Ok(())) => Ok(()),
        // cannot happen with a Content-Length the body did not reach; never report it done
        (Fed::Stopped, Ok(())) => Err(ObjectError::Read(io::Error::other(
            "the gateway answered before the whole object was sent",
        ))),
    }
}

/// Reads the object in chunks into `tx`, hashing them. Its last byte goes only once size and
/// sha256 match the snapshot, otherwise an error ends the body: the request never reaches its
/// Content-Length, so the gateway stores nothing (a v2 gateway checks no hash of its own).
fn feed(reader: impl Read, record: &ObjectRecord, tx: &BodySender) -> Result<Fed, ObjectError> {
    let mut hashing = HashingReader::new(reader.take(record.size + 1));
    // bytes that may go before the check: all but the last
    let early = record.size.saturating_sub(1);
    let mut sent = 0u64;
    let mut held: Vec<u8> = Vec::new();
    loop {
        let chunk = match read_up_to(&mut hashing, CHUNK) {
            Ok(chunk) => Bytes::from(chunk),
            Err(e) => {
                let _ = tx.blocking_send(Err(io::Error::other("reading the object failed")));
                return Err(ObjectError::Read(e));
            }
        };
        if chunk.is_empty() {
            break;
        }
        let now = (early - sent).min(chunk.len() as u64) as usize;
        if now > 0 {
            if tx.blocking_send(Ok(chunk.slice(..now))).is_err() {
                return Ok(Fed::Stopped);
            }
            sent += now as u64;
        }
        held.extend_from_slice(&chunk[now..]);
    }
    if let Err(e) = check(record, hashing) {
        let _ = tx.blocking_send(Err(io::Error::other(
            "the object does not match the snapshot",
        )));
        return Err(e);
    }
    if held.is_empty() {
        return Ok(Fed::All);
    }
    match tx.blocking_send(Ok(Bytes::from(held))) {
        Err(_) => Ok(Fed::Stopped),
        Ok(()) => Ok(Fed::All),
    }
}

fn upload_multipart(
    gateway: &GatewayClient,
    store: &dyn ObjectStore,
    bucket: &str,
    record: &ObjectRecord,
) -> Result<(), ObjectError> {
    let mut reader = HashingReader::new(store.open_object(&record.sha256)?);
    let (content_type, metadata) = (record.content_type.as_deref(), &record.metadata);
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
