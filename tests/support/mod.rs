//! Shared helpers of the integration tests: running the binary, building trees, data.
#![allow(dead_code)]

pub mod blackhole;
pub mod cluster;
pub mod pg_cluster;
pub mod pg_lock;
pub mod tree;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The binary under test, with no configuration inherited from the environment.
pub fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deis-backup"));
    for (key, _) in std::env::vars() {
        if key.starts_with("DEIS_BACKUP_") || key == "ETCD" {
            cmd.env_remove(key);
        }
    }
    cmd.env("DEIS_BACKUP_LOG", "info").env_remove("RUST_LOG");
    cmd
}

/// What a finished command printed and returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.code, 0, "command failed:\n{}", self.all());
        self
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `deis-backup ARGS...` to completion.
pub fn run(args: &[&str]) -> Run {
    run_with(&[], args)
}

/// Runs `docker ARGS...` to completion.
pub fn docker(args: &[&str]) -> Run {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run docker")
        .into()
}

/// `deis-backup backup volume` of `source` into the destination `url`.
pub fn backup_volume(source: &Path, url: &str) -> Run {
    run(&[
        "backup",
        "volume",
        "--volume-path",
        source.to_str().unwrap(),
        "--destination",
        url,
    ])
}

/// Runs `deis-backup ARGS...` to completion with these environment variables (settings).
pub fn run_with(env: &[(&str, &str)], args: &[&str]) -> Run {
    cli()
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run deis-backup")
        .into()
}

/// Runs `deis-backup ARGS...` in the background.
pub fn spawn(args: &[&str]) -> Child {
    cli()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// `file://` URL of a local folder.
pub fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// Deterministic pseudo-random bytes (xorshift): incompressible, fast, no dependency.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes a file, creating its folders.
pub fn write(path: &Path, data: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
}

/// Every set folder at a local destination (complete or not).
pub fn set_dirs(dest: &Path, job: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = match fs::read_dir(dest.join(job)) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect(),
        Err(_) => Vec::new(),
    };
    dirs.sort();
    dirs
}

/// Polls `condition` every 20 ms until it holds or `timeout_ms` passes.
pub fn wait_until(timeout_ms: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    while std::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    condition()
}

/// A test bed variable (set by `tests/testbed/up.sh`); a missing one fails the test with the
/// way out: the tests never skip because a service is missing.
pub fn testbed(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!(
            "{name} is not set: these tests need the real test bed; run them with \
             `bash tests/run.sh` (or `bash tests/testbed/up.sh DIR && . DIR/env.sh` first)"
        ),
    }
}

/// `cmd` reading the test bed's gateway (endpoint and keys), buckets `buckets` (comma-separated).
pub fn testbed_gateway<'c>(cmd: &'c mut Command, buckets: &str) -> &'c mut Command {
    cmd.env(
        "DEIS_BACKUP_GATEWAY__ENDPOINT",
        testbed("TESTBED_S3_ENDPOINT"),
    )
    .env(
        "DEIS_BACKUP_GATEWAY__ACCESS_KEY",
        testbed("TESTBED_GATEWAY_ACCESS_KEY"),
    )
    .env(
        "DEIS_BACKUP_GATEWAY__SECRET_KEY",
        testbed("TESTBED_GATEWAY_SECRET_KEY"),
    )
    .env("DEIS_BACKUP_GATEWAY__BUCKETS", buckets)
}

/// `cmd` writing to the test bed's S3 destination (endpoint and keys) at the URL `url`.
pub fn testbed_s3_destination<'c>(cmd: &'c mut Command, url: &str) -> &'c mut Command {
    cmd.env("DEIS_BACKUP_DESTINATION__URL", url)
        .env(
            "DEIS_BACKUP_DESTINATION__ENDPOINT",
            testbed("TESTBED_S3_ENDPOINT"),
        )
        .env(
            "DEIS_BACKUP_DESTINATION__ACCESS_KEY",
            testbed("TESTBED_DEST_ACCESS_KEY"),
        )
        .env(
            "DEIS_BACKUP_DESTINATION__SECRET_KEY",
            testbed("TESTBED_DEST_SECRET_KEY"),
        )
}

/// A name no other test (or test run) uses, so tests can share one test bed.
pub fn unique(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{label}-{}-{nanos:x}", std::process::id())
}

/// An S3 client for the test bed's radosgw with the keys named by two test bed variables,
/// configured as radosgw needs it (path-style, checksums only when required).
pub fn s3_client(access_key_var: &str, secret_key_var: &str) -> aws_sdk_s3::Client {
    s3_client_at(
        &testbed("TESTBED_S3_ENDPOINT"),
        &testbed(access_key_var),
        &testbed(secret_key_var),
    )
}

/// An S3 client for the radosgw at `endpoint` with these keys (path-style, checksums only
/// when required).
pub fn s3_client_at(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{
        BehaviorVersion, Credentials, Region, RequestChecksumCalculation,
        ResponseChecksumValidation,
    };
    let credentials = Credentials::new(access_key, secret_key, None, None, "testbed");
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .force_path_style(true)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// `GET /metrics` from the daemon, as Prometheus would scrape it.
pub fn scrape(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut page = String::new();
    let _ = stream.read_to_string(&mut page);
    page
}

/// The value of one sample line (`name{labels} value`) of a metrics page.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A client of the test bed's destination user.
pub fn dest_client() -> aws_sdk_s3::Client {
    s3_client("TESTBED_DEST_ACCESS_KEY", "TESTBED_DEST_SECRET_KEY")
}

/// Every key under `prefix/` in the destination bucket.
pub fn keys_under(bucket: &str, prefix: &str) -> Vec<String> {
    deis_backup::runtime::block_on(async {
        let mut keys = Vec::new();
        let mut pages = dest_client()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(format!("{prefix}/"))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            keys.extend(
                page.unwrap()
                    .contents()
                    .iter()
                    .map(|o| o.key().unwrap().to_string()),
            );
        }
        keys
    })
}

/// Removes what a test wrote under `prefix/` of a destination bucket: open uploads, objects.
pub fn clear_prefix(bucket: &str, prefix: &str) {
    let client = dest_client();
    let keys = keys_under(bucket, prefix);
    let uploads = uploads_under(bucket, prefix);
    deis_backup::runtime::block_on(async {
        for (key, upload_id) in uploads {
            let _ = client
                .abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await;
        }
        for key in keys {
            client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap();
        }
    });
}

/// The open multipart uploads under `prefix/` of a destination bucket: (key, upload id).
fn uploads_under(bucket: &str, prefix: &str) -> Vec<(String, String)> {
    deis_backup::runtime::block_on(async {
        let out = dest_client()
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(format!("{prefix}/"))
            .send()
            .await
            .unwrap();
        out.uploads()
            .iter()
            .map(|u| {
                let key = u.key().unwrap().to_string();
                (key, u.upload_id().unwrap().to_string())
            })
            .collect()
    })
}

/// The keys of the open multipart uploads under `prefix/`.
pub fn open_uploads(bucket: &str, prefix: &str) -> Vec<String> {
    uploads_under(bucket, prefix)
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

/// A fresh bucket of the test bed's gateway user holding `objects` (key, bytes); emptied and
/// removed when dropped, since other tests count that user's buckets.
pub struct GatewayBucket(pub String);

impl GatewayBucket {
    pub fn with(label: &str, objects: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        let name = unique(label).to_lowercase().replace('-', "_");
        let bucket = GatewayBucket(name[..name.len().min(60)].to_string());
        let client = s3_client("TESTBED_GATEWAY_ACCESS_KEY", "TESTBED_GATEWAY_SECRET_KEY");
        deis_backup::runtime::block_on(async {
            client
                .create_bucket()
                .bucket(&bucket.0)
                .send()
                .await
                .unwrap();
            for (key, body) in objects {
                client
                    .put_object()
                    .bucket(&bucket.0)
                    .key(key)
                    .body(body.into())
                    .send()
                    .await
                    .unwrap();
            }
        });
        bucket
    }
}

impl Drop for GatewayBucket {
    fn drop(&mut self) {
        let client = s3_client("TESTBED_GATEWAY_ACCESS_KEY", "TESTBED_GATEWAY_SECRET_KEY");
        deis_backup::runtime::block_on(async {
            if let Ok(listed) = client.list_objects_v2().bucket(&self.0).send().await {
                for object in listed.contents() {
                    if let Some(key) = object.key() {
                        let _ = client.delete_object().bucket(&self.0).key(key).send().await;
                    }
                }
            }
            let _ = client.delete_bucket().bucket(&self.0).send().await;
        });
    }
}
