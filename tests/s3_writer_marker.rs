//! The S3 writer's in-progress marker against real Ceph radosgw: it names the writing process
//! beyond host and pid, a heartbeat rewrites it while nothing is uploaded, and a sweep spares
//! fresh markers of writers it cannot see (same host name on another boot, older versions).
//!
//! They read the `TESTBED_*` variables of `tests/testbed/up.sh`; run them with `bash tests/run.sh`.

mod support;

use deis_backup::config::{DestinationSettings, Secret, Settings};
use deis_backup::runtime::block_on;
use deis_backup::store::{open_destination, JobKind, RunId, SetRef};
use deis_backup::util::ProcessIdentity;
use std::io::Write;
use std::process::Command;
use support::*;

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

fn client() -> aws_sdk_s3::Client {
    s3_client("TESTBED_DEST_ACCESS_KEY", "TESTBED_DEST_SECRET_KEY")
}

/// The marker's body and last-modified time (seconds), `None` when it is absent.
fn marker(bucket: &str, key: &str) -> Option<(serde_json::Value, i64)> {
    block_on(async {
        let out = client().get_object().bucket(bucket).key(key).send().await;
        let out = match out {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return None,
            Err(e) => panic!("get {key}: {e:?}"),
        };
        let modified = out.last_modified().unwrap().secs();
        let body = out.body.collect().await.unwrap().into_bytes();
        Some((serde_json::from_slice(&body).unwrap(), modified))
    })
}

fn put(bucket: &str, key: &str, body: &serde_json::Value) {
    block_on(
        client()
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(serde_json::to_vec(body).unwrap().into())
            .send(),
    )
    .unwrap();
}

fn new_set() -> SetRef {
    SetRef {
        job: JobKind::Volume,
        run_id: RunId::new(chrono::Utc::now()),
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
fn the_marker_names_this_process_and_a_heartbeat_refreshes_it_without_uploads() {
    let bucket = testbed("TESTBED_DEST_BUCKET");
    let prefix = unique("heartbeat");
    let dest = open_destination(&settings(&bucket, &prefix)).unwrap();
    let set = new_set();
    let key = format!("{prefix}/volume/.{}.in-progress", set.run_id);
    let pending = dest.begin_set(&set).unwrap();

    let (body, written) = marker(&bucket, &key).expect("the marker is written first");
    let me = ProcessIdentity::current();
    assert_eq!(body["host"], me.host.as_str());
    assert_eq!(body["pid"], me.pid);
    assert_eq!(body["boot_id"], me.boot_id.as_str());
    assert_eq!(body["start_ticks"], me.start_ticks);
    assert_eq!(body["instance"], me.instance.as_str());
    assert!(body["pid_namespace"].as_str().unwrap().starts_with("pid:["));

    // nothing is uploaded, yet the marker is rewritten (every 60 s)
    let refreshed = wait_until(150_000, || {
        marker(&bucket, &key).is_some_and(|(_, modified)| modified > written)
    });
    assert!(refreshed, "the marker was not rewritten within 150 s");

    pending.complete(b"{}").unwrap();
    assert!(
        marker(&bucket, &key).is_none(),
        "complete removes the marker"
    );
    dest.delete_set(&set).unwrap();
}

#[test]
fn a_sweep_spares_fresh_markers_of_writers_it_cannot_see() {
    let bucket = testbed("TESTBED_DEST_BUCKET");
    let prefix = unique("elsewhere");
    let dest = open_destination(&settings(&bucket, &prefix)).unwrap();
    let me = ProcessIdentity::current();
    let writers = [
        // same host name, another boot (another host), a pid that looks dead here
        serde_json::json!({
            "host": me.host, "pid": dead_pid(), "boot_id": "another-boot",
            "start_ticks": 1, "instance": "x", "pid_namespace": "pid:[1]",
            "started_at": chrono::Utc::now(),
        }),
        // an older version's marker: host and pid only
        serde_json::json!({
            "host": me.host, "pid": dead_pid(), "started_at": chrono::Utc::now(),
        }),
    ];
    let mut sets = Vec::new();
    for writer in &writers {
        let set = new_set();
        let mut pending = dest.begin_set(&set).unwrap();
        let mut sink = pending.create_artifact("a.bin").unwrap();
        sink.write_all(b"written elsewhere").unwrap();
        sink.finish().unwrap();
        // the writer "crashes" here (its marker stays); another writer's marker replaces it
        std::mem::forget(pending);
        put(
            &bucket,
            &format!("{prefix}/volume/.{}.in-progress", set.run_id),
            writer,
        );
        sets.push(set);
    }
    assert_eq!(dest.sweep_incomplete().unwrap(), Vec::<String>::new());
    let mut listed = dest.list_sets(None).unwrap();
    listed.sort();
    sets.sort();
    assert_eq!(listed, sets, "fresh markers: the sets stay");
    for set in &sets {
        dest.delete_set(set).unwrap();
        block_on(
            client()
                .delete_object()
                .bucket(&bucket)
                .key(format!("{prefix}/volume/.{}.in-progress", set.run_id))
                .send(),
        )
        .unwrap();
    }
}

#[test]
fn a_writer_whose_marker_a_sweep_removed_does_not_complete_its_set() {
    let bucket = testbed("TESTBED_DEST_BUCKET");
    let prefix = unique("judged-dead");
    let dest = open_destination(&settings(&bucket, &prefix)).unwrap();
    let set = new_set();
    let mut pending = dest.begin_set(&set).unwrap();
    let mut sink = pending.create_artifact("a.bin").unwrap();
    sink.write_all(b"maybe swept").unwrap();
    sink.finish().unwrap();
    // what a sweep that judged this writer dead does first
    let key = format!("{prefix}/volume/.{}.in-progress", set.run_id);
    block_on(client().delete_object().bucket(&bucket).key(&key).send()).unwrap();

    let err = pending.complete(b"{}").unwrap_err().to_string();
    assert!(err.contains("left incomplete"), "{err}");
    assert_eq!(dest.read_manifest(&set).unwrap(), None);
    assert!(
        dest.list_sets(None).unwrap().is_empty(),
        "the set is removed"
    );
    assert!(marker(&bucket, &key).is_none());
}
