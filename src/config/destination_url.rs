//! Parsing of `destination.url`: `file:///abs`, `file://./rel`, or `s3://bucket/prefix`.

use std::path::PathBuf;

/// Where backup sets go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestinationUrl {
    /// A directory on this host (relative paths are relative to the working directory).
    File(PathBuf),
    /// An S3-compatible bucket; `prefix` has no leading or trailing slash (may be empty).
    S3 { bucket: String, prefix: String },
}

impl DestinationUrl {
    /// Parses a destination URL, or says what is wrong with it and what is expected.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() {
                return Err("file:// URL has no path; expected file:///var/backups/deis or file://./backups".into());
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3:// URL has no bucket; expected s3://bucket/prefix".into());
            }
            return Ok(Self::S3 {
                bucket: bucket.into(),
                prefix: prefix.trim_matches('/').into(),
            });
        }
        if url.is_empty() {
            return Err(
                "destination URL is empty; expected file:///path or s3://bucket/prefix".into(),
            );
        }
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("(none)");
        Err(format!(
            "unknown scheme {scheme:?}; expected file:///path or s3://bucket/prefix"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_and_s3_urls() {
        assert_eq!(
            DestinationUrl::parse("file:///var/b").unwrap(),
            DestinationUrl::File("/var/b".into())
        );
        assert_eq!(
            DestinationUrl::parse("file://./b").unwrap(),
            DestinationUrl::File("./b".into())
        );
        assert_eq!(
            DestinationUrl::parse("s3://bkt/a/b/").unwrap(),
            DestinationUrl::S3 {
                bucket: "bkt".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            DestinationUrl::parse("s3://bkt").unwrap(),
            DestinationUrl::S3 {
                bucket: "bkt".into(),
                prefix: String::new()
            }
        );
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        assert!(DestinationUrl::parse("s3:///prefix")
            .unwrap_err()
            .contains("no bucket"));
        assert!(DestinationUrl::parse("ftp://x")
            .unwrap_err()
            .contains("\"ftp\""));
        assert!(DestinationUrl::parse("").unwrap_err().contains("empty"));
        assert!(DestinationUrl::parse("file://")
            .unwrap_err()
            .contains("no path"));
    }
}
