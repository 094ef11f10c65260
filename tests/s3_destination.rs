//! The S3 destination against real Ceph radosgw: the volume job round-trips through multipart
//! uploads, a killed run leaves nothing behind once the next run starts, and bad credentials
//! or a missing bucket give messages that say what to fix (and never show a secret).
//!
//! They read the `TESTBED_*` variables of `tests/testbed/up.sh`; run them with `bash tests/run.sh`.

mod support;

use deis_backup::config::{DestinationSettings, Secret, Settings};
use deis_backup::runtime::block_on;
use deis_backup::store::{open_destination, JobKind, RunId, SetRef};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use support::*;

/// `deis-backup ARGS...` configured (through the environment) for `s3://bucket/prefix`.
fn s3_cli(bucket: &str, prefix: &str, secret_key: &str) -> Command {
    let mut cmd = cli();
    testbed_s3_destination(&mut cmd, &format!("s3://{bucket}/{prefix}"))
        .env("DEIS_BACKUP_DESTINATION__SECRET_KEY", secret_key)
        .stdin(Stdio::null());
    cmd
}

fn run_s3(bucket: &str, prefix: &str, args: &[&str]) -> Run {
    s3_cli(bucket, prefix, &testbed("TESTBED_DEST_SECRET_KEY"))
        .args(args)
        .output()
        .expect("run deis-backup")
        .into()
}

/// Removes what a test wrote (objects and open uploads).
fn clear(bucket: &str, prefix: &str) {
    clear_prefix(bucket, prefix);
}

/// Path -> content of every regular file under `root`.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let rel = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn listed_sets(bucket: &str, prefix: &str) -> Vec<serde_json::Value> {
    let list = run_s3(bucket, prefix, &["list", "--json"]);
    list.assert_ok();
    serde_json::from_str::<serde_json::Value>(&list.stdout)
        .unwrap_or_else(|e| panic!("list --json: {e}: {}", list.all()))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn the_volume_job_round_trips_through_s3_with_multipart_uploads() {
    let bucket = testbed("TESTBED_DEST_BUCKET");
    let prefix = unique("roundtrip");
    let tmp = tempfile::tempdir().unwrap();
    let (source, target) = (tmp.path().join("store"), tmp.path().join("restored"));
    // incompressible, so the artifact takes three parts of 8 MiB
    write(&source.join("data/big.bin"), &random_bytes(11, 20 << 20));
    write(&source.join("logs/osd.0.log"), &b"log line\n".repeat(5000));
    write(&source.join("empty-file"), b"");
    let src = source.to_str().unwrap();

    let backup = run_s3(
        &bucket,
        &prefix,
        &["backup", "volume", "--volume-path", src],
    );
    backup.assert_ok();
    assert!(backup.stdout.contains("complete"), "{}", backup.all());

    let sets = listed_sets(&bucket, &prefix);
    assert_eq!(sets.len(), 1, "{sets:?}");
    let set = sets[0]["set"].as_str().unwrap().to_string();
    run_s3(&bucket, &prefix, &["verify", &set]).assert_ok();

    // what is in the bucket: the artifact (multipart: ETag "<md5>-<parts>") and the manifest,
    // no marker, no open upload
    let artifact_key = format!("{prefix}/{set}/store.tar.zst");
    let head = block_on(
        s3_client("TESTBED_DEST_ACCESS_KEY", "TESTBED_DEST_SECRET_KEY")
            .head_object()
            .bucket(&bucket)
            .key(&artifact_key)
            .send(),
    )
    .unwrap();
    let size = head.content_length().unwrap() as u64;
    assert!(
        size > 16 << 20,
        "artifact of {size} bytes spans three parts"
    );
    assert!(
        head.e_tag().unwrap().trim_matches('"').ends_with("-3"),
        "multipart ETag: {:?}",
        head.e_tag()
    );
    let manifest = block_on(async {
        let out = s3_client("TESTBED_DEST_ACCESS_KEY", "TESTBED_DEST_SECRET_KEY")
            .get_object()
            .bucket(&bucket)
            .key(format!("{prefix}/{set}/manifest.json"))
            .send()
            .await
            .unwrap();
        out.body.collect().await.unwrap().to_vec()
    });
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    assert_eq!(manifest["artifacts"][0]["size"].as_u64().unwrap(), size);
    let mut keys = keys_under(&bucket, &prefix);
    keys.sort();
    let mut expected = vec![
        artifact_key.clone(),
        format!("{prefix}/{set}/manifest.json"),
        format!("{prefix}/volume/index.json.zst"),
    ];
    expected.sort();
    assert_eq!(keys, expected);
    assert!(open_uploads(&bucket, &prefix).is_empty());

    run_s3(
        &bucket,
        &prefix,
        &[
            "restore",
            "latest",
            "--only",
            "volume",
            "--volume-path",
            target.to_str().unwrap(),
        ],
    )
    .assert_ok();
    assert_eq!(files(&target), files(&source));
    clear(&bucket, &prefix);
}

#[test]
fn a_killed_backup_leaves_nothing_once_the_next_run_starts() {
    let bucket = testbed("TESTBED_DEST_BUCKET");
    let prefix = unique("kill");
    let tmp = tempfile::tempdir().unwrap();
    let (big, small) = (tmp.path().join("big"), tmp.path().join("small"));
    for i in 0..4 {
        write(
            &big.join(format!("part-{i}.bin")),
            &random_bytes(100 + i, 48 << 20),
        );
    }
    write(&small.join("a.txt"), b"small");

    let mut child = s3_cli(&bucket, &prefix, &testbed("TESTBED_DEST_SECRET_KEY"))
        .args(["backup", "volume", "--compression-level", "19"])
        .args(["--volume-path", big.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = wait_until(180_000, || !open_uploads(&bucket, &prefix).is_empty());
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap(); // SIGKILL
    let out = child.wait_with_output().unwrap();
    assert!(
        started && still_running,
        "the backup should be uploading parts when killed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !open_uploads(&bucket, &prefix).is_empty(),
        "the kill left an open multipart upload"
    );
    assert!(
        keys_under(&bucket, &prefix)
            .iter()
            .any(|k| k.ends_with(".in-progress")),
        "the kill left the writer's marker"
    );
    assert!(listed_sets(&bucket, &prefix).is_empty(), "no set is listed");

    run_s3(
        &bucket,
        &prefix,
        &["backup", "volume", "--volume-path", small.to_str().unwrap()],
    )
    .assert_ok();
    assert_eq!(open_uploads(&bucket, &prefix), Vec::<String>::new());
    let keys = keys_under(&bucket, &prefix);
    assert!(
        !keys.iter().any(|k| k.ends_with(".in-progress")),
        "markers remain: {keys:?}"
    );
    let sets = listed_sets(&bucket, &prefix);
    assert_eq!(sets.len(), 1, "{sets:?}");
    let set = sets[0]["set"].as_str().unwrap();
    for key in &keys {
        assert!(
            key.starts_with(&format!("{prefix}/{set}/"))
                || key == &format!("{prefix}/volume/index.json.zst"),
            "only the complete set (and its job's catalog index) remains, found {key}"
        );
    }
    clear(&bucket, &prefix);
}

/// Settings for using the destination as a library.
fn settings(bucket: &str, prefix: &str) -> Settings {
    Settings {
        destination: DestinationSettings {
            url: format!("s3://{bucket}/{prefix}"),
            endpoint: Some(testbed("TESTBED_S3_ENDPOINT")),
            region: None,
            access_key: Some(Secret::new(testbed("TESTBED_DEST_ACCESS_KEY"))),
            secret_key: Some(Secret::new(testbed("TESTBED_DEST_SECRET_KEY"))),
            ..DestinationSettings::default()
        },
        ..Settings::default()
    }
}

/// A process id that is surely not running: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn sweep_removes_what_a_dead_writer_left_and_spares_a_live_one() {
    let bucket = testbed("TESTBED_DEST_BUCKET");
    let prefix = unique("sweep");
    let dest = open_destination(&settings(&bucket, &prefix)).unwrap();
    let set = |suffix: &str| SetRef {
        job: JobKind::Volume,
        run_id: format!(
            "{}-{suffix}",
            &RunId::new(chrono::Utc::now()).as_str()[..16]
        )
        .parse()
        .unwrap(),
    };
    let (dead, live) = (set("dead01"), set("a11fe0"));

    // a crashed writer: one finished artifact, one multipart upload in progress, no manifest
    let mut pending = dest.begin_set(&dead).unwrap();
    let mut done = pending.create_artifact("small.bin").unwrap();
    done.write_all(b"finished").unwrap();
    done.finish().unwrap();
    let mut open = pending.create_artifact("big.bin").unwrap();
    open.write_all(&random_bytes(3, 9 << 20)).unwrap();
    std::mem::forget(open);
    std::mem::forget(pending);
    // ...whose marker names a process of this host (boot and pid namespace) that is gone
    let marker_key = format!("{prefix}/volume/.{}.in-progress", dead.run_id);
    let me = deis_backup::util::ProcessIdentity::current();
    let marker = serde_json::json!({
        "host": me.host,
        "pid": dead_pid(),
        "boot_id": me.boot_id,
        "start_ticks": 1,
        "instance": "gone",
        "pid_namespace": fs::read_link("/proc/self/ns/pid").unwrap(),
        "started_at": chrono::Utc::now(),
    });
    block_on(
        s3_client("TESTBED_DEST_ACCESS_KEY", "TESTBED_DEST_SECRET_KEY")
            .put_object()
            .bucket(&bucket)
            .key(&marker_key)
            .body(serde_json::to_vec(&marker).unwrap().into())
            .send(),
    )
    .unwrap();

    // a live writer (this process) with a finished artifact
    let mut live_pending = dest.begin_set(&live).unwrap();
    let mut sink = live_pending.create_artifact("a.bin").unwrap();
    sink.write_all(b"live").unwrap();
    sink.finish().unwrap();

    assert_eq!(dest.list_sets(None).unwrap().len(), 2);
    assert_eq!(open_uploads(&bucket, &prefix).len(), 1);
    assert_eq!(dest.sweep_incomplete().unwrap(), vec![dead.to_string()]);
    assert!(open_uploads(&bucket, &prefix).is_empty());
    assert_eq!(dest.list_sets(None).unwrap(), vec![live.clone()]);
    let keys = keys_under(&bucket, &prefix);
    assert!(
        !keys.iter().any(|k| k.contains(dead.run_id.as_str())),
        "{keys:?}"
    );

    live_pending.complete(b"{}").unwrap();
    assert_eq!(dest.read_manifest(&live).unwrap().unwrap(), b"{}");
    dest.delete_set(&live).unwrap();
    assert!(keys_under(&bucket, &prefix).is_empty());
}

#[test]
fn an_abandoned_set_and_an_unfinished_artifact_leave_nothing() {
    let bucket = testbed("TESTBED_DEST_BUCKET");
    let prefix = unique("abandon");
    let dest = open_destination(&settings(&bucket, &prefix)).unwrap();
    let set = SetRef {
        job: JobKind::Volume,
        run_id: RunId::new(chrono::Utc::now()),
    };
    let mut pending = dest.begin_set(&set).unwrap();
    let mut done = pending.create_artifact("small.bin").unwrap();
    done.write_all(b"finished").unwrap();
    done.finish().unwrap();
    let mut open = pending.create_artifact("big.bin").unwrap();
    open.write_all(&random_bytes(5, 17 << 20)).unwrap();
    assert_eq!(open_uploads(&bucket, &prefix).len(), 1);
    drop(open);
    assert!(open_uploads(&bucket, &prefix).is_empty(), "drop aborts");
    drop(pending);
    assert!(keys_under(&bucket, &prefix).is_empty());
    assert!(matches!(
        dest.open_artifact(&set, "small.bin"),
        Err(deis_backup::store::StoreError::MissingArtifact { .. })
    ));
    assert!(dest.read_manifest(&set).unwrap().is_none());
}

#[test]
fn a_wrong_secret_key_is_a_clear_error_that_never_shows_a_secret() {
    let bucket = testbed("TESTBED_DEST_BUCKET");
    let prefix = unique("badkey");
    let wrong = "Wr0ngSecretValue-do-not-print-42";
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("a.txt"), b"a");
    for args in [
        vec![
            "backup",
            "volume",
            "--volume-path",
            tmp.path().to_str().unwrap(),
        ],
        vec!["list"],
    ] {
        let out: Run = s3_cli(&bucket, &prefix, wrong)
            .args(&args)
            .output()
            .unwrap()
            .into();
        assert_eq!(out.code, 1, "{args:?}: {}", out.all());
        assert!(
            out.stderr.contains("destination")
                && out.stderr.contains("refused the credentials")
                && out.stderr.contains("access-key/secret-key"),
            "{args:?}: {}",
            out.all()
        );
        for secret in [wrong, &testbed("TESTBED_DEST_ACCESS_KEY")] {
            assert!(
                !out.all().contains(secret),
                "a key was printed: {}",
                out.all()
            );
        }
    }
    assert!(keys_under(&bucket, &prefix).is_empty());
}

#[test]
fn a_missing_bucket_is_named_and_create_bucket_makes_it() {
    let bucket = unique("bucket").to_lowercase();
    let prefix = "backups";
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("a.txt"), b"a");
    let src = tmp.path().to_str().unwrap();

    let missing = run_s3(&bucket, prefix, &["backup", "volume", "--volume-path", src]);
    assert_eq!(missing.code, 1, "{}", missing.all());
    assert!(
        missing
            .stderr
            .contains(&format!("destination bucket {bucket} does not exist"))
            && missing.stderr.contains("--create-bucket"),
        "{}",
        missing.all()
    );

    run_s3(
        &bucket,
        prefix,
        &["backup", "volume", "--create-bucket", "--volume-path", src],
    )
    .assert_ok();
    assert_eq!(listed_sets(&bucket, prefix).len(), 1);
    clear(&bucket, prefix);
    block_on(
        s3_client("TESTBED_DEST_ACCESS_KEY", "TESTBED_DEST_SECRET_KEY")
            .delete_bucket()
            .bucket(&bucket)
            .send(),
    )
    .unwrap();
}
