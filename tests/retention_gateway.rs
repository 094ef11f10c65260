//! Retention after real gateway runs against the test bed's radosgw: two `backup gateway` runs
//! with a key deleted at the source in between, then `prune` with keep-last 1: the older
//! snapshot goes, and so do exactly the objects only it referenced; what the kept snapshot
//! references stays and verifies byte for byte. Into a local and into an S3 destination.
//!
//! They read the `TESTBED_*` variables of `tests/testbed/up.sh`; run them with `bash tests/run.sh`.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use deis_backup::runtime::block_on;
use sha2::{Digest, Sha256};
use std::process::{Command, Stdio};
use support::*;

fn gateway() -> aws_sdk_s3::Client {
    s3_client("TESTBED_GATEWAY_ACCESS_KEY", "TESTBED_GATEWAY_SECRET_KEY")
}

fn put(bucket: &str, key: &str, data: &[u8]) {
    block_on(
        gateway()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(data.to_vec()))
            .send(),
    )
    .expect("put");
}

fn delete(bucket: &str, key: &str) {
    block_on(gateway().delete_object().bucket(bucket).key(key).send()).expect("delete");
}

/// `deis-backup ARGS...` for the test bed's gateway bucket and `destination`. `prune` keeps
/// only the newest set, with no grace period for unreferenced objects; other commands (whose
/// runs prune too) keep the default policy, so that both backups stay until the prune.
fn run(bucket: &str, destination: &str, args: &[&str]) -> Run {
    let mut cmd: Command = cli();
    testbed_gateway(&mut cmd, bucket)
        .env("DEIS_BACKUP_DESTINATION__URL", destination)
        .stdin(Stdio::null());
    if args.first() == Some(&"prune") {
        cmd.env("DEIS_BACKUP_RETENTION__KEEP_LAST", "1")
            .env("DEIS_BACKUP_RETENTION__KEEP_DAILY", "0")
            .env("DEIS_BACKUP_RETENTION__KEEP_WEEKLY", "0")
            .env("DEIS_BACKUP_RETENTION__KEEP_MONTHLY", "0")
            .env("DEIS_BACKUP_RETENTION__OBJECT_GRACE", "0s");
    }
    if destination.starts_with("s3://") {
        testbed_s3_destination(&mut cmd, destination);
    }
    cmd.args(args).output().expect("run deis-backup").into()
}

/// Whether the destination's object store holds the object with these bytes.
fn stored(destination: &str, data: &[u8]) -> bool {
    let sha = hex::encode(Sha256::digest(data));
    let address = deis_backup::store::object_path(&sha);
    if let Some(dir) = destination.strip_prefix("file://") {
        return std::path::Path::new(dir).join(address).is_file();
    }
    let (bucket, prefix) = destination
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .expect("s3://bucket/prefix");
    let client = s3_client("TESTBED_DEST_ACCESS_KEY", "TESTBED_DEST_SECRET_KEY");
    let head = block_on(
        client
            .head_object()
            .bucket(bucket)
            .key(format!("{prefix}/{address}"))
            .send(),
    );
    head.is_ok()
}

fn gateway_sets(bucket: &str, destination: &str) -> Vec<String> {
    let list = run(bucket, destination, &["list", "--job", "gateway", "--json"]);
    list.assert_ok();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&list.stdout).unwrap();
    rows.iter()
        .map(|r| r["set"].as_str().unwrap().to_string())
        .collect()
}

fn prune_after_real_gateway_runs(destination: &str) {
    let bucket = unique("retention").to_lowercase().replace('-', "_");
    block_on(gateway().create_bucket().bucket(&bucket).send()).expect("create bucket");
    let (gone, kept, added) = (
        random_bytes(1, 3000),
        random_bytes(2, 70_000),
        random_bytes(3, 10),
    );
    put(&bucket, "wal/gone", &gone);
    put(&bucket, "wal/kept", &kept);
    run(&bucket, destination, &["backup", "gateway"]).assert_ok();
    delete(&bucket, "wal/gone");
    put(&bucket, "wal/added", &added);
    let second = run(&bucket, destination, &["backup", "gateway"]);
    second.assert_ok();
    // the newer run (two runs in one second do not sort by their ids): `gateway/<id>: ...`
    let newest = second.stdout.split(':').next().unwrap().trim().to_string();
    let sets = gateway_sets(&bucket, destination);
    assert_eq!(sets.len(), 2, "{sets:?}");
    assert!([&gone, &kept, &added]
        .iter()
        .all(|d| stored(destination, d)));

    let dry = run(
        &bucket,
        destination,
        &["prune", "--dry-run", "--job", "gateway"],
    );
    dry.assert_ok();
    assert!(
        dry.stdout
            .contains("3 stored, 2 referenced by kept snapshots, would remove 1"),
        "{}",
        dry.all()
    );
    assert_eq!(gateway_sets(&bucket, destination), sets);
    assert!(stored(destination, &gone));

    let prune = run(&bucket, destination, &["prune", "--job", "gateway"]);
    prune.assert_ok();
    assert_eq!(
        gateway_sets(&bucket, destination),
        [newest],
        "{}",
        prune.all()
    );
    assert!(!stored(destination, &gone), "{}", prune.all());
    assert!(stored(destination, &kept) && stored(destination, &added));
    run(&bucket, destination, &["verify", "latest", "--read-data"]).assert_ok();

    for key in ["wal/kept", "wal/added"] {
        delete(&bucket, key);
    }
    block_on(gateway().delete_bucket().bucket(&bucket).send()).expect("delete bucket");
}

#[test]
fn prune_after_real_gateway_runs_into_a_local_destination() {
    let tmp = tempfile::tempdir().unwrap();
    prune_after_real_gateway_runs(&file_url(tmp.path()));
}

#[test]
fn prune_after_real_gateway_runs_into_an_s3_destination() {
    let prefix = unique("retention-gw");
    prune_after_real_gateway_runs(&format!("s3://{}/{prefix}", testbed("TESTBED_DEST_BUCKET")));
}
