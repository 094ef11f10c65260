//! Gateway objects over the copy limit at an S3 destination, against real Ceph radosgw: with
//! `destination.copy-limit` lowered to 6 MiB, a 17 MiB object reaches its address as a
//! multipart copy (UploadPartCopy ranges), leaves nothing staged or open, and its set verifies
//! with `--read-data`; a multipart copy left at an address by a dead gateway writer is aborted
//! by the start-up sweep, and one of a live writer is spared.
//!
//! They read the `TESTBED_*` variables of `tests/testbed/up.sh`; run them with `bash tests/run.sh`.

mod support;

use deis_backup::config::{DestinationSettings, Secret, Settings};
use deis_backup::runtime::block_on;
use deis_backup::store::{open_destination, JobKind, RunId, SetRef};
use sha2::{Digest, Sha256};
use std::process::{Command, Stdio};
use support::*;

/// `deis-backup` for the test bed's gateway `bucket`, backing up to `s3://DEST/prefix` with
/// copies in parts above `copy_limit`.
fn gateway_cli(bucket: &str, prefix: &str, copy_limit: &str) -> Command {
    let mut cmd = cli();
    let url = format!("s3://{}/{prefix}", testbed("TESTBED_DEST_BUCKET"));
    testbed_gateway(&mut cmd, bucket);
    testbed_s3_destination(&mut cmd, &url)
        .env("DEIS_BACKUP_DESTINATION__COPY_LIMIT", copy_limit)
        .stdin(Stdio::null());
    cmd
}

fn gateway_run(bucket: &str, prefix: &str, copy_limit: &str, args: &[&str]) -> Run {
    gateway_cli(bucket, prefix, copy_limit)
        .args(args)
        .output()
        .expect("run deis-backup")
        .into()
}

/// Bytes and ETag of an object in the destination bucket.
fn get(key: &str) -> (Vec<u8>, String) {
    block_on(async {
        let out = dest_client()
            .get_object()
            .bucket(testbed("TESTBED_DEST_BUCKET"))
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
        let etag = out.e_tag().unwrap_or_default().trim_matches('"').to_owned();
        (out.body.collect().await.unwrap().to_vec(), etag)
    })
}

/// Removes what a test wrote at the destination (objects and open uploads).
fn clear(prefix: &str) {
    clear_prefix(&testbed("TESTBED_DEST_BUCKET"), prefix);
}

#[test]
fn an_object_over_the_copy_limit_reaches_its_address_by_a_multipart_copy() {
    let big = random_bytes(17, (17 << 20) + 12_345);
    let medium = random_bytes(18, (5 << 20) + 100_000);
    let small = random_bytes(19, 3000);
    let source = GatewayBucket::with(
        "db_wal-big",
        [
            ("wal_005/big".to_string(), big.clone()),
            ("wal_005/medium".to_string(), medium.clone()),
            ("wal_005/small".to_string(), small),
        ],
    );
    let prefix = unique("bigobj");
    let dest_bucket = testbed("TESTBED_DEST_BUCKET");

    // big: staged in 4 parts of 5 MiB, copied in 3 ranges of 6 MiB (6 + 6 + 5 MiB and a bit);
    // medium: staged in 2 parts, copied with one CopyObject
    gateway_run(&source.0, &prefix, "6MiB", &["backup", "gateway"]).assert_ok();

    // the object is at its address, byte for byte, assembled from the 3 copied ranges (the
    // staged object's ETag ends in -4: a CopyObject would have kept it)
    let sha = hex::encode(Sha256::digest(&big));
    let address = format!("{prefix}/gateway/objects/{}/{sha}", &sha[..2]);
    let (bytes, etag) = get(&address);
    assert_eq!(bytes.len(), big.len());
    assert_eq!(hex::encode(Sha256::digest(&bytes)), sha);
    assert!(
        etag.ends_with("-3"),
        "a multipart copy of 3 parts has a multipart ETag ending in -3, got {etag:?}"
    );
    let sha = hex::encode(Sha256::digest(&medium));
    let (bytes, etag) = get(&format!("{prefix}/gateway/objects/{}/{sha}", &sha[..2]));
    assert_eq!(hex::encode(Sha256::digest(&bytes)), sha);
    assert!(
        etag.ends_with("-2"),
        "CopyObject keeps the ETag of the object staged in 2 parts, got {etag:?}"
    );

    // nothing staged, no open multipart upload (staging or copy) anywhere under the prefix
    let keys = keys_under(&dest_bucket, &prefix);
    assert!(
        !keys.iter().any(|k| k.contains("/.staging/")),
        "staged objects remain: {keys:?}"
    );
    assert_eq!(open_uploads(&dest_bucket, &prefix), Vec::<String>::new());
    let objects: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with(&format!("{prefix}/gateway/objects/")))
        .collect();
    assert_eq!(objects.len(), 3, "{objects:?}");

    // the set is complete and its data reads back
    let list = gateway_run(
        &source.0,
        &prefix,
        "6MiB",
        &["list", "--job", "gateway", "--json"],
    );
    list.assert_ok();
    let sets: Vec<serde_json::Value> = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(sets.len(), 1, "{}", list.all());
    let set = sets[0]["set"].as_str().unwrap();
    let verify = gateway_run(&source.0, &prefix, "6MiB", &["verify", set, "--read-data"]);
    verify.assert_ok();
    clear(&prefix);
}

#[test]
fn a_copy_limit_out_of_range_is_refused_naming_the_key() {
    for bad in ["1MiB", "6GiB"] {
        let check = gateway_run("db_wal", &unique("limit"), bad, &["config", "check"]);
        assert_ne!(check.code, 0, "{bad}: {}", check.all());
        assert!(
            check.all().contains("destination.copy-limit")
                && check.all().contains("expected 5MiB to 5GiB"),
            "{bad}: {}",
            check.all()
        );
    }
    let show = gateway_run("db_wal", &unique("limit"), "5242880", &["config", "show"]);
    show.assert_ok();
    assert!(
        show.stdout.contains("copy-limit = \"5MiB\""),
        "{}",
        show.all()
    );
}

fn settings(prefix: &str) -> Settings {
    Settings {
        destination: DestinationSettings {
            url: format!("s3://{}/{prefix}", testbed("TESTBED_DEST_BUCKET")),
            endpoint: Some(testbed("TESTBED_S3_ENDPOINT")),
            access_key: Some(Secret::new(testbed("TESTBED_DEST_ACCESS_KEY"))),
            secret_key: Some(Secret::new(testbed("TESTBED_DEST_SECRET_KEY"))),
            ..DestinationSettings::default()
        },
        ..Settings::default()
    }
}

/// What a run killed in the middle of a multipart copy leaves: an open upload at an address.
fn open_copy_at(address: &str) {
    block_on(
        dest_client()
            .create_multipart_upload()
            .bucket(testbed("TESTBED_DEST_BUCKET"))
            .key(address)
            .send(),
    )
    .unwrap();
}

#[test]
fn the_sweep_aborts_a_copy_left_at_an_address_once_no_gateway_writer_lives() {
    let prefix = unique("bigsweep");
    let dest_bucket = testbed("TESTBED_DEST_BUCKET");
    let dest = open_destination(&settings(&prefix)).unwrap();
    let sha = "ab".repeat(32);
    let address = format!("{prefix}/gateway/objects/ab/{sha}");
    open_copy_at(&address);

    // a live gateway writer (this process) may be the one copying: the upload is spared
    let set = SetRef {
        job: JobKind::Gateway,
        run_id: RunId::new(chrono::Utc::now()),
    };
    let pending = dest.begin_set(&set).unwrap();
    dest.sweep_incomplete().unwrap();
    assert_eq!(open_uploads(&dest_bucket, &prefix), vec![address.clone()]);

    // the writer gone (its set abandoned, marker removed): the next sweep aborts it
    drop(pending);
    assert!(
        !keys_under(&dest_bucket, &prefix)
            .iter()
            .any(|k| k.ends_with(".in-progress")),
        "the abandoned set removed its marker"
    );
    dest.sweep_incomplete().unwrap();
    assert_eq!(open_uploads(&dest_bucket, &prefix), Vec::<String>::new());
    assert!(
        dest.objects().unwrap().object_size(&sha).unwrap().is_none(),
        "nothing is at the address"
    );
    clear(&prefix);
}
