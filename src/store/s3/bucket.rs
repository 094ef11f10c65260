//! The few S3 calls the destination makes, as async methods that turn SDK errors into
//! [`S3Error`]s naming the action and the object.

use super::S3Error;
use crate::s3::{describe_failure, status, S3Client};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::Arc;

/// A client bound to one bucket.
#[derive(Clone)]
pub struct Bucket {
    s3: S3Client,
    name: Arc<str>,
}

/// What HeadBucket said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketState {
    Exists,
    Forbidden,
    Missing,
}

/// An object being read.
pub struct Object {
    pub body: ObjectBody,
    pub last_modified: Option<DateTime<Utc>>,
}

/// The body of a GetObject, with the endpoint it streams from (errors name it).
pub struct ObjectBody {
    pub stream: ByteStream,
    pub endpoint: String,
}

fn failed<E>(
    action: &'static str,
    endpoint: &str,
    bucket: &str,
    key: &str,
    err: SdkError<E, HttpResponse>,
) -> S3Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    S3Error::Request {
        action,
        bucket: bucket.into(),
        key: key.into(),
        detail: describe_failure(endpoint, &err),
    }
}

pub(super) fn to_chrono(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

impl Bucket {
    pub fn new(s3: S3Client, name: &str) -> Self {
        Self {
            s3,
            name: name.into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn sdk(&self) -> &aws_sdk_s3::Client {
        self.s3.sdk()
    }

    /// A failed request on `key` of this bucket, naming the endpoint.
    pub(super) fn failed<E>(
        &self,
        action: &'static str,
        key: &str,
        err: SdkError<E, HttpResponse>,
    ) -> S3Error
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        failed(action, self.s3.endpoint(), &self.name, key, err)
    }

    pub async fn head_bucket(&self) -> Result<BucketState, S3Error> {
        match self.sdk().head_bucket().bucket(&*self.name).send().await {
            Ok(_) => Ok(BucketState::Exists),
            Err(e) => match status(&e) {
                Some(401 | 403) => Ok(BucketState::Forbidden),
                Some(404) => Ok(BucketState::Missing),
                _ => Err(self.failed("check bucket", "", e)),
            },
        }
    }

    pub async fn create_bucket(&self) -> Result<(), S3Error> {
        self.sdk()
            .create_bucket()
            .bucket(&*self.name)
            .send()
            .await
            .map_err(|e| self.failed("create bucket", "", e))?;
        Ok(())
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), S3Error> {
        let len = bytes.len();
        self.sdk()
            .put_object()
            .bucket(&*self.name)
            .key(key)
            .body(ByteStream::from(bytes))
            .customize()
            .config_override(self.s3.upload_override(len))
            .send()
            .await
            .map_err(|e| self.failed("write", key, e))?;
        Ok(())
    }

    /// Starts reading an object; `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Object>, S3Error> {
        match self
            .sdk()
            .get_object()
            .bucket(&*self.name)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(Object {
                last_modified: to_chrono(out.last_modified()),
                body: ObjectBody {
                    stream: out.body,
                    endpoint: self.s3.endpoint().to_owned(),
                },
            })),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.failed("read", key, e)),
        }
    }

    /// Reads a small object (manifest, marker) whole.
    pub async fn get_small(
        &self,
        key: &str,
    ) -> Result<Option<(Vec<u8>, Option<DateTime<Utc>>)>, S3Error> {
        let Some(object) = self.get(key).await? else {
            return Ok(None);
        };
        let body = object.body;
        let bytes = body
            .stream
            .collect()
            .await
            .map_err(|source| S3Error::Body {
                endpoint: body.endpoint,
                bucket: self.name.to_string(),
                key: key.into(),
                source,
            })?;
        Ok(Some((bytes.to_vec(), object.last_modified)))
    }

    pub async fn exists(&self, key: &str) -> Result<bool, S3Error> {
        match self
            .sdk()
            .head_object()
            .bucket(&*self.name)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if status(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.failed("look up", key, e)),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        self.sdk()
            .delete_object()
            .bucket(&*self.name)
            .key(key)
            .send()
            .await
            .map_err(|e| self.failed("delete", key, e))?;
        Ok(())
    }

    /// Deletes `keys` with DeleteObjects, 1,000 a request.
    pub async fn delete_many(&self, keys: Vec<String>) -> Result<(), S3Error> {
        for chunk in keys.chunks(1000) {
            let objects = chunk
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .and_then(|objects| {
                    Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build()
                })
                .map_err(|e| S3Error::Request {
                    action: "delete objects under",
                    bucket: self.name.to_string(),
                    key: chunk[0].clone(),
                    detail: e.to_string(),
                })?;
            let out = self
                .sdk()
                .delete_objects()
                .bucket(&*self.name)
                .delete(objects)
                .send()
                .await
                .map_err(|e| self.failed("delete objects under", &chunk[0], e))?;
            if let Some(err) = out.errors().first() {
                return Err(S3Error::Request {
                    action: "delete",
                    bucket: self.name.to_string(),
                    key: err.key().unwrap_or_default().into(),
                    detail: format!(
                        "{}: {}",
                        err.code().unwrap_or("error"),
                        err.message().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }

    pub async fn create_upload(&self, key: &str) -> Result<String, S3Error> {
        let out = self
            .sdk()
            .create_multipart_upload()
            .bucket(&*self.name)
            .key(key)
            .send()
            .await
            .map_err(|e| self.failed("start a multipart upload of", key, e))?;
        out.upload_id.ok_or_else(|| S3Error::Request {
            action: "start a multipart upload of",
            bucket: self.name.to_string(),
            key: key.into(),
            detail: "the response has no upload id".into(),
        })
    }

    /// Uploads one part; `'static` so that it can be spawned.
    pub fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: i32,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<CompletedPart, S3Error>> + Send + 'static {
        let len = body.len();
        let request = self
            .sdk()
            .upload_part()
            .bucket(&*self.name)
            .key(key)
            .upload_id(upload_id)
            .part_number(part_number)
            .body(ByteStream::from(body))
            .customize()
            .config_override(self.s3.upload_override(len));
        let (endpoint, bucket, key) = (
            self.s3.endpoint().to_owned(),
            self.name.to_string(),
            key.to_owned(),
        );
        async move {
            let out = request
                .send()
                .await
                .map_err(|e| failed("upload a part of", &endpoint, &bucket, &key, e))?;
            Ok(CompletedPart::builder()
                .set_e_tag(out.e_tag)
                .part_number(part_number)
                .build())
        }
    }

    pub async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(), S3Error> {
        self.sdk()
            .complete_multipart_upload()
            .bucket(&*self.name)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.failed("complete the multipart upload of", key, e))?;
        Ok(())
    }

    pub async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        self.sdk()
            .abort_multipart_upload()
            .bucket(&*self.name)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| self.failed("abort the multipart upload of", key, e))?;
        Ok(())
    }

    /// The size of an object, `None` when it does not exist.
    pub async fn size_of(&self, key: &str) -> Result<Option<u64>, S3Error> {
        match self
            .sdk()
            .head_object()
            .bucket(&*self.name)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.content_length().unwrap_or_default().max(0) as u64)),
            Err(e) if status(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.failed("look up", key, e)),
        }
    }

    /// `bucket/key` of `from` in this bucket, percent-encoded as `x-amz-copy-source` wants.
    fn copy_source(&self, from: &str) -> String {
        const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'/')
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        format!(
            "{}/{}",
            self.name,
            percent_encoding::utf8_percent_encode(from, KEEP)
        )
    }

    /// Server-side copy of `from` (`size` bytes) to `to` in this bucket (CopyObject: up to
    /// 5 GiB). The server answers once it has copied, so the attempt may take as long as an
    /// upload of `size` bytes.
    pub async fn copy(&self, from: &str, to: &str, size: u64) -> Result<(), S3Error> {
        self.sdk()
            .copy_object()
            .bucket(&*self.name)
            .key(to)
            .copy_source(self.copy_source(from))
            .customize()
            .config_override(self.s3.upload_override(size as usize))
            .send()
            .await
            .map_err(|e| self.failed("copy into", to, e))?;
        Ok(())
    }

    /// Server-side copy of bytes `range` (inclusive) of `from` into part `part_number` of the
    /// multipart upload `upload_id` of `to` (UploadPartCopy, up to 5 GiB), with the deadline
    /// of an upload of that many bytes.
    pub async fn copy_part(
        &self,
        from: &str,
        to: &str,
        upload_id: &str,
        part_number: i32,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<CompletedPart, S3Error> {
        let len = range.end() - range.start() + 1;
        let out = self
            .sdk()
            .upload_part_copy()
            .bucket(&*self.name)
            .key(to)
            .upload_id(upload_id)
            .part_number(part_number)
            .copy_source(self.copy_source(from))
            .copy_source_range(format!("bytes={}-{}", range.start(), range.end()))
            .customize()
            .config_override(self.s3.upload_override(len as usize))
            // the SDK sends this bodiless PUT without a length; radosgw then answers
            // 411 MissingContentLength
            .mutate_request(|request| {
                request.headers_mut().insert("content-length", "0");
            })
            .send()
            .await
            .map_err(|e| self.failed("copy a part into", to, e))?;
        let e_tag = out.copy_part_result.and_then(|r| r.e_tag);
        if e_tag.is_none() {
            return Err(S3Error::Request {
                action: "copy a part into",
                bucket: self.name.to_string(),
                key: to.into(),
                detail: format!("the answer for part {part_number} has no ETag"),
            });
        }
        Ok(CompletedPart::builder()
            .set_e_tag(e_tag)
            .part_number(part_number)
            .build())
    }
}
