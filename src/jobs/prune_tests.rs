//! Tests of one job's prune on a local destination, with a fake clock for the grace period.

use super::*;
use crate::jobs::gateway::{BucketSnapshot, ObjectRecord, Snapshot, SNAPSHOT_ARTIFACT};
use crate::store::{Artifact, LocalDestination, RunId};
use chrono::{Duration, TimeZone};
use std::io::Write;

/// Writes the manifest of a set, as the harness does after a run.
fn complete_set(
    pending: Box<dyn crate::store::PendingSet>,
    set: &SetRef,
    started_at: DateTime<Utc>,
    source: serde_json::Value,
    artifacts: Vec<Artifact>,
    warnings: Vec<crate::store::Warning>,
    _stats: &(),
) -> Result<(), crate::store::StoreError> {
    let manifest = crate::store::Manifest {
        format_version: crate::store::FORMAT_VERSION,
        job: set.job,
        run_id: set.run_id.clone(),
        started_at,
        finished_at: started_at,
        host: "test".into(),
        tool: crate::store::ToolInfo::this_build(),
        source,
        artifacts,
        warnings,
        stats: Default::default(),
    };
    pending.complete(&manifest.to_json())
}

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 3, 0, 0).unwrap()
}

fn settings(keep_last: u32, grace_secs: u64) -> Settings {
    Settings {
        retention: crate::config::RetentionSettings {
            keep_last,
            keep_hourly: 0,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
            object_grace: crate::config::ConfigDuration::secs(grace_secs),
        },
        ..Settings::default()
    }
}

/// A complete set of `job` started at `t` with one artifact of `bytes`.
fn write_set(dest: &dyn Destination, job: JobKind, t: DateTime<Utc>, name: &str, bytes: &[u8]) {
    let set = SetRef {
        job,
        run_id: RunId::new(t),
    };
    let mut pending = dest.begin_set(&set).unwrap();
    let mut sink = pending.create_artifact(name).unwrap();
    sink.write_all(bytes).unwrap();
    let size = sink.finish().unwrap();
    let artifact = Artifact {
        name: name.into(),
        size,
        sha256: String::new(),
        compression: "zstd".into(),
        compression_level: None,
        uncompressed_size: size,
        content: "json".into(),
    };
    let source = serde_json::json!({});
    complete_set(pending, &set, t, source, vec![artifact], vec![], &()).unwrap();
}

fn write_gateway_set(dest: &dyn Destination, t: DateTime<Utc>, objects: &[&str]) {
    let records = objects.iter().map(|sha| ObjectRecord {
        key: format!("k-{sha}"),
        size: 1,
        etag: "e".into(),
        sha256: sha.to_string(),
        content_type: None,
        metadata: Default::default(),
        location: crate::store::object_path(sha),
    });
    let snapshot = Snapshot {
        format_version: 1,
        buckets: vec![BucketSnapshot {
            name: "db_wal".into(),
            objects: records.collect(),
        }],
    };
    let zst = zstd::encode_all(&serde_json::to_vec(&snapshot).unwrap()[..], 1).unwrap();
    write_set(dest, JobKind::Gateway, t, SNAPSHOT_ARTIFACT, &zst);
}

fn put(dest: &dyn Destination, bytes: &[u8]) -> String {
    let set = SetRef {
        job: JobKind::Gateway,
        run_id: RunId::new(Utc::now()),
    };
    let mut sink = dest.objects().unwrap().stage_object(&set, 1).unwrap();
    sink.write_all(bytes).unwrap();
    sink.commit().unwrap().sha256
}

fn counted(job: JobKind, kind: &str) -> u64 {
    metrics()
        .retention_deleted
        .with_label_values(&[job.as_str(), kind])
        .get()
}

#[test]
fn sets_are_deleted_and_counted_and_a_dry_run_deletes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = LocalDestination::new(tmp.path());
    for day in 1..=5 {
        write_set(&dest, JobKind::Etcd, at(day), "keys.json.zst", b"{}");
    }
    let before = counted(JobKind::Etcd, "set");
    let dry = PruneOptions {
        dry_run: true,
        now: at(6),
    };
    let report = prune_job(&dest, &settings(2, 0), JobKind::Etcd, &dry).unwrap();
    assert_eq!(report.kept.len(), 2);
    assert_eq!(report.kept[0].1, ["newest", "last 1/2"]);
    assert_eq!(report.removed.len(), 3);
    assert_eq!(dest.list_sets(Some(JobKind::Etcd)).unwrap().len(), 5);
    assert_eq!(counted(JobKind::Etcd, "set"), before);

    let wet = PruneOptions {
        dry_run: false,
        ..dry
    };
    let report = prune_job(&dest, &settings(2, 0), JobKind::Etcd, &wet).unwrap();
    assert_eq!(report.removed.len(), 3);
    let left = list_complete(&dest, Some(JobKind::Etcd)).unwrap().complete;
    let times: Vec<_> = left.iter().map(|m| m.started_at).collect();
    assert_eq!(times, [at(4), at(5)]);
    assert_eq!(counted(JobKind::Etcd, "set"), before + 3);
    assert!(report.objects.is_none(), "only the gateway job has objects");
}

#[test]
fn objects_go_only_when_unreferenced_and_older_than_the_grace_by_the_fake_clock() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = LocalDestination::new(tmp.path());
    let [only_old, shared, orphan] = [b"a".as_slice(), b"b", b"c"].map(|b| put(&dest, b));
    write_gateway_set(&dest, at(1), &[&only_old, &shared]);
    write_gateway_set(&dest, at(2), &[&shared]);
    let store = dest.objects().unwrap();
    let present = |sha: &str| store.object_size(sha).unwrap().is_some();
    let before = counted(JobKind::Gateway, "object");

    // one hour of grace, and "now" is the real time: every object is young
    let now = PruneOptions {
        dry_run: false,
        now: Utc::now(),
    };
    let report = prune_job(&dest, &settings(1, 3600), JobKind::Gateway, &now).unwrap();
    assert_eq!(report.removed.len(), 1);
    let sweep = report.objects.unwrap();
    assert_eq!((sweep.listed, sweep.referenced, sweep.young), (3, 1, 2));
    assert!(present(&only_old) && present(&orphan));

    // two hours later by the fake clock, the two unreferenced objects are past the grace
    let later = PruneOptions {
        now: now.now + Duration::hours(2),
        ..now
    };
    let report = prune_job(&dest, &settings(1, 3600), JobKind::Gateway, &later).unwrap();
    assert_eq!(report.objects_removed, 2);
    assert!(!present(&only_old) && !present(&orphan) && present(&shared));
    assert_eq!(counted(JobKind::Gateway, "object"), before + 2);
}

#[test]
fn an_unreadable_kept_snapshot_stops_the_object_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = LocalDestination::new(tmp.path());
    let orphan = put(&dest, b"orphan");
    write_gateway_set(&dest, at(1), &[]);
    write_set(
        &dest,
        JobKind::Gateway,
        at(2),
        SNAPSHOT_ARTIFACT,
        b"not zstd",
    );
    let options = PruneOptions {
        dry_run: false,
        now: Utc::now() + Duration::days(30),
    };
    let err = prune_job(&dest, &settings(2, 0), JobKind::Gateway, &options).unwrap_err();
    assert!(matches!(err, PruneError::Mark { .. }), "{err}");
    assert!(
        err.to_string().contains("no gateway object was deleted"),
        "{err}"
    );
    assert!(dest
        .objects()
        .unwrap()
        .object_size(&orphan)
        .unwrap()
        .is_some());

    // a corrupt manifest: the objects its snapshot references are unknown
    let other = tempfile::tempdir().unwrap();
    let dest = LocalDestination::new(other.path());
    let orphan = put(&dest, b"orphan");
    write_gateway_set(&dest, at(1), &[]);
    write_gateway_set(&dest, at(2), &[]);
    let sets = dest.list_sets(Some(JobKind::Gateway)).unwrap();
    std::fs::write(other.path().join(sets[0].dir()).join("manifest.json"), b"{").unwrap();
    let err = prune_job(&dest, &settings(1, 0), JobKind::Gateway, &options).unwrap_err();
    assert!(matches!(err, PruneError::UnreadableSet { .. }), "{err}");
    assert!(dest
        .objects()
        .unwrap()
        .object_size(&orphan)
        .unwrap()
        .is_some());
}

#[test]
fn a_running_gateway_job_defers_the_object_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = LocalDestination::new(tmp.path());
    let orphan = put(&dest, b"orphan");
    write_gateway_set(&dest, at(1), &[]);
    let running = SetRef {
        job: JobKind::Gateway,
        run_id: RunId::new(Utc::now()),
    };
    let pending = dest.begin_set(&running).unwrap();
    let options = PruneOptions {
        dry_run: false,
        now: Utc::now() + Duration::days(30),
    };
    let report = prune_job(&dest, &settings(1, 0), JobKind::Gateway, &options).unwrap();
    assert!(report
        .objects_skipped
        .unwrap()
        .contains(&running.to_string()));
    assert!(dest
        .objects()
        .unwrap()
        .object_size(&orphan)
        .unwrap()
        .is_some());
    drop(pending);
    let report = prune_job(&dest, &settings(1, 0), JobKind::Gateway, &options).unwrap();
    assert_eq!(report.objects_removed, 1);
}
