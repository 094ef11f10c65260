//! Building an aws-sdk-s3 client configured as radosgw needs (path-style, checksums only when
//! required) with the deadlines of [`TimeoutSettings`] and the SDK's standard retries.
//!
//! What each deadline covers (aws-smithy semantics):
//! - `connect_timeout` = `timeouts.connect`: establishing the TCP/TLS connection.
//! - `read_timeout` and `operation_attempt_timeout` = `timeouts.request`: from sending a
//!   request to its answer's first byte, and one whole attempt. For a streamed GetObject the
//!   attempt ends with the response headers, so the body is not under this deadline.
//! - Stalled-stream protection (uploads and downloads) with grace period `timeouts.idle`: a
//!   body that moves no byte for that long fails, however long a healthy transfer takes.
//! - Requests carrying a body (PutObject, UploadPart) get a longer attempt deadline scaled by
//!   the body's size ([`S3Client::upload_override`]), since sending it is part of the attempt.
//!
//! Retries: the SDK's standard mode, [`MAX_ATTEMPTS`] attempts with exponential backoff. It
//! retries timeouts, connection failures, 5xx and throttling, for every operation whose
//! request body it can send again (all of ours: bodies are in memory). A streamed response
//! body that breaks half-way cannot be retried by the SDK: callers that stream decide.

use crate::config::{Secret, TimeoutSettings};
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    SharedInterceptor, StalledStreamProtectionConfig,
};
use std::time::Duration;

/// Attempts per S3 operation (the first one included).
pub const MAX_ATTEMPTS: u32 = 3;
/// The first retry waits about this long (jittered), the next ones up to [`MAX_BACKOFF`].
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The slowest average rate at which a request body may go up before its attempt is abandoned
/// (in bytes per second): a 64 MiB part may take `request` plus 17 minutes.
pub const MIN_UPLOAD_RATE: u64 = 64 * 1024;

/// What a client is built from.
pub struct ClientSpec<'a> {
    /// `http://host:port`; `None` for AWS itself.
    pub endpoint: Option<&'a str>,
    pub region: &'a str,
    pub access_key: &'a Secret,
    pub secret_key: &'a Secret,
    /// Names the credentials in the SDK's own logs (e.g. `deis-backup-gateway`).
    pub provider_name: &'static str,
    pub timeouts: &'a TimeoutSettings,
}

/// An SDK client with the endpoint it talks to and the deadlines it was built with.
#[derive(Clone, Debug)]
pub struct S3Client {
    sdk: aws_sdk_s3::Client,
    endpoint: String,
    connect: Duration,
    request: Duration,
}

impl S3Client {
    /// Builds the client (no request yet); `interceptor` is e.g. the gateway's signature v2.
    pub fn build(spec: &ClientSpec<'_>, interceptor: Option<SharedInterceptor>) -> Self {
        let credentials = Credentials::new(
            spec.access_key.expose(),
            spec.secret_key.expose(),
            None,
            None,
            spec.provider_name,
        );
        let (connect, request, idle) = (
            spec.timeouts.connect.get(),
            spec.timeouts.request.get(),
            spec.timeouts.idle.get(),
        );
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(spec.region.to_owned()))
            .credentials_provider(credentials)
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .timeout_config(timeouts(connect, request))
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled()
                    .grace_period(idle)
                    .build(),
            )
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(MAX_ATTEMPTS)
                    .with_initial_backoff(INITIAL_BACKOFF)
                    .with_max_backoff(MAX_BACKOFF),
            );
        if let Some(endpoint) = spec.endpoint {
            config = config.endpoint_url(endpoint);
        }
        if let Some(interceptor) = interceptor {
            config.push_interceptor(interceptor);
        }
        let endpoint = match spec.endpoint {
            Some(e) => e.to_owned(),
            None => format!("AWS S3 ({})", spec.region),
        };
        Self {
            sdk: aws_sdk_s3::Client::from_conf(config.build()),
            endpoint,
            connect,
            request,
        }
    }

    /// The SDK client.
    pub fn sdk(&self) -> &aws_sdk_s3::Client {
        &self.sdk
    }

    /// The endpoint URL (or `AWS S3 (region)`), for messages.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A per-operation configuration for a request carrying `body_len` bytes: its attempt may
    /// take `request` plus the time to send the body at [`MIN_UPLOAD_RATE`].
    pub fn upload_override(&self, body_len: usize) -> aws_sdk_s3::config::Builder {
        let deadline = upload_deadline(self.request, body_len);
        aws_sdk_s3::config::Builder::default().timeout_config(timeouts(self.connect, deadline))
    }
}

fn timeouts(connect: Duration, request: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(connect)
        .read_timeout(request)
        .operation_attempt_timeout(request)
        .build()
}

/// `request` plus the time `body_len` bytes take at [`MIN_UPLOAD_RATE`].
fn upload_deadline(request: Duration, body_len: usize) -> Duration {
    request + Duration::from_millis(body_len as u64 * 1000 / MIN_UPLOAD_RATE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigDuration;

    #[test]
    fn uploads_get_time_for_their_body() {
        let request = Duration::from_secs(120);
        assert_eq!(upload_deadline(request, 0), request);
        assert_eq!(
            upload_deadline(request, 64 << 20),
            request + Duration::from_secs(1024)
        );
    }

    #[test]
    fn the_client_carries_the_configured_deadlines() {
        let timeouts = TimeoutSettings {
            connect: ConfigDuration::secs(2),
            request: ConfigDuration::secs(3),
            ..TimeoutSettings::default()
        };
        let key = Secret::new("k");
        let spec = ClientSpec {
            endpoint: Some("http://127.0.0.1:1"),
            region: "us-east-1",
            access_key: &key,
            secret_key: &key,
            provider_name: "test",
            timeouts: &timeouts,
        };
        let client = S3Client::build(&spec, None);
        let config = client.sdk().config();
        let t = config.timeout_config().unwrap();
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(2)));
        assert_eq!(t.read_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(config.retry_config().unwrap().max_attempts(), MAX_ATTEMPTS);
        let s = config.stalled_stream_protection().unwrap();
        assert!(s.upload_enabled() && s.download_enabled());
        assert_eq!(s.grace_period(), Duration::from_secs(60));
        assert_eq!(client.endpoint(), "http://127.0.0.1:1");
        let upload = client.upload_override(128 << 10).build();
        let t = upload.timeout_config().unwrap();
        assert_eq!(t.operation_attempt_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(t.read_timeout(), Some(Duration::from_secs(5)));
        assert_eq!(t.connect_timeout(), Some(Duration::from_secs(2)));
    }
}
