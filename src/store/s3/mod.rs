//! A destination in an S3-compatible bucket (`s3://bucket/prefix`): AWS S3 or Ceph radosgw.
//!
//! Same layout as the local destination (see [`layout`]): artifacts stream as multipart
//! uploads of bounded parts, the manifest is a single PutObject written last, and an
//! in-progress marker object stands in for the local lock so that a sweep can tell a live
//! writer from a dead one (the rule is [`layout::writer_state`]).

mod bucket;
mod catalog;
mod copy;
mod layout;
mod listing;
mod objects;
mod read;
mod sweep;
mod upload;

use layout::Keys;

use super::{Destination, JobKind, ListedManifest, PendingSet, SetRef, StoreError};
use crate::config::{DestinationSettings, Secret, TimeoutSettings};
use crate::runtime::block_on;
use crate::s3::{ClientSpec, S3Client};
use bucket::Bucket;
use std::io::Read;

/// The region used when the settings name none (what radosgw expects).
pub const DEFAULT_REGION: &str = "us-east-1";

/// What went wrong talking to the S3 destination. Messages never contain a key.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error(
        "destination {destination} refused the credentials (check destination access-key/secret-key)"
    )]
    Credentials { destination: String },
    #[error("destination bucket {bucket} does not exist (pass --create-bucket to create it)")]
    NoBucket { bucket: String },
    #[error(
        "destination {destination} needs credentials: set destination access-key and secret-key"
    )]
    MissingCredentials { destination: String },
    #[error(
        "cannot {action} {} at the destination: {detail}",
        object_url(bucket, key)
    )]
    Request {
        action: &'static str,
        bucket: String,
        key: String,
        /// The SDK error with its whole chain rendered (code, message, request id).
        detail: String,
    },
    #[error("cannot read s3://{bucket}/{key} from the destination at {endpoint}")]
    Body {
        endpoint: String,
        bucket: String,
        key: String,
        #[source]
        source: aws_sdk_s3::primitives::ByteStreamError,
    },
    #[error("the upload of part {part} of s3://{bucket}/{key} stopped unexpectedly")]
    Task {
        bucket: String,
        key: String,
        part: i32,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("artifact s3://{bucket}/{key} needs more than {max} parts")]
    TooLarge {
        bucket: String,
        key: String,
        max: i32,
    },
}

/// How the destination is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// Create the bucket when it does not exist (`backup --create-bucket`).
    pub create_bucket: bool,
}

/// Backup sets in an S3 bucket under a prefix.
pub struct S3Destination {
    bucket: Bucket,
    keys: Keys,
    description: String,
    /// `destination.copy-limit` in bytes: larger gateway objects are copied in parts.
    copy_limit: u64,
}

impl S3Destination {
    /// A client for `s3://bucket/prefix` with the endpoint, region and keys of `settings`,
    /// configured as radosgw needs (path-style, checksums only when required) with the
    /// deadlines of `timeouts` (see [`crate::s3::client`]). No request yet.
    pub fn new(
        bucket: &str,
        prefix: &str,
        settings: &DestinationSettings,
        timeouts: &TimeoutSettings,
    ) -> Result<Self, S3Error> {
        let description = describe(bucket, prefix, settings.endpoint.as_deref());
        let (Some(access_key), Some(secret_key)) = (&settings.access_key, &settings.secret_key)
        else {
            return Err(S3Error::MissingCredentials {
                destination: description,
            });
        };
        let client = client(settings, timeouts, access_key, secret_key);
        Ok(Self {
            bucket: Bucket::new(client, bucket),
            keys: Keys::new(prefix),
            description,
            copy_limit: settings.copy_limit.get(),
        })
    }

    /// The start-up health check: HeadBucket, turning 403 and 404 into messages that say what
    /// to fix; with `create_bucket`, a missing bucket is created (no LocationConstraint).
    pub fn check(&self, options: OpenOptions) -> Result<(), S3Error> {
        match block_on(self.bucket.head_bucket()) {
            Ok(bucket::BucketState::Exists) => Ok(()),
            Ok(bucket::BucketState::Forbidden) => Err(S3Error::Credentials {
                destination: self.description.clone(),
            }),
            Ok(bucket::BucketState::Missing) if options.create_bucket => {
                block_on(self.bucket.create_bucket())?;
                tracing::info!(bucket = %self.bucket.name(), "Created the destination bucket.");
                Ok(())
            }
            Ok(bucket::BucketState::Missing) => Err(S3Error::NoBucket {
                bucket: self.bucket.name().to_string(),
            }),
            Err(e) => Err(e),
        }
    }
}

/// `s3://bucket/key`, or `s3://bucket` for the bucket itself.
fn object_url(bucket: &str, key: &str) -> String {
    if key.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{key}")
    }
}

/// `s3://bucket/prefix` plus the endpoint when it is not AWS.
fn describe(bucket: &str, prefix: &str, endpoint: Option<&str>) -> String {
    let url = format!("s3://{bucket}/{prefix}");
    match endpoint {
        Some(e) => format!("{url} at {e}"),
        None => url,
    }
}

fn client(
    settings: &DestinationSettings,
    timeouts: &TimeoutSettings,
    access_key: &Secret,
    secret_key: &Secret,
) -> S3Client {
    let region = settings
        .region
        .as_deref()
        .filter(|r| !r.is_empty())
        .unwrap_or(DEFAULT_REGION);
    let spec = ClientSpec {
        endpoint: settings.endpoint.as_deref().filter(|e| !e.is_empty()),
        region,
        access_key,
        secret_key,
        provider_name: "deis-backup-destination",
        timeouts,
    };
    S3Client::build(&spec, None)
}

impl Destination for S3Destination {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn sweep_incomplete(&self) -> Result<Vec<String>, StoreError> {
        Ok(block_on(sweep::sweep(&self.bucket, &self.keys))?)
    }

    fn begin_set(&self, set: &SetRef) -> Result<Box<dyn PendingSet>, StoreError> {
        Ok(Box::new(upload::S3PendingSet::begin(
            self.bucket.clone(),
            &self.keys,
            set,
        )?))
    }

    fn list_sets(&self, job: Option<JobKind>) -> Result<Vec<SetRef>, StoreError> {
        let mut sets = Vec::new();
        for job in JobKind::ALL
            .into_iter()
            .filter(|j| job.is_none_or(|want| want == *j))
        {
            let listing = block_on(self.bucket.list_folder(&self.keys.job_prefix(job)))?;
            sets.extend(
                listing
                    .folders
                    .iter()
                    .filter_map(|f| self.keys.set_of_folder(job, f)),
            );
        }
        Ok(sets)
    }

    fn read_manifest(&self, set: &SetRef) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(block_on(self.bucket.get_small(&self.keys.manifest(set)))?.map(|(bytes, _)| bytes))
    }

    fn list_manifests(&self, job: JobKind) -> Result<Vec<ListedManifest>, StoreError> {
        Ok(block_on(catalog::list_manifests(
            &self.bucket,
            &self.keys,
            job,
        ))?)
    }

    fn read_index(&self, job: JobKind) -> Result<Option<Vec<u8>>, StoreError> {
        let key = catalog::index_key(&self.keys, job);
        Ok(block_on(self.bucket.get_small(&key))?.map(|(bytes, _)| bytes))
    }

    fn write_index(&self, job: JobKind, bytes: &[u8]) -> Result<(), StoreError> {
        let key = catalog::index_key(&self.keys, job);
        Ok(block_on(self.bucket.put(&key, bytes.to_vec()))?)
    }

    fn open_artifact(&self, set: &SetRef, name: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        let key = self.keys.artifact(set, name);
        match block_on(self.bucket.get(&key))? {
            Some(object) => Ok(Box::new(read::ObjectReader::new(
                object.body,
                self.bucket.name(),
                key,
            ))),
            None => Err(StoreError::MissingArtifact {
                set: set.clone(),
                name: name.into(),
            }),
        }
    }

    fn delete_set(&self, set: &SetRef) -> Result<(), StoreError> {
        block_on(async {
            self.bucket.delete(&self.keys.manifest(set)).await?;
            let keys = self.bucket.list_all(&self.keys.set_prefix(set)).await?;
            self.bucket.delete_many(keys).await
        })?;
        Ok(())
    }

    fn objects(&self) -> Option<&dyn crate::store::ObjectStore> {
        Some(self)
    }
}

/// Opens `s3://bucket/prefix` and runs the health check.
pub fn open(
    bucket: &str,
    prefix: &str,
    settings: &DestinationSettings,
    timeouts: &TimeoutSettings,
    options: OpenOptions,
) -> Result<S3Destination, S3Error> {
    let dest = S3Destination::new(bucket, prefix, settings, timeouts)?;
    dest.check(options)?;
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_name_the_endpoint_but_no_key() {
        let settings = DestinationSettings {
            url: "s3://b/p".into(),
            endpoint: Some("http://127.0.0.1:1".into()),
            region: None,
            access_key: Some(Secret::new("AKIDSECRETISH")),
            secret_key: Some(Secret::new("very-secret")),
            ..DestinationSettings::default()
        };
        let dest = S3Destination::new("b", "p", &settings, &TimeoutSettings::default()).unwrap();
        let text = dest.describe();
        assert_eq!(text, "s3://b/p at http://127.0.0.1:1");
        let err = S3Error::Credentials { destination: text };
        let shown = err.to_string();
        assert!(shown.contains("refused the credentials"));
        assert!(!shown.contains("very-secret") && !shown.contains("AKIDSECRETISH"));
    }

    #[test]
    fn missing_keys_are_a_clear_error() {
        let settings = DestinationSettings {
            url: "s3://b".into(),
            ..DestinationSettings::default()
        };
        let err = S3Destination::new("b", "", &settings, &TimeoutSettings::default())
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("access-key and secret-key"),
            "{err}"
        );
    }
}
