//! The calls the gateway job and its restore make, as async methods turning SDK errors into
//! [`GatewayError`]s that name the action, the object and whether a retry may help.

use super::payload::KnownPayloadHash;
use super::sigv2::SigV2Interceptor;
use super::{GatewayError, SignatureVersion};
use crate::config::{GatewaySettings, Secret, TimeoutSettings};
use crate::error_chain::error_chain;
use crate::s3::{describe_failure, status, ClientSpec, S3Client};
use aws_sdk_s3::config::SharedInterceptor;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use std::collections::{BTreeMap, HashMap};

/// One object of a bucket listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    pub size: u64,
    /// Without the surrounding quotes.
    pub etag: String,
}

/// One page of a bucket listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    pub objects: Vec<ListedObject>,
    /// The marker of the next page; `None` on the last page.
    pub next: Option<String>,
}

/// An object being read, with what its response said about it.
pub struct GatewayObject {
    pub body: ByteStream,
    pub size: u64,
    pub etag: String,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// A client of the store-gateway, signing with the version that the gateway accepted.
#[derive(Clone)]
pub struct GatewayClient {
    s3: S3Client,
    signature: SignatureVersion,
}

/// `"abc"` -> `abc`.
fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

fn build(
    settings: &GatewaySettings,
    timeouts: &TimeoutSettings,
    endpoint: &str,
    version: SignatureVersion,
) -> S3Client {
    let empty = Secret::new("");
    let access = settings.access_key.as_ref().unwrap_or(&empty);
    let secret = settings.secret_key.as_ref().unwrap_or(&empty);
    let spec = ClientSpec {
        endpoint: Some(endpoint),
        region: "us-east-1",
        access_key: access,
        secret_key: secret,
        provider_name: "deis-backup-gateway",
        timeouts,
    };
    let sigv2 = (version == SignatureVersion::V2)
        .then(|| SharedInterceptor::new(SigV2Interceptor::new(access.clone(), secret.clone())));
    S3Client::build(&spec, sigv2)
}

impl GatewayClient {
    /// A client for the configured gateway, without any request yet, signing with `version`.
    pub fn new(
        settings: &GatewaySettings,
        timeouts: &TimeoutSettings,
        version: SignatureVersion,
    ) -> Result<Self, GatewayError> {
        let endpoint = settings
            .endpoint
            .clone()
            .filter(|e| !e.is_empty())
            .ok_or(GatewayError::NoEndpoint)?;
        if settings.access_key.is_none() || settings.secret_key.is_none() {
            return Err(GatewayError::MissingCredentials { endpoint });
        }
        Ok(Self {
            s3: build(settings, timeouts, &endpoint, version),
            signature: version,
        })
    }

    /// Connects to the configured gateway: tries each signature that `gateway.signature`
    /// allows (v4 then v2 for `auto`) with a ListBuckets, and keeps the first one accepted.
    pub async fn connect(
        settings: &GatewaySettings,
        timeouts: &TimeoutSettings,
    ) -> Result<Self, GatewayError> {
        let mut tried = Vec::new();
        for &version in SignatureVersion::candidates(settings.signature) {
            let client = Self::new(settings, timeouts, version)?;
            match client.s3.sdk().list_buckets().send().await {
                Ok(_) => {
                    tracing::debug!(endpoint = %client.endpoint(), signature = %version, "Connected to the gateway.");
                    return Ok(client);
                }
                Err(e) if matches!(status(&e), Some(400 | 401 | 403)) => {
                    tracing::debug!(signature = %version, "The gateway refused a signature: {}", DisplayErrorContext(&e));
                    tried.push(version.as_str());
                }
                Err(e) => {
                    return Err(GatewayError::Unreachable {
                        endpoint: client.endpoint().to_owned(),
                        detail: error_chain(&e),
                    })
                }
            }
        }
        Err(GatewayError::Credentials {
            endpoint: settings.endpoint.clone().unwrap_or_default(),
            tried: tried.join(" and "),
        })
    }

    pub fn endpoint(&self) -> &str {
        self.s3.endpoint()
    }

    pub fn signature(&self) -> SignatureVersion {
        self.signature
    }

    /// The underlying SDK client (tests use it to reach the gateway behind the job's back).
    pub fn sdk(&self) -> &aws_sdk_s3::Client {
        self.s3.sdk()
    }

    fn failed<E>(
        &self,
        action: &'static str,
        bucket: &str,
        key: &str,
        err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> GatewayError
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        GatewayError::Request {
            action,
            bucket: bucket.into(),
            key: key.into(),
            detail: describe_failure(self.endpoint(), &err),
            transient: is_transient(&err),
        }
    }

    /// Every object of `bucket`, in key order (all pages; the restore's comparison uses it).
    pub async fn list_bucket(&self, bucket: &str) -> Result<Vec<ListedObject>, GatewayError> {
        let mut objects = Vec::new();
        let mut marker = None;
        loop {
            let page = self.list_page(bucket, marker.take()).await?;
            objects.extend(page.objects);
            match page.next {
                Some(next) => marker = Some(next),
                None => return Ok(objects),
            }
        }
    }

    /// One page (up to 1,000 objects) of `bucket` in key order, starting after `marker`.
    /// Uses ListObjects (v1) with a marker: Hammer's radosgw predates ListObjectsV2 and would
    /// answer it with a v1 page and no continuation token, silently stopping at 1,000 keys.
    pub async fn list_page(
        &self,
        bucket: &str,
        marker: Option<String>,
    ) -> Result<ListPage, GatewayError> {
        let page = self
            .sdk()
            .list_objects()
            .bucket(bucket)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| {
                if status(&e) == Some(404) {
                    GatewayError::NoBucket {
                        endpoint: self.endpoint().to_owned(),
                        bucket: bucket.into(),
                    }
                } else if matches!(status(&e), Some(401 | 403)) {
                    GatewayError::Credentials {
                        endpoint: self.endpoint().to_owned(),
                        tried: self.signature.to_string(),
                    }
                } else {
                    self.failed("list", bucket, "", e)
                }
            })?;
        let objects: Vec<ListedObject> = page
            .contents()
            .iter()
            .filter_map(|o| {
                Some(ListedObject {
                    key: o.key()?.to_owned(),
                    size: o.size().unwrap_or_default().max(0) as u64,
                    etag: unquote(o.e_tag().unwrap_or_default()),
                })
            })
            .collect();
        let next = if page.is_truncated() == Some(true) {
            page.next_marker()
                .map(str::to_owned)
                .or_else(|| objects.last().map(|o| o.key.clone()))
        } else {
            None
        };
        Ok(ListPage { objects, next })
    }

    /// Starts reading an object; `None` when it does not exist (any more).
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<GatewayObject>, GatewayError> {
        match self.sdk().get_object().bucket(bucket).key(key).send().await {
            Ok(out) => Ok(Some(GatewayObject {
                size: out.content_length().unwrap_or_default().max(0) as u64,
                etag: unquote(out.e_tag().unwrap_or_default()),
                content_type: out.content_type().map(str::to_owned),
                metadata: out
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                body: out.body,
            })),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.failed("read", bucket, key, e)),
        }
    }

    /// Size and ETag of an object, `None` when it does not exist.
    pub async fn head(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(u64, String)>, GatewayError> {
        match self
            .sdk()
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some((
                out.content_length().unwrap_or_default().max(0) as u64,
                unquote(out.e_tag().unwrap_or_default()),
            ))),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.failed("look up", bucket, key, e)),
        }
    }

    /// Whether `bucket` exists (a 403 means it belongs to someone else: an error).
    pub async fn bucket_exists(&self, bucket: &str) -> Result<bool, GatewayError> {
        match self.sdk().head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.failed("check bucket", bucket, "", e)),
        }
    }

    /// Creates `bucket` (no LocationConstraint: radosgw refuses unknown ones).
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), GatewayError> {
        self.sdk()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| self.failed("create bucket", bucket, "", e))?;
        Ok(())
    }

    /// Writes a whole object of `len` bytes in one PutObject. `sha256` is the body's (the
    /// caller checks it): the request is signed with it instead of hashing the body again, and
    /// a v4 gateway refuses the object if the bytes it receives do not match it. A streamed
    /// `body` (see [`super::body`]) is not sent again by the SDK's retries: the caller retries
    /// failures that [`GatewayError::is_transient`].
    #[allow(clippy::too_many_arguments)]
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: ByteStream,
        len: u64,
        sha256: &str,
        content_type: Option<&str>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<(), GatewayError> {
        self.sdk()
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_length(len as i64)
            .set_content_type(content_type.map(str::to_owned))
            .set_metadata(Some(to_map(metadata)))
            .body(body)
            .customize()
            .interceptor(KnownPayloadHash(sha256.to_owned()))
            .config_override(self.s3.upload_override(len as usize))
            .send()
            .await
            .map_err(|e| self.failed("write", bucket, key, e))?;
        Ok(())
    }

    /// Starts a multipart upload carrying the object's content type and metadata.
    pub async fn create_upload(
        &self,
        bucket: &str,
        key: &str,
        content_type: Option<&str>,
        metadata: &BTreeMap<String, String>,
    ) -> Result<String, GatewayError> {
        let out = self
            .sdk()
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .set_content_type(content_type.map(str::to_owned))
            .set_metadata(Some(to_map(metadata)))
            .send()
            .await
            .map_err(|e| self.failed("start a multipart upload of", bucket, key, e))?;
        out.upload_id.ok_or_else(|| GatewayError::Request {
            action: "start a multipart upload of",
            bucket: bucket.into(),
            key: key.into(),
            detail: "the response has no upload id".into(),
            transient: false,
        })
    }

    pub async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Vec<u8>,
    ) -> Result<CompletedPart, GatewayError> {
        let len = body.len();
        let out = self
            .sdk()
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(ByteStream::from(body))
            .customize()
            .config_override(self.s3.upload_override(len))
            .send()
            .await
            .map_err(|e| self.failed("upload a part of", bucket, key, e))?;
        Ok(CompletedPart::builder()
            .set_e_tag(out.e_tag)
            .part_number(part_number)
            .build())
    }

    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(), GatewayError> {
        self.sdk()
            .complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.failed("complete the multipart upload of", bucket, key, e))?;
        Ok(())
    }

    pub async fn abort_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), GatewayError> {
        self.sdk()
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| self.failed("abort the multipart upload of", bucket, key, e))?;
        Ok(())
    }
}

/// Whether a failed request may succeed when tried again: no answer (in time), a broken
/// answer, or the gateway busy or failing (5xx, 429, 408).
fn is_transient<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => matches!(status(err), Some(408 | 429 | 500..=599)),
        _ => false,
    }
}

fn to_map(metadata: &BTreeMap<String, String>) -> HashMap<String, String> {
    metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Signature;

    #[test]
    fn etags_lose_their_quotes() {
        assert_eq!(unquote("\"abc-2\""), "abc-2");
        assert_eq!(unquote("abc"), "abc");
    }

    #[test]
    fn missing_settings_are_clear_errors_naming_the_gateway() {
        let mut s = GatewaySettings::default();
        assert!(matches!(
            GatewayClient::new(&s, &TimeoutSettings::default(), SignatureVersion::V4)
                .err()
                .unwrap(),
            GatewayError::NoEndpoint
        ));
        s.endpoint = Some("http://127.0.0.1:1".into());
        let err = GatewayClient::new(&s, &TimeoutSettings::default(), SignatureVersion::V2)
            .err()
            .unwrap();
        assert!(err
            .to_string()
            .contains("gateway http://127.0.0.1:1 needs credentials"));
        assert_eq!(
            SignatureVersion::candidates(Signature::Auto),
            [SignatureVersion::V4, SignatureVersion::V2]
        );
    }
}
