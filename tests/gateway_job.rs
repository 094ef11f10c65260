//! The gateway job against real Ceph radosgw: incremental snapshots that keep history, restore
//! of an older snapshot byte for byte (content type and metadata included), signature v2
//! really signed and really checked, a killed run that leaves nothing behind, a wrong gateway
//! secret reported as the gateway's fault, and restores that write no byte that does not match
//! the snapshot.
//!
//! They read the `TESTBED_*` variables of `tests/testbed/up.sh`; run them with `bash tests/run.sh`.

mod support;

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::primitives::ByteStream;
use deis_backup::config::{GatewaySettings, Secret, Signature, TimeoutSettings};
use deis_backup::gateway::{GatewayClient, GatewayError, SignatureVersion};
use deis_backup::runtime::block_on;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use support::*;

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A fresh bucket name like the Deis ones (underscore included), so tests never meet.
fn unique_bucket(base: &str) -> String {
    format!("{base}-{:x}", nanos() & 0xffff_ffff_ffff)
}

/// An SDK client (v4) as `user` ("GATEWAY" or "DEST"), to seed and inspect behind the job's back.
fn s3(user: &str) -> aws_sdk_s3::Client {
    s3_client(
        &format!("TESTBED_{user}_ACCESS_KEY"),
        &format!("TESTBED_{user}_SECRET_KEY"),
    )
}

/// What the source holds for one key: bytes, content type, metadata.
#[derive(Debug, Clone, PartialEq)]
struct Obj {
    data: Vec<u8>,
    content_type: String,
    metadata: BTreeMap<String, String>,
}

fn obj(seed: u64, len: usize, content_type: &str, meta: &[(&str, &str)]) -> Obj {
    Obj {
        data: random_bytes(seed, len),
        content_type: content_type.into(),
        metadata: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn create_bucket(bucket: &str) {
    block_on(s3("GATEWAY").create_bucket().bucket(bucket).send()).expect("create bucket");
}

/// Writes an object; over 5 MiB as a multipart upload (so its ETag is a multipart one).
fn put(bucket: &str, key: &str, o: &Obj) {
    let c = s3("GATEWAY");
    let meta: HashMap<String, String> = o.metadata.clone().into_iter().collect();
    block_on(async {
        if o.data.len() <= 5 << 20 {
            c.put_object()
                .bucket(bucket)
                .key(key)
                .content_type(&o.content_type)
                .set_metadata(Some(meta))
                .body(ByteStream::from(o.data.clone()))
                .send()
                .await
                .expect("put");
            return;
        }
        let id = c
            .create_multipart_upload()
            .bucket(bucket)
            .key(key)
            .content_type(&o.content_type)
            .set_metadata(Some(meta))
            .send()
            .await
            .unwrap()
            .upload_id
            .unwrap();
        let mut parts = Vec::new();
        for (i, chunk) in o.data.chunks(5 << 20).enumerate() {
            let n = i as i32 + 1;
            let out = c
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(&id)
                .part_number(n)
                .body(ByteStream::from(chunk.to_vec()))
                .send()
                .await
                .unwrap();
            parts.push(
                aws_sdk_s3::types::CompletedPart::builder()
                    .set_e_tag(out.e_tag)
                    .part_number(n)
                    .build(),
            );
        }
        c.complete_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .expect("complete");
    });
}

fn delete(bucket: &str, key: &str) {
    block_on(s3("GATEWAY").delete_object().bucket(bucket).key(key).send()).expect("delete");
}

/// Every object of a bucket as the gateway serves it now.
fn read_bucket(bucket: &str) -> BTreeMap<String, Obj> {
    let c = s3("GATEWAY");
    block_on(async {
        let mut out = BTreeMap::new();
        let mut pages = c.list_objects_v2().bucket(bucket).into_paginator().send();
        while let Some(page) = pages.next().await {
            for o in page.unwrap().contents() {
                let key = o.key().unwrap().to_string();
                let got = c
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .unwrap();
                let content_type = got.content_type().unwrap_or_default().to_string();
                let metadata = got
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                let data = got.body.collect().await.unwrap().to_vec();
                out.insert(
                    key,
                    Obj {
                        data,
                        content_type,
                        metadata,
                    },
                );
            }
        }
        out
    })
}

/// Deletes every object and then the bucket itself.
fn drop_bucket(bucket: &str) {
    let c = s3("GATEWAY");
    for key in read_bucket(bucket).keys() {
        delete(bucket, key);
    }
    block_on(c.delete_bucket().bucket(bucket).send()).expect("delete bucket");
}

/// `deis-backup` configured for the test bed's gateway (with `secret`) and `destination`.
fn gw_cli(buckets: &[&str], signature: &str, secret: &str, destination: &str) -> Command {
    let mut cmd = cli();
    testbed_gateway(&mut cmd, &buckets.join(","))
        .env("DEIS_BACKUP_GATEWAY__SECRET_KEY", secret)
        .env("DEIS_BACKUP_GATEWAY__SIGNATURE", signature)
        .env("DEIS_BACKUP_DESTINATION__URL", destination)
        .stdin(Stdio::null());
    if destination.starts_with("s3://") {
        testbed_s3_destination(&mut cmd, destination);
    }
    cmd
}

fn gw_run(buckets: &[&str], signature: &str, destination: &str, args: &[&str]) -> Run {
    gw_cli(
        buckets,
        signature,
        &testbed("TESTBED_GATEWAY_SECRET_KEY"),
        destination,
    )
    .args(args)
    .output()
    .expect("run deis-backup")
    .into()
}

/// The complete gateway sets as `list --json` shows them (oldest first).
fn gateway_sets(buckets: &[&str], destination: &str) -> Vec<String> {
    let run = gw_run(
        buckets,
        "auto",
        destination,
        &["list", "--job", "gateway", "--json"],
    );
    run.assert_ok();
    let mut rows: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    // run ids order runs to the second only; these tests run faster than that
    rows.sort_by_key(|r| {
        chrono::DateTime::parse_from_rfc3339(r["started_at"].as_str().unwrap()).unwrap()
    });
    rows.iter()
        .map(|r| r["set"].as_str().unwrap().to_string())
        .collect()
}

/// The stats of a set's manifest at a local destination.
fn stats(dest: &Path, set: &str) -> serde_json::Value {
    let bytes = std::fs::read(dest.join(set).join("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    manifest["stats"].clone()
}

/// Awkward keys: spaces, unicode, `+`, WAL-E and registry layouts.
const ODD_KEY: &str = "wal_005/with space+plus ünï©ødé.lzo";

/// Backup, change the source (add, overwrite, delete), back up again: only the changes are
/// read; then restore snapshot 1 into recreated buckets: byte for byte, content type and
/// metadata included; a second restore uploads nothing; verify --read-data passes.
#[test]
fn incremental_snapshots_keep_history_and_restore_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backups");
    let url = file_url(&dest);
    let (wal, reg) = (unique_bucket("db_wal"), unique_bucket("registry"));
    let buckets = [wal.as_str(), reg.as_str()];
    create_bucket(&wal);
    create_bucket(&reg);
    let mut state: BTreeMap<(String, String), Obj> = BTreeMap::new();
    let mut seed = |bucket: &str, key: &str, o: Obj| {
        put(bucket, key, &o);
        state.insert((bucket.into(), key.into()), o);
    };
    seed(
        &wal,
        "basebackups_005/base_000000010000000000000002_00000040_backup_stop_sentinel.json",
        obj(1, 300, "application/json", &[("wal-e", "yes")]),
    );
    seed(
        &wal,
        "wal_005/000000010000000000000003.lzo",
        obj(2, 70_000, "application/octet-stream", &[]),
    );
    seed(
        &wal,
        ODD_KEY,
        obj(3, 1234, "text/plain; charset=utf-8", &[("note", "odd key")]),
    );
    seed(&wal, "empty", obj(4, 0, "application/x-empty", &[]));
    // larger than every multipart threshold (5 MiB), uploaded as multipart
    seed(
        &reg,
        "docker/registry/v2/blobs/sha256/ab/abcd/data",
        obj(5, 11 << 20, "application/octet-stream", &[("layer", "1")]),
    );
    seed(
        &reg,
        "docker/registry/v2/repositories/app/_manifests/tags/v1/current/link",
        obj(6, 71, "text/plain", &[]),
    );
    seed(&reg, "a+b c", obj(7, 10, "text/plain", &[]));
    let at_snapshot1 = state.clone();

    gw_run(&buckets, "auto", &url, &["backup", "gateway"]).assert_ok();
    let sets = gateway_sets(&buckets, &url);
    assert_eq!(sets.len(), 1);
    let s1 = stats(&dest, &sets[0]);
    assert_eq!(s1["objects"], 7);
    assert_eq!(s1["copied"], 7);
    assert_eq!(s1["unchanged"], 0);
    assert_eq!(s1["bytes"], 300 + 70_000 + 1234 + (11 << 20) + 71 + 10);

    // change the source: overwrite one, delete one, add one
    put(
        &wal,
        ODD_KEY,
        &obj(30, 999, "text/x-changed", &[("note", "rewritten")]),
    );
    delete(&reg, "a+b c");
    put(
        &wal,
        "wal_005/000000010000000000000004.lzo",
        &obj(8, 4096, "application/octet-stream", &[]),
    );

    gw_run(&buckets, "auto", &url, &["backup", "gateway"]).assert_ok();
    let sets = gateway_sets(&buckets, &url);
    assert_eq!(sets.len(), 2);
    let s2 = stats(&dest, &sets[1]);
    assert_eq!(s2["copied"], 2, "{s2}");
    assert_eq!(s2["copied_bytes"], 999 + 4096, "{s2}");
    assert_eq!(s2["unchanged"], 5, "{s2}");
    assert_eq!(s2["objects"], 7, "{s2}");
    assert_eq!(s2["previous"], sets[0].as_str());

    // verify both, re-hashing every object
    for set in &sets {
        let run = gw_run(&buckets, "auto", &url, &["verify", set, "--read-data"]);
        run.assert_ok();
        assert!(run.stdout.contains("objects: OK"), "{}", run.all());
    }

    // the dry run compares the buckets with snapshot 1: the overwritten object is named and
    // the restore would be refused; the added object is left alone
    let plan = gw_run(
        &buckets,
        "auto",
        &url,
        &["restore", &sets[0], "--only", "gateway", "--dry-run"],
    );
    assert_eq!(plan.code, 1, "{}", plan.all());
    assert!(
        plan.stdout.contains(&format!(
            "bucket {wal}: 4 objects (69.9 KiB): 0 (0 B) to upload, 1 with other content, \
             3 already identical, 1 not in the snapshot (left alone)"
        )),
        "{}",
        plan.all()
    );
    assert!(
        plan.stderr.contains(ODD_KEY) && plan.stderr.contains("--force=gateway"),
        "{}",
        plan.all()
    );
    // without --force the restore refuses and writes nothing, byte for byte
    let before: Vec<_> = buckets.iter().map(|b| read_bucket(b)).collect();
    let refused = gw_run(
        &buckets,
        "auto",
        &url,
        &["restore", &sets[0], "--only", "gateway"],
    );
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stdout.contains("refused; nothing was written"),
        "{}",
        refused.all()
    );
    let after: Vec<_> = buckets.iter().map(|b| read_bucket(b)).collect();
    assert!(before == after, "a refused restore changed the buckets");
    // with --force the plan overwrites it and uploads the deleted one
    let forced = gw_run(
        &buckets,
        "auto",
        &url,
        &[
            "restore",
            &sets[0],
            "--only",
            "gateway",
            "--dry-run",
            "--force",
        ],
    );
    forced.assert_ok();
    assert!(
        forced.stdout.contains(&format!(
            "bucket {wal}: 4 objects (69.9 KiB): would upload 0 (0 B), overwrite 1,"
        )) && forced.stdout.contains(&format!(
            "bucket {reg}: 3 objects (11.0 MiB): would upload 1 (10 B), overwrite 0,"
        )),
        "{}",
        forced.all()
    );

    // restore snapshot 1 into recreated (empty, then missing) buckets
    drop_bucket(&wal);
    drop_bucket(&reg);
    let run = gw_run(
        &buckets,
        "auto",
        &url,
        &["restore", &sets[0], "--only", "gateway"],
    );
    run.assert_ok();
    assert!(run.stdout.contains("(created)"), "{}", run.all());
    let mut restored = BTreeMap::new();
    for b in buckets {
        for (key, o) in read_bucket(b) {
            restored.insert((b.to_string(), key), o);
        }
    }
    assert_eq!(restored.len(), at_snapshot1.len());
    for (k, want) in &at_snapshot1 {
        let got = restored
            .get(k)
            .unwrap_or_else(|| panic!("{k:?} not restored"));
        assert!(got.data == want.data, "{k:?}: bytes differ");
        assert_eq!(got.content_type, want.content_type, "{k:?}");
        assert_eq!(got.metadata, want.metadata, "{k:?}");
    }

    // restoring again finds single-part objects identical and uploads none of them
    let again = gw_run(
        &buckets,
        "auto",
        &url,
        &["restore", &sets[0], "--only", "gateway", "--buckets", &wal],
    );
    again.assert_ok();
    assert!(
        again
            .stdout
            .contains("uploaded 0 (0 B), overwrote 0, 4 already identical"),
        "{}",
        again.all()
    );
    assert!(!again.stdout.contains(&reg), "{}", again.all());
    drop_bucket(&wal);
    drop_bucket(&reg);
}

/// One request as sent: its Authorization header and its x-amz-content-sha256, if any.
type Sent = (String, Option<String>);

/// Records the Authorization header of every request a client sends.
#[derive(Debug, Default, Clone)]
struct Capture(Arc<Mutex<Vec<Sent>>>);

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "Capture"
    }
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let h = context.request().headers();
        self.0.lock().unwrap().push((
            h.get("authorization").unwrap_or_default().to_string(),
            h.get("x-amz-content-sha256").map(str::to_owned),
        ));
        Ok(())
    }
}

fn settings(signature: Signature, secret: &str) -> GatewaySettings {
    GatewaySettings {
        endpoint: Some(testbed("TESTBED_S3_ENDPOINT")),
        access_key: Some(Secret::new(testbed("TESTBED_GATEWAY_ACCESS_KEY"))),
        secret_key: Some(Secret::new(secret)),
        signature,
        ..GatewaySettings::default()
    }
}

/// v2 requests really carry `AWS key:signature` (no v4 leftovers), radosgw accepts them, and a
/// wrong v2 signature is refused: radosgw really checks what we sign.
#[test]
fn signature_v2_is_really_signed_and_really_checked() {
    let bucket = unique_bucket("db_wal");
    create_bucket(&bucket);
    put(&bucket, ODD_KEY, &obj(9, 100, "text/plain", &[]));

    let client = GatewayClient::new(
        &settings(Signature::V2, &testbed("TESTBED_GATEWAY_SECRET_KEY")),
        &TimeoutSettings::default(),
        SignatureVersion::V2,
    )
    .unwrap();
    let capture = Capture::default();
    let sdk = aws_sdk_s3::Client::from_conf(
        client
            .sdk()
            .config()
            .to_builder()
            .interceptor(capture.clone())
            .build(),
    );
    let got = block_on(sdk.get_object().bucket(&bucket).key(ODD_KEY).send())
        .expect("a v2 GET is accepted");
    assert_eq!(got.content_length(), Some(100));
    block_on(sdk.list_objects().bucket(&bucket).send()).expect("a v2 listing is accepted");
    let seen = capture.0.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let prefix = format!("AWS {}:", testbed("TESTBED_GATEWAY_ACCESS_KEY"));
    for (auth, sha) in &seen {
        assert!(
            auth.starts_with(&prefix) && auth.len() == prefix.len() + 28,
            "{auth}"
        );
        assert!(sha.is_none(), "v4 header left on a v2 request");
    }

    // the same request with a wrong secret: refused
    let wrong = GatewayClient::new(
        &settings(Signature::V2, "not-the-secret"),
        &TimeoutSettings::default(),
        SignatureVersion::V2,
    )
    .unwrap();
    let err = block_on(wrong.sdk().get_object().bucket(&bucket).key(ODD_KEY).send()).unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    // and connect() says it is the gateway that refused
    let err = block_on(GatewayClient::connect(
        &settings(Signature::Auto, "not-the-secret"),
        &TimeoutSettings::default(),
    ))
    .err()
    .unwrap();
    assert!(matches!(err, GatewayError::Credentials { .. }), "{err}");
    assert!(err.to_string().contains("v4 and v2"), "{err}");
    // auto picks v4 on a gateway that takes it
    let auto = block_on(GatewayClient::connect(
        &settings(Signature::Auto, &testbed("TESTBED_GATEWAY_SECRET_KEY")),
        &TimeoutSettings::default(),
    ))
    .unwrap();
    assert_eq!(auto.signature(), SignatureVersion::V4);
    delete(&bucket, ODD_KEY);
    block_on(s3("GATEWAY").delete_bucket().bucket(&bucket).send()).unwrap();
}

/// A backup and a restore signed with v2 only, to an S3 destination (the S3 object store:
/// small objects put at their address, a large one staged, copied, and the stage removed).
#[test]
fn signature_v2_backup_and_restore_through_an_s3_destination() {
    let bucket = unique_bucket("db_wal");
    let prefix = format!("test-gw-v2-{:x}", nanos());
    let url = format!("s3://{}/{prefix}", testbed("TESTBED_DEST_BUCKET"));
    create_bucket(&bucket);
    let mut want = BTreeMap::new();
    for (key, o) in [
        (ODD_KEY, obj(10, 2000, "text/plain", &[("k", "v")])),
        (
            "wal_005/big",
            obj(11, 7 << 20, "application/octet-stream", &[]),
        ),
        ("zero", obj(12, 0, "application/octet-stream", &[])),
    ] {
        put(&bucket, key, &o);
        want.insert(key.to_string(), o);
    }
    let run = gw_run(&[&bucket], "v2", &url, &["backup", "gateway"]);
    run.assert_ok();
    let sets = gateway_sets(&[&bucket], &url);
    assert_eq!(sets.len(), 1);
    let verify = gw_run(&[&bucket], "v2", &url, &["verify", &sets[0], "--read-data"]);
    verify.assert_ok();

    // the object store holds the three objects at their addresses and nothing staged
    let dest = s3("DEST");
    let keys: Vec<String> = block_on(async {
        let out = dest
            .list_objects_v2()
            .bucket(testbed("TESTBED_DEST_BUCKET"))
            .prefix(format!("{prefix}/gateway/objects/"))
            .send()
            .await
            .unwrap();
        out.contents()
            .iter()
            .map(|o| o.key().unwrap().to_string())
            .collect()
    });
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(keys.iter().all(|k| !k.contains(".staging")), "{keys:?}");

    drop_bucket(&bucket);
    gw_run(
        &[&bucket],
        "v2",
        &url,
        &["restore", "latest", "--only", "gateway"],
    )
    .assert_ok();
    let got = read_bucket(&bucket);
    assert_eq!(got.len(), want.len());
    for (key, o) in &want {
        assert_eq!(got[key], *o, "{key}");
    }
    drop_bucket(&bucket);
}

/// `kill -9` in the middle of a run: no snapshot is listed, and the next start aborts the
/// run's multipart uploads and removes its staged objects.
#[test]
fn a_killed_run_leaves_no_snapshot_and_no_uploads_after_the_next_start() {
    let bucket = unique_bucket("registry");
    let prefix = format!("test-gw-kill-{:x}", nanos());
    let dest_bucket = testbed("TESTBED_DEST_BUCKET");
    let url = format!("s3://{dest_bucket}/{prefix}");
    create_bucket(&bucket);
    for i in 0..12 {
        put(
            &bucket,
            &format!("blob-{i}"),
            &obj(100 + i, 12 << 20, "application/octet-stream", &[]),
        );
    }
    let dest = s3("DEST");
    let uploads = || {
        block_on(async {
            dest.list_multipart_uploads()
                .bucket(&dest_bucket)
                .prefix(format!("{prefix}/"))
                .send()
                .await
                .unwrap()
                .uploads()
                .len()
        })
    };
    let mut child = gw_cli(
        &[&bucket],
        "auto",
        &testbed("TESTBED_GATEWAY_SECRET_KEY"),
        &url,
    )
    .args(["backup", "gateway"])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    assert!(
        wait_until(60_000, || uploads() > 0),
        "no staging upload started"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(uploads() > 0);
    assert!(gateway_sets(&[&bucket], &url).is_empty());

    // the next start: its sweep aborts the dead run's uploads; its own run completes
    delete(&bucket, "blob-0");
    let run = gw_run(&[&bucket], "auto", &url, &["backup", "gateway"]);
    run.assert_ok();
    assert_eq!(uploads(), 0);
    assert_eq!(gateway_sets(&[&bucket], &url).len(), 1);
    let staged = block_on(async {
        dest.list_objects_v2()
            .bucket(&dest_bucket)
            .prefix(format!("{prefix}/gateway/objects/.staging/"))
            .send()
            .await
            .unwrap()
            .contents()
            .len()
    });
    assert_eq!(staged, 0);
    drop_bucket(&bucket);
}

/// A wrong gateway secret: exit 1, a message that blames the gateway (not the destination)
/// and says what to check, and no secret anywhere in the output.
#[test]
fn a_wrong_gateway_secret_is_a_clear_gateway_error() {
    let tmp = tempfile::tempdir().unwrap();
    let url = file_url(tmp.path());
    let wrong = "wrong-secret-0123456789abcdef";
    let run: Run = gw_cli(&["db_wal"], "auto", wrong, &url)
        .args(["backup", "gateway"])
        .output()
        .unwrap()
        .into();
    assert_eq!(run.code, 1, "{}", run.all());
    let all = run.all();
    assert!(
        all.contains("gateway") && all.contains("refused the credentials"),
        "{all}"
    );
    assert!(all.contains("check gateway access-key/secret-key"), "{all}");
    assert!(!all.contains("destination refused"), "{all}");
    assert!(!all.contains(wrong), "{all}");
    assert!(
        !all.contains(&testbed("TESTBED_GATEWAY_SECRET_KEY")),
        "{all}"
    );
    assert!(gateway_sets(&["db_wal"], &url).is_empty());
}

/// An object deleted at the source between the listing and its copy is recorded as a
/// warning (kind `vanished`), and the run still completes with everything else.
#[test]
fn an_object_that_vanishes_between_list_and_get_is_a_warning() {
    let bucket = unique_bucket("db_wal");
    create_bucket(&bucket);
    // one worker copies in key order: the big object holds it while the test deletes the last
    put(
        &bucket,
        "a-big",
        &obj(7, 64 << 20, "application/octet-stream", &[]),
    );
    put(&bucket, "z-gone", &obj(8, 4096, "text/plain", &[]));
    let tmp = tempfile::tempdir().unwrap();
    let url = file_url(tmp.path());
    let staging = tmp.path().join("gateway/objects/.staging");
    let child = gw_cli(
        &[&bucket],
        "auto",
        &testbed("TESTBED_GATEWAY_SECRET_KEY"),
        &url,
    )
    .env("DEIS_BACKUP_GATEWAY__CONCURRENCY", "1")
    .args(["backup", "gateway"])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let copying = wait_until(60_000, || {
        std::fs::read_dir(&staging)
            .map(|runs| {
                runs.flatten()
                    .any(|run| std::fs::read_dir(run.path()).is_ok_and(|mut f| f.next().is_some()))
            })
            .unwrap_or(false)
    });
    assert!(copying, "the copy of a-big never started");
    delete(&bucket, "z-gone");
    let run: Run = child.wait_with_output().unwrap().into();
    run.assert_ok();

    let set = gateway_sets(&[&bucket], &url)
        .pop()
        .expect("a complete snapshot");
    assert_eq!(stats(tmp.path(), &set)["vanished"], 1, "{}", run.all());
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join(&set).join("manifest.json")).unwrap(),
    )
    .unwrap();
    let warnings = manifest["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w["kind"] == "vanished" && w["path"].as_str().unwrap().contains("z-gone")),
        "{warnings:?}"
    );
    drop_bucket(&bucket);
}

/// Puts small objects `key -> bytes` into `bucket` from a few threads (one client each).
fn put_many(bucket: &str, objects: &[(String, Vec<u8>)]) {
    std::thread::scope(|scope| {
        for chunk in objects.chunks(objects.len().div_ceil(16).max(1)) {
            scope.spawn(move || {
                let c = s3("GATEWAY");
                for (key, data) in chunk {
                    block_on(
                        c.put_object()
                            .bucket(bucket)
                            .key(key)
                            .body(ByteStream::from(data.clone()))
                            .send(),
                    )
                    .expect("put");
                }
            });
        }
    });
}

/// The (key, size) records of each bucket in a set's snapshot at a local destination.
fn snapshot_keys(dest: &Path, set: &str) -> BTreeMap<String, Vec<(String, u64)>> {
    let packed = std::fs::read(dest.join(set).join("snapshot.json.zst")).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&zstd::decode_all(packed.as_slice()).unwrap()).unwrap();
    json["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let records = b["objects"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| {
                    let key = o["key"].as_str().unwrap().to_string();
                    (key, o["size"].as_u64().unwrap())
                })
                .collect();
            (b["name"].as_str().unwrap().to_string(), records)
        })
        .collect()
}

/// A bucket of 2,600 objects is listed in three pages (radosgw pages by 1,000). Objects
/// overwritten, deleted and added on both sides of each page boundary are exactly what the
/// second run copies, and its snapshot is the bucket, key for key.
#[test]
fn a_bucket_listed_in_pages_is_merged_exactly_with_the_previous_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backups");
    let url = file_url(&dest);
    let bucket = unique_bucket("registry");
    create_bucket(&bucket);
    let key = |i: usize| format!("docker/registry/v2/blobs/{i:05}");
    let mut state: BTreeMap<String, Vec<u8>> = (0..2_600)
        .map(|i| (key(i), format!("object {i}").into_bytes()))
        .collect();
    put_many(&bucket, &state.clone().into_iter().collect::<Vec<_>>());

    gw_run(&[&bucket], "auto", &url, &["backup", "gateway"]).assert_ok();
    let first = gateway_sets(&[&bucket], &url);
    assert_eq!(stats(&dest, &first[0])["copied"], 2_600);

    // the pages end after keys 999 and 1999
    let changed: Vec<(String, Vec<u8>)> = vec![
        (key(999), b"overwritten, last of page 1".to_vec()),
        (key(1_000), b"overwritten, first of page 2".to_vec()),
        (
            format!("{}a", key(999)),
            b"added between pages 1 and 2".to_vec(),
        ),
        (
            format!("{}a", key(1_999)),
            b"added between pages 2 and 3".to_vec(),
        ),
        (
            "zz/after-the-last".into(),
            b"added after the last key".to_vec(),
        ),
    ];
    put_many(&bucket, &changed);
    state.extend(changed);
    for gone in [key(1_999), key(2_000), key(2_599)] {
        delete(&bucket, &gone);
        state.remove(&gone);
    }

    gw_run(&[&bucket], "auto", &url, &["backup", "gateway"]).assert_ok();
    let sets = gateway_sets(&[&bucket], &url);
    let second = sets.last().unwrap();
    let s = stats(&dest, second);
    assert_eq!(
        (&s["copied"], &s["unchanged"], &s["objects"]),
        (&5.into(), &2_595.into(), &2_600.into()),
        "{s}"
    );
    let expected: Vec<(String, u64)> = state
        .iter()
        .map(|(k, v)| (k.clone(), v.len() as u64))
        .collect();
    assert_eq!(snapshot_keys(&dest, second)[&bucket], expected);
    gw_run(&[&bucket], "auto", &url, &["verify", second, "--read-data"]).assert_ok();
    drop_bucket(&bucket);
}

/// The sha256 of `data`, hex.
fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(data))
}

/// Objects whose bytes in the destination no longer match the snapshot never reach the
/// gateway, whether they go up from memory or streamed: with signature v2 the gateway checks
/// no hash, so this holds only because the restore checks first (a streamed object's last
/// chunk waits for the check). The restore fails naming them and restores the rest.
#[test]
fn a_restore_never_writes_bytes_that_do_not_match_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let url = file_url(tmp.path());
    let bucket = unique_bucket("registry");
    create_bucket(&bucket);
    let good = obj(20, 3000, "text/plain", &[("k", "v")]);
    let small = obj(21, 5000, "application/octet-stream", &[]);
    let streamed = obj(22, 3 << 20, "application/octet-stream", &[("layer", "2")]);
    let longer = obj(23, 2 << 20, "application/octet-stream", &[]);
    for (key, o) in [
        ("good", &good),
        ("small", &small),
        ("streamed", &streamed),
        ("longer", &longer),
    ] {
        put(&bucket, key, o);
    }
    gw_run(&[&bucket], "v2", &url, &["backup", "gateway"]).assert_ok();
    let stored = |o: &Obj| {
        let sha = sha256_hex(&o.data);
        tmp.path()
            .join("gateway/objects")
            .join(&sha[..2])
            .join(&sha)
    };
    // the last byte of two damaged objects: the streamed one's held-back byte
    for o in [&small, &streamed] {
        let mut bytes = std::fs::read(stored(o)).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(stored(o), bytes).unwrap();
    }
    // a whole number of chunks, its first byte changed and one byte more: every byte of its
    // Content-Length is in hand before the extra one shows the damage
    let mut bytes = std::fs::read(stored(&longer)).unwrap();
    bytes[0] ^= 1;
    bytes.push(0);
    std::fs::write(stored(&longer), bytes).unwrap();
    drop_bucket(&bucket);
    let run = gw_run(
        &[&bucket],
        "v2",
        &url,
        &["restore", "latest", "--only", "gateway"],
    );
    assert_eq!(run.code, 1, "{}", run.all());
    let all = run.all();
    assert!(
        all.contains("3 object(s) could not be restored")
            && all.contains(&format!(
                "{bucket}/small: its bytes in the object store do not match"
            ))
            && all.contains(&format!(
                "{bucket}/longer: its bytes in the object store do not match"
            ))
            && all.contains(&format!(
                "{bucket}/streamed: its bytes in the object store do not match"
            )),
        "{all}"
    );
    let got = read_bucket(&bucket);
    assert_eq!(got.keys().collect::<Vec<_>>(), ["good"], "{all}");
    assert_eq!(got["good"], good);
    drop_bucket(&bucket);
}

/// With signature v4 the gateway itself refuses a body that does not match the sha256 the
/// restore signs it with (from memory or streamed), and takes one that does.
#[test]
fn a_v4_gateway_refuses_a_body_that_does_not_match_its_signed_sha256() {
    use deis_backup::gateway::body::channel_body;
    let bucket = unique_bucket("db_wal");
    create_bucket(&bucket);
    let client = GatewayClient::new(
        &settings(Signature::V4, &testbed("TESTBED_GATEWAY_SECRET_KEY")),
        &TimeoutSettings::default(),
        SignatureVersion::V4,
    )
    .unwrap();
    let data = random_bytes(23, 2 << 20);
    let (right, wrong) = (sha256_hex(&data), sha256_hex(b"other bytes"));
    let none = BTreeMap::new();
    let len = data.len() as u64;
    let streamed = |sha: &str| {
        let (tx, body) = channel_body(len, 4);
        let chunks: Vec<Vec<u8>> = data.chunks(512 << 10).map(<[u8]>::to_vec).collect();
        let feeder = std::thread::spawn(move || {
            for chunk in chunks {
                if tx.blocking_send(Ok(chunk.into())).is_err() {
                    break;
                }
            }
        });
        let body = ByteStream::from_body_1_x(body);
        let sent = block_on(client.put(&bucket, "streamed", body, len, sha, None, &none));
        feeder.join().unwrap();
        sent
    };
    let in_memory = |sha: &str| {
        let body = ByteStream::from(data.clone());
        block_on(client.put(&bucket, "in-memory", body, len, sha, None, &none))
    };
    let err = in_memory(&wrong).expect_err("a body that is not the signed one");
    assert!(!err.is_transient(), "{err}");
    streamed(&wrong).expect_err("a streamed body that is not the signed one");
    assert!(read_bucket(&bucket).is_empty(), "a refused body was stored");
    in_memory(&right).unwrap();
    streamed(&right).unwrap();
    let got = read_bucket(&bucket);
    assert_eq!(got.len(), 2);
    assert!(got.values().all(|o| o.data == data));
    drop_bucket(&bucket);
}
