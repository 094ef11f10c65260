//! The start-up sweep: aborts multipart uploads and removes set folders that dead writers left,
//! by the rule of [`writer_state`].
//!
//! A multipart copy at a gateway object's address (see [`super::copy`]) names no set: it was
//! started by a gateway writer, so it is dead once no gateway writer is alive. It is invisible
//! while open, but holds the bytes of a copy until it is aborted.

use super::bucket::Bucket;
use super::layout::{loose_upload_is_dead, writer_state, FoundMarker, Keys, Vantage, Writer};
use super::S3Error;
use crate::store::{JobKind, SetRef};
use crate::util::ProcessIdentity;
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};

/// Judges writers, reading each set's marker once, after the set or upload was seen (a live
/// writer's marker exists before anything else of its set, so it cannot be missed).
struct Judge<'a> {
    bucket: &'a Bucket,
    keys: &'a Keys,
    here: Vantage,
    now: DateTime<Utc>,
    seen: HashMap<SetRef, Writer>,
}

impl Judge<'_> {
    async fn writer(&mut self, set: &SetRef) -> Result<Writer, S3Error> {
        if let Some(w) = self.seen.get(set) {
            return Ok(*w);
        }
        let marker =
            self.bucket
                .get_small(&self.keys.marker(set))
                .await?
                .map(|(bytes, modified)| FoundMarker {
                    writer: serde_json::from_slice(&bytes).ok(),
                    last_modified: modified.unwrap_or(self.now),
                });
        let verdict = writer_state(
            marker.as_ref(),
            &self.here,
            ProcessIdentity::is_alive_here,
            self.now,
        );
        if let Writer::Dead(why) = verdict {
            tracing::debug!(set = %set, reason = why, "The writer of a set is gone.");
        }
        self.seen.insert(set.clone(), verdict);
        Ok(verdict)
    }

    /// Whether the writer of any gateway set (a marker under `<prefix>/gateway/`) is alive.
    async fn any_gateway_writer_alive(&mut self) -> Result<bool, S3Error> {
        let listing = self
            .bucket
            .list_folder(&self.keys.job_prefix(JobKind::Gateway))
            .await?;
        for (key, _) in &listing.objects {
            if let Some(set) = self.keys.set_of_marker(JobKind::Gateway, key) {
                if self.writer(&set).await? == Writer::Alive {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// Aborts dead writers' multipart uploads under our prefix, deletes their set folders that
/// have no manifest, and their markers. Returns the sets removed.
pub async fn sweep(bucket: &Bucket, keys: &Keys) -> Result<Vec<String>, S3Error> {
    let mut judge = Judge {
        bucket,
        keys,
        here: Vantage::here(),
        now: Utc::now(),
        seen: HashMap::new(),
    };
    let mut gateway_writing: Option<bool> = None;

    for upload in bucket.list_uploads(keys.root()).await? {
        let dead = match keys
            .set_of_key(&upload.key)
            .or_else(|| keys.set_of_staged(&upload.key))
        {
            Some(set) => matches!(judge.writer(&set).await?, Writer::Dead(_)),
            None if keys.is_object(&upload.key) => match gateway_writing {
                Some(alive) => !alive,
                None => {
                    let alive = judge.any_gateway_writer_alive().await?;
                    gateway_writing = Some(alive);
                    !alive
                }
            },
            None => upload
                .initiated
                .is_some_and(|t| loose_upload_is_dead(t, judge.now)),
        };
        if dead {
            // a writer completing the upload since the listing makes it gone: not a failure
            match bucket.abort_upload(&upload.key, &upload.upload_id).await {
                Ok(()) => tracing::info!(key = %upload.key, "Aborted a multipart upload left by an interrupted run."),
                Err(e) => tracing::warn!("Could not abort a multipart upload left by an interrupted run (the next sweep retries): {e}"),
            }
        }
    }

    // staged gateway objects of dead runs: never committed, referenced by no snapshot
    let staging = bucket.list_folder(&keys.staging_root()).await?;
    for folder in &staging.folders {
        let Some(set) = keys.set_of_staged(folder) else {
            continue;
        };
        if matches!(judge.writer(&set).await?, Writer::Dead(_)) {
            let objects = bucket.list_all(folder).await?;
            bucket.delete_many(objects).await?;
        }
    }

    let mut removed = Vec::new();
    for job in JobKind::ALL {
        let listing = bucket.list_folder(&keys.job_prefix(job)).await?;
        let folders: BTreeSet<SetRef> = listing
            .folders
            .iter()
            .filter_map(|f| keys.set_of_folder(job, f))
            .collect();
        let markers: BTreeSet<SetRef> = listing
            .objects
            .iter()
            .filter_map(|(key, _)| keys.set_of_marker(job, key))
            .collect();
        for set in folders.union(&markers) {
            if !matches!(judge.writer(set).await?, Writer::Dead(_)) {
                continue;
            }
            if folders.contains(set) && !bucket.exists(&keys.manifest(set)).await? {
                let objects = bucket.list_all(&keys.set_prefix(set)).await?;
                bucket.delete_many(objects).await?;
                removed.push(set.to_string());
            }
            if markers.contains(set) {
                bucket.delete(&keys.marker(set)).await?;
            }
        }
    }
    Ok(removed)
}
