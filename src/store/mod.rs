//! Artifact destinations: where backup sets are written, listed, read and deleted.
//!
//! A set is written through a [`PendingSet`]: artifacts first, the manifest last. A set
//! without a manifest is incomplete: it is never listed, restored or counted as a success,
//! and [`Destination::sweep_incomplete`] removes it once its writer is gone.

mod cancellable;
mod catalog;
mod catalog_index;
mod local;
mod manifest;
mod prune;
pub mod retention;
mod run_id;
mod s3;

pub use cancellable::Cancellable;
pub use catalog::{find_set, list_complete, refresh_index, Listing, SetSelector};
pub use catalog_index::{ListedManifest, INDEX_NAME};
pub use local::LocalDestination;
pub use manifest::{
    Artifact, Manifest, ToolInfo, Warning, WarningKind, FORMAT_VERSION, MANIFEST_NAME,
};
pub use prune::{delete_sets, sha256_bytes, sweep_objects, ObjectSweep};
pub use run_id::{JobKind, RunId, SetRef};
pub use s3::{OpenOptions, S3Destination, S3Error};

use crate::config::{DestinationUrl, Settings};
use chrono::{DateTime, Utc};
use std::io::{Read, Write};
use std::path::PathBuf;

/// What went wrong at a destination, and where.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("destination {destination} is not writable: {reason}")]
    NotWritable { destination: String, reason: String },
    #[error("backup set {0} already exists at the destination")]
    SetExists(SetRef),
    #[error("backup set {set} has no artifact {name}")]
    MissingArtifact { set: SetRef, name: String },
    #[error(
        "{0} destinations are not available in this version yet (planned: S3 destination issue)"
    )]
    NotAvailable(&'static str),
    #[error("destination URL {url:?} is invalid: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(transparent)]
    S3(#[from] S3Error),
}

impl StoreError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    }
}

/// A place that holds backup sets.
pub trait Destination: Send + Sync {
    /// A description for messages (never contains a secret).
    fn describe(&self) -> String;

    /// Removes what interrupted runs left behind: temporary files and sets without a manifest
    /// whose writer is gone. Returns the sets removed.
    fn sweep_incomplete(&self) -> Result<Vec<String>, StoreError>;

    /// Starts writing a new set. Dropping the returned [`PendingSet`] without completing it
    /// removes everything it wrote.
    fn begin_set(&self, set: &SetRef) -> Result<Box<dyn PendingSet>, StoreError>;

    /// Every set folder present, complete or not, optionally of one job only.
    fn list_sets(&self, job: Option<JobKind>) -> Result<Vec<SetRef>, StoreError>;

    /// The manifest bytes of a set, or `None` when the set has none (incomplete).
    fn read_manifest(&self, set: &SetRef) -> Result<Option<Vec<u8>>, StoreError>;

    /// The sets of `job` that have a manifest, with its size and version tag, from a listing
    /// (no manifest is read): what exists, which the catalog index is checked against.
    fn list_manifests(&self, job: JobKind) -> Result<Vec<ListedManifest>, StoreError>;

    /// The bytes of the catalog index of `job` ([`INDEX_NAME`] in the job's folder), `None`
    /// when there is none.
    fn read_index(&self, job: JobKind) -> Result<Option<Vec<u8>>, StoreError>;

    /// Replaces the catalog index of `job` at once (readers see the old or the new one).
    fn write_index(&self, job: JobKind, bytes: &[u8]) -> Result<(), StoreError>;

    /// Streams an artifact of a set.
    fn open_artifact(&self, set: &SetRef, name: &str) -> Result<Box<dyn Read + Send>, StoreError>;

    /// Deletes a whole set (manifest first, so that it stops counting as complete at once).
    fn delete_set(&self, set: &SetRef) -> Result<(), StoreError>;

    /// The shared object store of gateway snapshots, when this destination has one.
    fn objects(&self) -> Option<&dyn ObjectStore> {
        None
    }
}

/// Where the gateway object store lives, relative to the destination root. It is not a set:
/// set listings and sweeps never see it (`objects` is not a run id).
pub const OBJECTS_DIR: &str = "gateway/objects";

/// Where objects are written before their address (sha256) is known:
/// `gateway/objects/.staging/<run-id>/...`, swept once the run's writer is gone.
pub const STAGING_DIR: &str = "gateway/objects/.staging";

/// `gateway/objects/ab/abcdef...`: the address of an object with this sha256 (hex).
pub fn object_path(sha256: &str) -> String {
    // callers pass checked digests (`is_object_name`); anything else gets no usable path
    let folder = sha256.get(..2).unwrap_or("--");
    format!("{OBJECTS_DIR}/{folder}/{sha256}")
}

/// The immutable, content-addressed object store under [`OBJECTS_DIR`] that gateway snapshots
/// share: an object is written once, under the sha256 of its bytes, and never overwritten, so
/// every snapshot referencing it stays restorable. A snapshot only references objects whose
/// [`ObjectSink::commit`] returned; objects a crashed run committed without a snapshot are
/// orphans, harmless, and left for retention to prune.
pub trait ObjectStore: Send + Sync {
    /// The stored size of the object with this sha256, `None` when it is not there.
    fn object_size(&self, sha256: &str) -> Result<Option<u64>, StoreError>;

    /// Starts writing an object for the run `set`; its bytes become visible under their
    /// address only once committed. Dropping the sink uncommitted discards them.
    /// `size_hint` is the expected size (it picks single or multipart uploads).
    fn stage_object(&self, set: &SetRef, size_hint: u64)
        -> Result<Box<dyn ObjectSink>, StoreError>;

    /// Streams the object with this sha256.
    fn open_object(&self, sha256: &str) -> Result<Box<dyn Read + Send>, StoreError>;

    /// Calls `visit` for every committed object, streaming the listing (staged objects under
    /// [`STAGING_DIR`] and names that are not an address are never visited). An error from
    /// `visit` stops the walk and is returned.
    fn for_each_object(
        &self,
        visit: &mut dyn FnMut(ObjectInfo) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Deletes the objects with these sha256s (hex); one already gone is not an error.
    fn delete_objects(&self, sha256s: &[String]) -> Result<(), StoreError>;

    /// A gateway run that may be writing to this store right now (its set, for messages):
    /// such a run may reuse an old object by its address before any snapshot references it.
    fn gateway_writer(&self) -> Result<Option<String>, StoreError>;
}

/// One committed object, as [`ObjectStore::for_each_object`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// sha256 of the bytes, hex (64 lowercase digits): the address.
    pub sha256: String,
    pub size: u64,
    /// When it was written; `None` when the store does not say (never deleted then).
    pub modified: Option<DateTime<Utc>>,
}

/// Whether `name` is an object address: 64 lowercase hex digits.
pub fn is_object_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An object being written to the [`ObjectStore`]; hashes what it is given.
pub trait ObjectSink: Write + Send {
    /// Makes the object durable under its address (unless identical bytes are there already).
    fn commit(self: Box<Self>) -> Result<StoredObject, StoreError>;
}

/// What [`ObjectSink::commit`] stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub size: u64,
    /// sha256 of the bytes, hex: the address.
    pub sha256: String,
    /// The store held these bytes already (from an earlier snapshot or another key).
    pub deduplicated: bool,
}

/// A set being written.
pub trait PendingSet: Send {
    /// Starts an artifact of the set; its bytes become visible only once finished.
    fn create_artifact(&mut self, name: &str) -> Result<Box<dyn ArtifactSink>, StoreError>;

    /// Writes the manifest durably, which makes the set complete.
    fn complete(self: Box<Self>, manifest: &[u8]) -> Result<(), StoreError>;
}

/// The byte stream of one artifact. Dropping it unfinished discards what was written.
pub trait ArtifactSink: Write + Send {
    /// Makes the artifact durable; returns its size in bytes.
    fn finish(self: Box<Self>) -> Result<u64, StoreError>;
}

/// Opens the destination named by the settings (for S3, after its health check).
pub fn open_destination(settings: &Settings) -> Result<Box<dyn Destination>, StoreError> {
    open_destination_with(settings, OpenOptions::default())
}

/// Opens the destination named by the settings, with `options` (e.g. create a missing bucket).
pub fn open_destination_with(
    settings: &Settings,
    options: OpenOptions,
) -> Result<Box<dyn Destination>, StoreError> {
    let url = &settings.destination.url;
    match DestinationUrl::parse(url) {
        Ok(DestinationUrl::File(path)) => Ok(Box::new(LocalDestination::new(path))),
        Ok(DestinationUrl::S3 { bucket, prefix }) => Ok(Box::new(s3::open(
            &bucket,
            &prefix,
            &settings.destination,
            &settings.timeouts,
            options,
        )?)),
        Err(reason) => Err(StoreError::BadUrl {
            url: url.clone(),
            reason,
        }),
    }
}
