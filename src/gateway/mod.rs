//! The store-gateway (Ceph radosgw) as a source and restore target: an aws-sdk-s3 client
//! configured as radosgw needs (path-style, checksums only when required), signing with v4,
//! or with v2 through [`sigv2::SigV2Interceptor`] for Hammer-era gateways, or probing which
//! one the gateway takes (`signature = "auto"`).

pub mod body;
mod client;
mod payload;
pub mod sigv2;

pub use client::{GatewayClient, GatewayObject, ListPage, ListedObject};

use crate::config::Signature;

/// What went wrong talking to the store-gateway. Messages name the gateway side, never a key.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "the gateway endpoint is not configured: set gateway.endpoint (or \
         DEIS_BACKUP_GATEWAY__ENDPOINT), e.g. http://10.0.0.5:8888"
    )]
    NoEndpoint,
    #[error("gateway {endpoint} needs credentials: set gateway access-key and secret-key")]
    MissingCredentials { endpoint: String },
    #[error(
        "gateway {endpoint} refused the credentials with signature {tried} (check gateway \
         access-key/secret-key, and gateway.signature: Hammer-era radosgw speaks only v2)"
    )]
    Credentials { endpoint: String, tried: String },
    #[error(
        "gateway {endpoint} cannot be reached (check gateway.endpoint and the network): {detail}"
    )]
    Unreachable { endpoint: String, detail: String },
    #[error("gateway bucket {bucket} does not exist at {endpoint}")]
    NoBucket { endpoint: String, bucket: String },
    #[error("cannot {action} s3://{bucket}/{key} at the gateway: {detail}")]
    Request {
        action: &'static str,
        bucket: String,
        key: String,
        /// The endpoint and the SDK error with its chain rendered (code, message, request
        /// id). The SDK has retried what was worth retrying already (not a streamed body).
        detail: String,
        /// Trying again may help (no answer, a broken answer, the gateway busy or failing).
        transient: bool,
    },
    #[error("cannot read s3://{bucket}/{key} from the gateway at {endpoint}")]
    Body {
        endpoint: String,
        bucket: String,
        key: String,
        #[source]
        source: aws_sdk_s3::primitives::ByteStreamError,
    },
}

impl GatewayError {
    /// A request that may succeed when tried again (see [`GatewayError::Request`]).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GatewayError::Request {
                transient: true,
                ..
            }
        )
    }
}

/// The signature a connected client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureVersion {
    V2,
    V4,
}

impl SignatureVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureVersion::V2 => "v2",
            SignatureVersion::V4 => "v4",
        }
    }

    /// The versions to try, in order, for a configured [`Signature`].
    pub fn candidates(setting: Signature) -> &'static [SignatureVersion] {
        match setting {
            Signature::V2 => &[SignatureVersion::V2],
            Signature::V4 => &[SignatureVersion::V4],
            Signature::Auto => &[SignatureVersion::V4, SignatureVersion::V2],
        }
    }
}

impl std::fmt::Display for SignatureVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
