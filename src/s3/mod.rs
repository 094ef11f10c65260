//! The one way this program talks S3, for both the store-gateway (the backup source) and an
//! `s3://` destination: a client builder with deadlines and the SDK's bounded retries
//! ([`client`]), and the rendering of SDK errors so that every message names the endpoint
//! ([`error`]).

pub mod client;
pub mod error;

pub use client::{ClientSpec, S3Client, MAX_ATTEMPTS, MIN_UPLOAD_RATE};
pub use error::{describe_failure, status};
