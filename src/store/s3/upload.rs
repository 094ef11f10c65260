//! Writing a set to S3: the in-progress marker (rewritten by a heartbeat task while the set is
//! written), artifacts as bounded multipart uploads, and the manifest last. Whatever is
//! dropped unfinished is aborted or deleted.

use super::bucket::Bucket;
use super::layout::{part_size, Keys, WriterMarker, HEARTBEAT_EVERY, MAX_PARTS};
use super::S3Error;
use crate::runtime::{block_on, runtime};
use crate::store::{ArtifactSink, PendingSet, SetRef, StoreError};
use aws_sdk_s3::types::CompletedPart;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Part uploads running at once per artifact; with the part being filled, at most three parts
/// of an artifact are in memory.
const MAX_IN_FLIGHT: usize = 2;

/// A marker rewrite that takes longer than this is given up (the next one retries).
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a set and its artifacts share: the bucket and the writer's marker.
struct SetContext {
    bucket: Bucket,
    marker_key: String,
}

/// The task rewriting the marker every [`HEARTBEAT_EVERY`], uploading or not, so that a sweep
/// elsewhere sees a fresh marker for as long as this process writes the set. It never brings
/// back a marker that is gone or no longer ours (a sweep judged this writer dead): it stops.
struct Heartbeat {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Heartbeat {
    fn start(bucket: Bucket, key: String, body: Vec<u8>, every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = runtime().spawn(async move {
            loop {
                tokio::select! {
                    // a stop, or the sender dropped
                    _ = &mut stopped => return,
                    () = tokio::time::sleep(every) => {}
                }
                // not raced against the stop: a rewrite in flight lands before the deletion
                let beat = tokio::time::timeout(HEARTBEAT_TIMEOUT, beat(&bucket, &key, &body));
                match beat.await {
                    Ok(Ok(true)) => tracing::trace!(key = %key, "Refreshed the in-progress marker."),
                    Ok(Ok(false)) => {
                        tracing::warn!(key = %key, "The in-progress marker was removed or replaced by another process; completing this set will fail.");
                        return;
                    }
                    Ok(Err(e)) => tracing::warn!("Could not refresh the in-progress marker: {e}"),
                    Err(_) => tracing::warn!(
                        "Could not refresh the in-progress marker within {HEARTBEAT_TIMEOUT:?}"
                    ),
                }
            }
        });
        Self {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops the task and waits for a rewrite in flight, so that the marker's deletion comes
    /// after every rewrite. Idempotent.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = block_on(task);
        }
    }
}

/// Rewrites the marker if it is still ours; `false` when it is gone or another's.
async fn beat(bucket: &Bucket, key: &str, body: &[u8]) -> Result<bool, S3Error> {
    match bucket.get_small(key).await? {
        Some((found, _)) if found == body => bucket.put(key, body.to_vec()).await.map(|()| true),
        _ => Ok(false),
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A set being written to S3.
pub struct S3PendingSet {
    ctx: Arc<SetContext>,
    keys: Keys,
    set: SetRef,
    marker_body: Vec<u8>,
    heartbeat: Heartbeat,
    completed: bool,
}

impl S3PendingSet {
    /// Writes the in-progress marker (this process's identity, see [`WriterMarker`]), starts
    /// its heartbeat, and returns the pending set.
    pub fn begin(bucket: Bucket, keys: &Keys, set: &SetRef) -> Result<Self, StoreError> {
        let marker_key = keys.marker(set);
        let exists = block_on(async {
            Ok::<_, S3Error>(
                bucket.exists(&marker_key).await? || bucket.exists(&keys.manifest(set)).await?,
            )
        })?;
        if exists {
            return Err(StoreError::SetExists(set.clone()));
        }
        let marker = WriterMarker::this_process();
        let marker_body = serde_json::to_vec(&marker).expect("marker serializes");
        block_on(bucket.put(&marker_key, marker_body.clone()))?;
        let heartbeat = Heartbeat::start(
            bucket.clone(),
            marker_key.clone(),
            marker_body.clone(),
            HEARTBEAT_EVERY,
        );
        Ok(Self {
            ctx: Arc::new(SetContext { bucket, marker_key }),
            keys: keys.clone(),
            set: set.clone(),
            marker_body,
            heartbeat,
            completed: false,
        })
    }
}

impl PendingSet for S3PendingSet {
    fn create_artifact(&mut self, name: &str) -> Result<Box<dyn ArtifactSink>, StoreError> {
        assert!(
            !name.contains('/') && !name.starts_with('.'),
            "artifact names are plain file names"
        );
        Ok(Box::new(S3Sink {
            ctx: self.ctx.clone(),
            key: self.keys.artifact(&self.set, name),
            buf: Vec::new(),
            upload_id: None,
            next_part: 1,
            in_flight: VecDeque::new(),
            parts: Vec::new(),
            bytes: 0,
            failed: false,
            finished: false,
        }))
    }

    /// Writes the manifest, unless the marker is no longer ours: then a sweep judged this
    /// writer dead and may have removed artifacts, and the set must stay incomplete.
    fn complete(mut self: Box<Self>, manifest: &[u8]) -> Result<(), StoreError> {
        self.heartbeat.stop();
        let bucket = &self.ctx.bucket;
        let found = block_on(bucket.get_small(&self.ctx.marker_key))?;
        if found.is_none_or(|(body, _)| body != self.marker_body) {
            return Err(StoreError::NotWritable {
                destination: format!("s3://{}/{}", bucket.name(), self.keys.root()),
                reason: format!(
                    "the in-progress marker of {} was removed or replaced by another process \
                     (a sweep judged this writer dead); the set is left incomplete",
                    self.set
                ),
            });
        }
        block_on(bucket.put(&self.keys.manifest(&self.set), manifest.to_vec()))?;
        self.completed = true;
        if let Err(e) = block_on(bucket.delete(&self.ctx.marker_key)) {
            tracing::warn!("Could not remove the in-progress marker of a complete set: {e}");
        }
        Ok(())
    }
}

impl Drop for S3PendingSet {
    fn drop(&mut self) {
        if self.completed {
            return;
        }
        self.heartbeat.stop();
        let (bucket, prefix, marker) = (
            &self.ctx.bucket,
            self.keys.set_prefix(&self.set),
            &self.ctx.marker_key,
        );
        let result = block_on(async {
            let keys = bucket.list_all(&prefix).await?;
            bucket.delete_many(keys).await?;
            bucket.delete(marker).await
        });
        if let Err(e) = result {
            tracing::warn!(set = %self.set, "Could not remove an abandoned set (the next start sweeps it): {e}");
        }
    }
}

/// One artifact streaming to S3: a single PutObject when it fits in one part, else a
/// multipart upload whose parts upload on the shared runtime while the caller keeps writing.
struct S3Sink {
    ctx: Arc<SetContext>,
    key: String,
    /// The part being filled.
    buf: Vec<u8>,
    upload_id: Option<String>,
    next_part: i32,
    in_flight: VecDeque<(i32, JoinHandle<Result<CompletedPart, S3Error>>)>,
    parts: Vec<CompletedPart>,
    bytes: u64,
    failed: bool,
    finished: bool,
}

impl S3Sink {
    /// Sends the filled buffer as the next part, starting the multipart upload if needed and
    /// first waiting for the oldest part when [`MAX_IN_FLIGHT`] are running.
    fn ship_part(&mut self) -> Result<(), S3Error> {
        if self.next_part > MAX_PARTS {
            return Err(S3Error::TooLarge {
                bucket: self.ctx.bucket.name().into(),
                key: self.key.clone(),
                max: MAX_PARTS,
            });
        }
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = block_on(self.ctx.bucket.create_upload(&self.key))?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            self.reap_one()?;
        }
        let number = self.next_part;
        self.next_part += 1;
        let body = std::mem::take(&mut self.buf);
        let upload = self
            .ctx
            .bucket
            .upload_part(&self.key, &upload_id, number, body);
        self.in_flight.push_back((number, runtime().spawn(upload)));
        Ok(())
    }

    /// Waits for the oldest part upload.
    fn reap_one(&mut self) -> Result<(), S3Error> {
        let Some((part, handle)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let done = block_on(handle).map_err(|source| S3Error::Task {
            bucket: self.ctx.bucket.name().into(),
            key: self.key.clone(),
            part,
            source,
        })?;
        self.parts.push(done?);
        Ok(())
    }

    fn finish_upload(&mut self) -> Result<(), S3Error> {
        let bucket = self.ctx.bucket.clone();
        let Some(upload_id) = self.upload_id.clone() else {
            return block_on(bucket.put(&self.key, std::mem::take(&mut self.buf)));
        };
        if !self.buf.is_empty() {
            self.ship_part()?;
        }
        while !self.in_flight.is_empty() {
            self.reap_one()?;
        }
        let mut parts = std::mem::take(&mut self.parts);
        parts.sort_by_key(|p| p.part_number());
        block_on(bucket.complete_upload(&self.key, &upload_id, parts))
    }
}

impl Write for S3Sink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other(format!(
                "the upload of s3://{}/{} failed already",
                self.ctx.bucket.name(),
                self.key
            )));
        }
        if data.is_empty() {
            return Ok(0);
        }
        let size = part_size(self.next_part);
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(size);
        }
        let n = (size - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.bytes += n as u64;
        if self.buf.len() == size {
            if let Err(e) = self.ship_part() {
                self.failed = true;
                return Err(io::Error::other(e));
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ArtifactSink for S3Sink {
    fn finish(mut self: Box<Self>) -> Result<u64, StoreError> {
        self.finish_upload()?;
        self.finished = true;
        Ok(self.bytes)
    }
}

impl Drop for S3Sink {
    /// An unfinished artifact: stops its part uploads and aborts the multipart upload.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let handles: Vec<_> = self.in_flight.drain(..).map(|(_, h)| h).collect();
        let (bucket, key) = (self.ctx.bucket.clone(), self.key.clone());
        let result = block_on(async move {
            for handle in &handles {
                handle.abort();
            }
            for handle in handles {
                let _ = handle.await;
            }
            bucket.abort_upload(&key, &upload_id).await
        });
        if let Err(e) = result {
            tracing::warn!("Could not abort an unfinished upload (the next start sweeps it): {e}");
        }
    }
}
