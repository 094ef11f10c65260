//! AWS signature version 2 for S3, which aws-sdk-s3 does not speak but the Ceph Hammer radosgw
//! of Deis 1.6-1.13 requires: the string to sign, its HMAC-SHA1, and an SDK interceptor that
//! replaces the SDK's v4 `Authorization` header with a v2 one just before each request is sent.

use crate::config::Secret;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use base64::Engine;
use hmac::{Hmac, Mac};
use percent_encoding::percent_decode_str;
use std::collections::BTreeMap;
use std::fmt;

/// Query parameters that name a sub-resource and so belong to the string to sign
/// (the list of the S3 v2 specification); every other parameter is left out.
const SUB_RESOURCES: &[&str] = &[
    "acl",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Headers of the v4 signer that a v2 request must not carry.
const V4_HEADERS: &[&str] = &["x-amz-date", "x-amz-content-sha256", "x-amz-security-token"];

/// The v2 string to sign of a request: method, Content-MD5, Content-Type, Date, the
/// canonicalized `x-amz-*` headers and the canonicalized resource.
///
/// `path_and_query` is the request target as sent (path still percent-encoded, which is what
/// the server signs too); `headers` are every header of the request.
pub fn string_to_sign<'a>(
    method: &str,
    path_and_query: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut content_md5 = "";
    let mut content_type = "";
    let mut date = "";
    let mut amz: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        match lower.as_str() {
            "content-md5" => content_md5 = value,
            "content-type" => content_type = value,
            "date" => date = value,
            _ if lower.starts_with("x-amz-") => amz.entry(lower).or_default().push(value.trim()),
            _ => {}
        }
    }
    // with x-amz-date present, the Date line is empty and the header signs as an amz header
    if amz.contains_key("x-amz-date") {
        date = "";
    }
    let mut out = format!("{method}\n{content_md5}\n{content_type}\n{date}\n");
    for (name, values) in &amz {
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push_str(&canonical_resource(path_and_query));
    out
}

/// `/bucket/key` as requested, plus the sub-resources of the query, sorted, values decoded.
fn canonical_resource(path_and_query: &str) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut subs: Vec<(String, Option<String>)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode_str(name).decode_utf8_lossy().into_owned();
            if !SUB_RESOURCES.contains(&name.as_str()) {
                return None;
            }
            let value = percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            Some((name, (!value.is_empty()).then_some(value)))
        })
        .collect();
    subs.sort();
    let mut out = if path.is_empty() {
        "/".to_string()
    } else {
        path.to_string()
    };
    for (i, (name, value)) in subs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        if let Some(value) = value {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

/// base64(HMAC-SHA1(secret, string_to_sign)).
pub fn signature(secret: &str, string_to_sign: &str) -> String {
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Re-signs every request with signature v2 right before it is sent (after the SDK's own v4
/// signing, whose headers it removes). Retries pass through it again, with a fresh date.
pub struct SigV2Interceptor {
    access_key: Secret,
    secret_key: Secret,
}

impl SigV2Interceptor {
    pub fn new(access_key: Secret, secret_key: Secret) -> Self {
        Self {
            access_key,
            secret_key,
        }
    }
}

impl fmt::Debug for SigV2Interceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigV2Interceptor")
    }
}

/// The current time as an HTTP date (RFC 1123), what the v2 `Date` header holds.
pub fn http_date(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// The request target (path and query) of a full URI.
fn path_and_query(uri: &str) -> &str {
    let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) => &after_scheme[i..],
        None => "/",
    }
}

impl Intercept for SigV2Interceptor {
    fn name(&self) -> &'static str {
        "SigV2Interceptor"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let request = context.request_mut();
        let headers = request.headers_mut();
        headers.remove("authorization");
        for name in V4_HEADERS {
            headers.remove(*name);
        }
        headers.insert("date", http_date(chrono::Utc::now()));
        let target = path_and_query(request.uri()).to_string();
        let to_sign = string_to_sign(request.method(), &target, request.headers().iter());
        let auth = format!(
            "AWS {}:{}",
            self.access_key.expose(),
            signature(self.secret_key.expose(), &to_sign)
        );
        request.headers_mut().insert("authorization", auth);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The secret key of the examples in the AWS S3 documentation ("Signing and authenticating
    /// REST requests"), whose signatures the tests below reproduce.
    const DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    #[test]
    fn object_get_matches_the_aws_example() {
        let to_sign = string_to_sign(
            "GET",
            "/johnsmith/photos/puppy.jpg",
            [
                ("Host", "johnsmith.s3.amazonaws.com"),
                ("Date", "Tue, 27 Mar 2007 19:36:42 +0000"),
            ],
        );
        assert_eq!(
            to_sign,
            "GET\n\n\nTue, 27 Mar 2007 19:36:42 +0000\n/johnsmith/photos/puppy.jpg"
        );
        assert_eq!(
            signature(DOC_SECRET, &to_sign),
            "bWq2s1WEIj+Ydj0vQ697zp+IXMU="
        );
    }

    #[test]
    fn object_put_matches_the_aws_example() {
        let to_sign = string_to_sign(
            "PUT",
            "/johnsmith/photos/puppy.jpg",
            [
                ("Content-Type", "image/jpeg"),
                ("Content-Length", "94328"),
                ("Date", "Tue, 27 Mar 2007 21:15:45 +0000"),
            ],
        );
        assert_eq!(
            signature(DOC_SECRET, &to_sign),
            "MyyxeRY7whkBe+bq8fHCL/2kKUg="
        );
    }

    #[test]
    fn amz_headers_are_lowercased_sorted_and_joined_as_in_the_aws_upload_example() {
        let to_sign = string_to_sign(
            "PUT",
            "/static.johnsmith.net/db-backup.dat.gz",
            [
                ("User-Agent", "curl/7.15.5"),
                ("Date", "Tue, 27 Mar 2007 21:06:08 +0000"),
                ("x-amz-acl", "public-read"),
                ("content-type", "application/x-download"),
                ("Content-MD5", "4gJE4saaMU4BqNR0kLY+lw=="),
                ("X-Amz-Meta-ReviewedBy", "joe@johnsmith.net"),
                ("X-Amz-Meta-ReviewedBy", "jane@johnsmith.net"),
                ("X-Amz-Meta-FileChecksum", "0x02661779"),
                ("X-Amz-Meta-ChecksumAlgorithm", "crc32"),
                ("Content-Disposition", "attachment; filename=database.dat"),
                ("Content-Encoding", "gzip"),
                ("Content-Length", "5913339"),
            ],
        );
        assert_eq!(
            to_sign,
            "PUT\n4gJE4saaMU4BqNR0kLY+lw==\napplication/x-download\nTue, 27 Mar 2007 21:06:08 +0000\n\
             x-amz-acl:public-read\nx-amz-meta-checksumalgorithm:crc32\n\
             x-amz-meta-filechecksum:0x02661779\n\
             x-amz-meta-reviewedby:joe@johnsmith.net,jane@johnsmith.net\n\
             /static.johnsmith.net/db-backup.dat.gz"
        );
        assert_eq!(
            signature(DOC_SECRET, &to_sign),
            "ilyl83RwaSoYIEdixDQcA4OnAnc="
        );
    }

    #[test]
    fn only_sub_resources_of_the_query_are_signed_sorted_and_decoded() {
        assert_eq!(
            canonical_resource("/db_wal/a%20b%2Bc?uploadId=x%2By&partNumber=3&x-id=UploadPart"),
            "/db_wal/a%20b%2Bc?partNumber=3&uploadId=x+y"
        );
        assert_eq!(
            canonical_resource("/registry/k?uploads&x-id=CreateMultipartUpload"),
            "/registry/k?uploads"
        );
        assert_eq!(
            canonical_resource("/db_wal?list-type=2&prefix=wal_005%2F"),
            "/db_wal"
        );
        assert_eq!(canonical_resource("/?acl="), "/?acl");
        assert_eq!(canonical_resource(""), "/");
    }

    #[test]
    fn x_amz_date_blanks_the_date_line() {
        let to_sign = string_to_sign(
            "GET",
            "/b/k",
            [
                ("Date", "whatever"),
                ("X-Amz-Date", "Tue, 27 Mar 2007 21:06:08 +0000"),
            ],
        );
        assert_eq!(
            to_sign,
            "GET\n\n\n\nx-amz-date:Tue, 27 Mar 2007 21:06:08 +0000\n/b/k"
        );
    }

    #[test]
    fn request_targets_come_from_full_uris() {
        assert_eq!(
            path_and_query("http://127.0.0.1:8888/db_wal/k?uploads"),
            "/db_wal/k?uploads"
        );
        assert_eq!(path_and_query("http://127.0.0.1:8888"), "/");
        let date = http_date(chrono::DateTime::from_timestamp(1_175_022_402, 0).unwrap());
        assert_eq!(date, "Tue, 27 Mar 2007 19:06:42 GMT");
    }

    #[test]
    fn the_interceptor_never_shows_its_keys() {
        let i = SigV2Interceptor::new(Secret::new("AKID"), Secret::new("topsecret"));
        assert_eq!(format!("{i:?}"), "SigV2Interceptor");
    }
}
