//! Turning an SDK failure into one line that says which endpoint failed and how: no answer in
//! time, no connection, a broken answer, or what the service answered.

use crate::error_chain::error_chain;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};

/// The HTTP status of a failed request, when an answer came.
pub fn status<E>(err: &SdkError<E, HttpResponse>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// `http://host:port did not answer in time: <its causes>`, and the like. An answer from
/// the service is rendered with the SDK's full context (code, message, request id).
pub fn describe_failure<E>(endpoint: &str, err: &SdkError<E, HttpResponse>) -> String
where
    E: std::error::Error + Send + Sync + 'static,
{
    let what = match err {
        SdkError::TimeoutError(_) => "did not answer in time",
        SdkError::DispatchFailure(f) if f.is_timeout() => "did not answer in time",
        SdkError::DispatchFailure(_) => "cannot be reached",
        SdkError::ResponseError(_) => "sent a broken answer",
        SdkError::ServiceError(_) => "refused",
        _ => "failed",
    };
    let detail = match err {
        SdkError::ServiceError(_) => DisplayErrorContext(err).to_string(),
        _ => error_chain(err),
    };
    format!("{endpoint} {what}: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::head_bucket::HeadBucketError;

    #[test]
    fn messages_name_the_endpoint() {
        let err: SdkError<HeadBucketError, HttpResponse> =
            SdkError::construction_failure(std::io::Error::other("boom"));
        let text = describe_failure("http://127.0.0.1:9", &err);
        assert!(text.starts_with("http://127.0.0.1:9 failed: "), "{text}");
        assert!(text.contains("boom"), "{text}");
        let err: SdkError<HeadBucketError, HttpResponse> =
            SdkError::timeout_error(std::io::Error::other("3s"));
        let text = describe_failure("http://127.0.0.1:9", &err);
        assert!(
            text.starts_with("http://127.0.0.1:9 did not answer in time"),
            "{text}"
        );
    }
}
