//! The gateway object store in S3: `<prefix>/gateway/objects/ab/<sha256>`.
//!
//! An object's address is the sha256 of its bytes, known only once they are all read. Objects
//! that fit in one part are held in memory, hashed, and written straight to their address with
//! one PutObject. Larger ones stream as a multipart upload to a staging key under
//! `gateway/objects/.staging/<run-id>/` (parts of at least 5 MiB, one at a time, so memory per
//! object stays one part), are then copied server-side to their address (see [`super::copy`]:
//! one CopyObject up to `destination.copy-limit`, a multipart copy above it), and the staged
//! copy is deleted. An upload or staged object left by a killed run is removed by the start-up
//! sweep once the run's writer is dead. Existing addresses are never written again.

use super::bucket::Bucket;
use super::layout::STALE_AFTER;
use super::{S3Destination, S3Error};
use crate::runtime::block_on;
use crate::store::{
    is_object_name, JobKind, ObjectInfo, ObjectSink, ObjectStore, SetRef, StoreError, StoredObject,
    OBJECTS_DIR,
};
use aws_sdk_s3::types::CompletedPart;
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// The smallest part S3 accepts (except the last), and the single-PutObject threshold.
const MIN_PART: u64 = 5 << 20;
/// Parts per upload we aim to stay under (S3 allows 10,000).
const TARGET_PARTS: u64 = 9_000;

static STAGED: AtomicU64 = AtomicU64::new(0);

/// The part size for an object of `size` bytes: 5 MiB, or more when 9,000 parts would not do.
fn part_size(size: u64) -> usize {
    MIN_PART.max(size.div_ceil(TARGET_PARTS)) as usize
}

impl ObjectStore for S3Destination {
    fn object_size(&self, sha256: &str) -> Result<Option<u64>, StoreError> {
        Ok(block_on(self.bucket.size_of(&self.keys.object(sha256)))?)
    }

    fn stage_object(
        &self,
        set: &SetRef,
        size_hint: u64,
    ) -> Result<Box<dyn ObjectSink>, StoreError> {
        let n = STAGED.fetch_add(1, Ordering::Relaxed);
        let staged = self
            .keys
            .staged(set, &format!("{}-{n}", std::process::id()));
        Ok(Box::new(S3ObjectSink {
            bucket: self.bucket.clone(),
            keys: self.keys.clone(),
            copy_limit: self.copy_limit,
            staged,
            part: part_size(size_hint),
            hint: size_hint,
            buf: Vec::new(),
            hasher: Sha256::new(),
            size: 0,
            upload_id: None,
            parts: Vec::new(),
            done: false,
        }))
    }

    fn open_object(&self, sha256: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let key = self.keys.object(sha256);
        match block_on(self.bucket.get(&key))? {
            Some(object) => Ok(Box::new(super::read::ObjectReader::new(
                object.body,
                self.bucket.name(),
                key,
            ))),
            None => Err(StoreError::Io {
                action: "open gateway object",
                path: key.into(),
                source: io::Error::from(io::ErrorKind::NotFound),
            }),
        }
    }

    fn for_each_object(
        &self,
        visit: &mut dyn FnMut(ObjectInfo) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let root = format!("{}{OBJECTS_DIR}/", self.keys.root());
        block_on(self.bucket.for_each_key(&root, |listed| {
            // `ab/<sha256>` only: staged objects (`.staging/...`) and strays are skipped
            let Some((fanout, name)) = listed.key[root.len()..].split_once('/') else {
                return Ok(());
            };
            if !is_object_name(name) || !name.starts_with(fanout) || fanout.len() != 2 {
                return Ok(());
            }
            visit(ObjectInfo {
                sha256: name.to_owned(),
                size: listed.size,
                modified: listed.last_modified,
            })
        }))
    }

    fn gateway_writer(&self) -> Result<Option<String>, StoreError> {
        // a writer's marker is rewritten every minute while it works (the heartbeat); one not
        // rewritten for STALE_AFTER is dead
        let listing = block_on(
            self.bucket
                .list_folder(&self.keys.job_prefix(JobKind::Gateway)),
        )?;
        let now = chrono::Utc::now();
        Ok(listing.objects.iter().find_map(|(key, modified)| {
            let set = self.keys.set_of_marker(JobKind::Gateway, key)?;
            let fresh = modified.is_none_or(|t| now - t <= STALE_AFTER);
            fresh.then(|| set.to_string())
        }))
    }

    fn delete_objects(&self, sha256s: &[String]) -> Result<(), StoreError> {
        let keys = sha256s.iter().map(|s| self.keys.object(s)).collect();
        Ok(block_on(self.bucket.delete_many(keys))?)
    }
}

struct S3ObjectSink {
    bucket: Bucket,
    keys: super::layout::Keys,
    /// Objects over this size reach their address by a multipart copy.
    copy_limit: u64,
    staged: String,
    part: usize,
    hint: u64,
    buf: Vec<u8>,
    hasher: Sha256,
    size: u64,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    done: bool,
}

impl S3ObjectSink {
    /// Uploads the filled buffer as the next part of the staging upload.
    fn ship_part(&mut self) -> Result<(), S3Error> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = block_on(self.bucket.create_upload(&self.staged))?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let body = std::mem::take(&mut self.buf);
        let part = block_on(
            self.bucket
                .upload_part(&self.staged, &upload_id, number, body),
        )?;
        self.parts.push(part);
        Ok(())
    }

    fn commit_inner(&mut self, sha256: &str) -> Result<bool, S3Error> {
        let address = self.keys.object(sha256);
        let Some(upload_id) = self.upload_id.clone() else {
            // one part: straight to the address, unless identical bytes are there already
            if block_on(self.bucket.exists(&address))? {
                return Ok(true);
            }
            block_on(self.bucket.put(&address, std::mem::take(&mut self.buf)))?;
            return Ok(false);
        };
        if !self.buf.is_empty() {
            self.ship_part()?;
        }
        let parts = std::mem::take(&mut self.parts);
        block_on(self.bucket.complete_upload(&self.staged, &upload_id, parts))?;
        self.upload_id = None;
        let result = block_on(async {
            if self.bucket.exists(&address).await? {
                return Ok(true);
            }
            super::copy::copy_to_address(
                &self.bucket,
                &self.staged,
                &address,
                self.size,
                self.copy_limit,
            )
            .await
            .map(|()| false)
        });
        if let Err(e) = block_on(self.bucket.delete(&self.staged)) {
            tracing::warn!("Could not delete a staged object (the next start sweeps it): {e}");
        }
        result
    }
}

impl Write for S3ObjectSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        if self.buf.capacity() == 0 {
            let expected = (self.hint.saturating_sub(self.size) as usize).max(data.len());
            self.buf.reserve_exact(self.part.min(expected));
        }
        let n = (self.part - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.hasher.update(&data[..n]);
        self.size += n as u64;
        if self.buf.len() == self.part {
            self.ship_part().map_err(io::Error::other)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ObjectSink for S3ObjectSink {
    fn commit(mut self: Box<Self>) -> Result<StoredObject, StoreError> {
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let deduplicated = self.commit_inner(&sha256)?;
        self.done = true;
        Ok(StoredObject {
            size: self.size,
            sha256,
            deduplicated,
        })
    }
}

impl Drop for S3ObjectSink {
    /// An uncommitted object: aborts its staging upload.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(upload_id) = self.upload_id.take() {
            if let Err(e) = block_on(self.bucket.abort_upload(&self.staged, &upload_id)) {
                tracing::warn!("Could not abort a staged upload (the next start sweeps it): {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parts_are_at_least_5_mib_and_never_more_than_10000() {
        assert_eq!(super::part_size(0), 5 << 20);
        assert_eq!(super::part_size(1 << 30), 5 << 20);
        let big = 100u64 << 30;
        assert!(big.div_ceil(super::part_size(big) as u64) <= 10_000);
    }
}
