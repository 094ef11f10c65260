//! What a test needs for a second Deis cluster beside the test bed's (its database comes from
//! [`super::pg_cluster`]): a radosgw of its own (a one-node Ceph made by the test bed's
//! script), and what compares two clusters' buckets (by digest) and volumes (by lstat).

use super::Run;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/testbed")
        .join(name)
}

/// A radosgw of its own (`tests/testbed/rgw-up.sh`), stopped when dropped.
pub struct OwnGateway {
    dir: PathBuf,
    env: BTreeMap<String, String>,
}

impl OwnGateway {
    /// Brings up a fresh one-node Ceph with radosgw under `dir` (about 10 s).
    pub fn start(dir: &Path) -> Self {
        let up: Run = Command::new("bash")
            .arg(script("rgw-up.sh"))
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .expect("run rgw-up.sh")
            .into();
        // made before the check, so that a failed bring-up is taken down too
        let mut gateway = OwnGateway {
            dir: dir.to_path_buf(),
            env: BTreeMap::new(),
        };
        up.assert_ok();
        let env = std::fs::read_to_string(dir.join("env")).expect("rgw-up.sh writes DIR/env");
        gateway.env = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        gateway
    }

    /// One of the `TESTBED_*` values of this gateway (`TESTBED_S3_ENDPOINT`, ...).
    pub fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from {}/env", self.dir.display()))
    }

    /// A client of its gateway user (the owner of the Deis buckets).
    pub fn client(&self) -> aws_sdk_s3::Client {
        super::s3_client_at(
            self.var("TESTBED_S3_ENDPOINT"),
            self.var("TESTBED_GATEWAY_ACCESS_KEY"),
            self.var("TESTBED_GATEWAY_SECRET_KEY"),
        )
    }
}

impl Drop for OwnGateway {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("rgw-down.sh"))
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output();
    }
}

/// What a test compares of one object: sha256 of its bytes, content type, user metadata.
pub type ObjectFacts = (String, Option<String>, BTreeMap<String, String>);

/// Every object of `bucket` by key.
pub fn bucket_digests(client: &aws_sdk_s3::Client, bucket: &str) -> BTreeMap<String, ObjectFacts> {
    deis_backup::runtime::block_on(async {
        let mut out = BTreeMap::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for object in page.expect("list the bucket").contents() {
                let key = object.key().unwrap().to_string();
                let got = client
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .expect("get an object");
                let content_type = got.content_type().map(str::to_owned);
                let metadata = got.metadata().cloned().unwrap_or_default();
                let bytes = got.body.collect().await.unwrap().into_bytes();
                let digest = hex::encode(Sha256::digest(&bytes));
                out.insert(key, (digest, content_type, metadata.into_iter().collect()));
            }
        }
        out
    })
}

/// Every entry under `root` by relative path: kind, mode, owner, mtime (not of folders,
/// whose mtime a restore sets last but a test may touch), link target, and file bytes' digest,
/// all read without following links.
pub fn tree_facts(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let common = format!("mode {:o} owner {}:{}", meta.mode(), meta.uid(), meta.gid());
            let fact = if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                format!("symlink -> {} {common}", target.display())
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("folder {common} mtime {}", meta.mtime())
            } else {
                let bytes = std::fs::read(&path).unwrap();
                format!(
                    "file {} {common} mtime {} links {}",
                    hex::encode(Sha256::digest(&bytes)),
                    meta.mtime(),
                    meta.nlink()
                )
            };
            out.insert(rel, fact);
        }
    }
    out
}
