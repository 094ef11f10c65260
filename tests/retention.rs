//! Retention end to end, on a local destination and on the test bed's radosgw: `prune` keeps
//! exactly the sets the policy keeps (sets built with chosen start times through the
//! destination API), `--dry-run` deletes nothing and says why each set stays, and the gateway
//! object store loses exactly the objects referenced only by pruned snapshots, never one a kept
//! snapshot references or one younger than the grace period.
//!
//! They read the `TESTBED_*` variables of `tests/testbed/up.sh`; run them with `bash tests/run.sh`.

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use deis_backup::config::{DestinationSettings, Secret, Settings};
use deis_backup::jobs::gateway::{BucketSnapshot, ObjectRecord, Snapshot, SNAPSHOT_ARTIFACT};
use deis_backup::store::{
    list_complete, object_path, open_destination, Artifact, Destination, JobKind, Manifest, RunId,
    SetRef, ToolInfo, FORMAT_VERSION,
};
use std::io::Write;
use std::process::Command;
use support::*;

/// Where a scenario runs: a destination to build sets with, and the CLI configured for it.
struct Place {
    settings: Settings,
    env: Vec<(&'static str, String)>,
    /// The local folder, or the bucket and prefix.
    at: At,
}

enum At {
    Local(std::path::PathBuf),
    S3 { bucket: String, prefix: String },
}

impl Place {
    fn local(dir: &std::path::Path) -> Self {
        let url = file_url(dir);
        Place {
            settings: Settings {
                destination: DestinationSettings {
                    url: url.clone(),
                    ..Settings::default().destination
                },
                ..Settings::default()
            },
            env: vec![("DEIS_BACKUP_DESTINATION__URL", url)],
            at: At::Local(dir.to_path_buf()),
        }
    }

    fn s3(prefix: &str) -> Self {
        let bucket = testbed("TESTBED_DEST_BUCKET");
        let url = format!("s3://{bucket}/{prefix}");
        let endpoint = testbed("TESTBED_S3_ENDPOINT");
        let (access, secret) = (
            testbed("TESTBED_DEST_ACCESS_KEY"),
            testbed("TESTBED_DEST_SECRET_KEY"),
        );
        Place {
            settings: Settings {
                destination: DestinationSettings {
                    url: url.clone(),
                    endpoint: Some(endpoint.clone()),
                    region: None,
                    access_key: Some(Secret::new(access.clone())),
                    secret_key: Some(Secret::new(secret.clone())),
                    ..DestinationSettings::default()
                },
                ..Settings::default()
            },
            env: vec![
                ("DEIS_BACKUP_DESTINATION__URL", url),
                ("DEIS_BACKUP_DESTINATION__ENDPOINT", endpoint),
                ("DEIS_BACKUP_DESTINATION__ACCESS_KEY", access),
                ("DEIS_BACKUP_DESTINATION__SECRET_KEY", secret),
            ],
            at: At::S3 {
                bucket,
                prefix: prefix.into(),
            },
        }
    }

    /// Leaves what a killed run leaves: a set folder with an artifact, no manifest, no writer.
    fn leave_incomplete(&self, set: &SetRef) {
        self.put_raw(&format!("{}/store.tar.zst", set.dir()), b"partial");
    }

    /// Writes `bytes` at `path` (relative to the destination root) behind the product's back.
    fn put_raw(&self, path: &str, bytes: &[u8]) {
        match &self.at {
            At::Local(dir) => write(&dir.join(path), bytes),
            At::S3 { bucket, prefix } => {
                let client = s3_client("TESTBED_DEST_ACCESS_KEY", "TESTBED_DEST_SECRET_KEY");
                deis_backup::runtime::block_on(
                    client
                        .put_object()
                        .bucket(bucket)
                        .key(format!("{prefix}/{path}"))
                        .body(bytes.to_vec().into())
                        .send(),
                )
                .unwrap();
            }
        }
    }

    /// Whether `path` (relative to the destination root) exists.
    fn has_raw(&self, path: &str) -> bool {
        match &self.at {
            At::Local(dir) => dir.join(path).is_file(),
            At::S3 { bucket, prefix } => {
                let client = s3_client("TESTBED_DEST_ACCESS_KEY", "TESTBED_DEST_SECRET_KEY");
                deis_backup::runtime::block_on(
                    client
                        .head_object()
                        .bucket(bucket)
                        .key(format!("{prefix}/{path}"))
                        .send(),
                )
                .is_ok()
            }
        }
    }

    fn dest(&self) -> Box<dyn Destination> {
        open_destination(&self.settings).expect("open the destination")
    }

    /// `deis-backup ARGS...` at this place, with a retention policy (`KEEP_LAST=2`, ...).
    fn run(&self, policy: &[(&str, &str)], args: &[&str]) -> Run {
        let mut cmd: Command = cli();
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        for (key, value) in policy {
            cmd.env(format!("DEIS_BACKUP_RETENTION__{key}"), value);
        }
        cmd.args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run deis-backup")
            .into()
    }
}

fn at(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap()
}

/// Writes a complete set of `job` that started at `t`, with the given artifacts.
fn write_set(dest: &dyn Destination, job: JobKind, t: DateTime<Utc>, files: &[(&str, Vec<u8>)]) {
    let set = SetRef {
        job,
        run_id: RunId::new(t),
    };
    let mut pending = dest.begin_set(&set).unwrap();
    let mut artifacts = Vec::new();
    for (name, bytes) in files {
        let mut sink = pending.create_artifact(name).unwrap();
        sink.write_all(bytes).unwrap();
        let size = sink.finish().unwrap();
        artifacts.push(Artifact {
            name: name.to_string(),
            size,
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)),
            compression: "zstd".into(),
            compression_level: Some(3),
            uncompressed_size: size,
            content: "json".into(),
        });
    }
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        job,
        run_id: set.run_id.clone(),
        started_at: t,
        finished_at: t + Duration::minutes(1),
        host: "test".into(),
        tool: ToolInfo::this_build(),
        source: serde_json::json!({"kind": job.as_str()}),
        artifacts,
        warnings: Vec::new(),
        stats: Default::default(),
    };
    pending.complete(&manifest.to_json()).unwrap();
}

/// Writes a gateway set started at `t` whose snapshot references `objects` (sha256s).
fn write_gateway_set(dest: &dyn Destination, t: DateTime<Utc>, objects: &[&str]) {
    let snapshot = Snapshot {
        format_version: 1,
        buckets: vec![BucketSnapshot {
            name: "registry".into(),
            objects: objects
                .iter()
                .enumerate()
                .map(|(i, sha)| ObjectRecord {
                    key: format!("key-{i}"),
                    size: 1,
                    etag: "e".into(),
                    sha256: sha.to_string(),
                    content_type: None,
                    metadata: Default::default(),
                    location: object_path(sha),
                })
                .collect(),
        }],
    };
    let json = serde_json::to_vec(&snapshot).unwrap();
    let zst = zstd::encode_all(&json[..], 3).unwrap();
    write_set(dest, JobKind::Gateway, t, &[(SNAPSHOT_ARTIFACT, zst)]);
}

/// Stores `bytes` in the gateway object store; returns its address.
fn put_object(dest: &dyn Destination, bytes: &[u8]) -> String {
    let set = SetRef {
        job: JobKind::Gateway,
        run_id: RunId::new(Utc::now()),
    };
    let mut sink = dest
        .objects()
        .unwrap()
        .stage_object(&set, bytes.len() as u64)
        .unwrap();
    sink.write_all(bytes).unwrap();
    sink.commit().unwrap().sha256
}

/// The start times of the complete sets of `job`, oldest first.
fn complete_times(dest: &dyn Destination, job: JobKind) -> Vec<DateTime<Utc>> {
    list_complete(dest, Some(job))
        .unwrap()
        .complete
        .iter()
        .map(|m| m.started_at)
        .collect()
}

/// Volume sets every 6 hours from March 1 to March 10, two etcd sets; with keep-last 2 and
/// keep-daily 3 (weekly and monthly off), `prune --job volume` keeps exactly 4 volume sets.
fn sets_are_pruned_by_the_policy(place: &Place) {
    let dest = place.dest();
    let mut volume: Vec<_> = (1..=10)
        .flat_map(|d| [0, 6, 12, 18].map(|h| at(d, h)))
        .collect();
    volume.sort();
    for t in &volume {
        write_set(
            dest.as_ref(),
            JobKind::Volume,
            *t,
            &[("store.tar.zst", vec![1; 10])],
        );
    }
    for d in [1, 2] {
        write_set(
            dest.as_ref(),
            JobKind::Etcd,
            at(d, 0),
            &[("keys.json.zst", vec![2])],
        );
    }
    // an incomplete set whose writer is gone
    let interrupted = SetRef {
        job: JobKind::Volume,
        run_id: RunId::new(at(11, 0)),
    };
    place.leave_incomplete(&interrupted);
    assert!(dest
        .list_sets(Some(JobKind::Volume))
        .unwrap()
        .contains(&interrupted));
    let policy = [
        ("KEEP_LAST", "2"),
        ("KEEP_DAILY", "3"),
        ("KEEP_WEEKLY", "0"),
        ("KEEP_MONTHLY", "0"),
    ];

    let dry = place.run(&policy, &["prune", "--dry-run", "--job", "volume"]);
    dry.assert_ok();
    assert_eq!(
        complete_times(dest.as_ref(), JobKind::Volume),
        volume,
        "{}",
        dry.all()
    );
    assert!(
        dry.stdout
            .contains("volume: 40 complete set(s), keeping 4, would remove 36"),
        "{}",
        dry.all()
    );
    assert!(
        dry.stdout.contains("(newest, last 1/2, daily 2026-03-10)"),
        "{}",
        dry.all()
    );
    assert!(dry.stdout.contains("(last 2/2)"), "{}", dry.all());
    assert!(dry.stdout.contains("(daily 2026-03-08)"), "{}", dry.all());
    assert_eq!(
        dry.stdout.matches("would remove  volume/").count(),
        36,
        "{}",
        dry.all()
    );
    assert!(!dry.stdout.contains("etcd"), "{}", dry.all());

    let wet = place.run(&policy, &["prune", "--job", "volume"]);
    wet.assert_ok();
    assert!(wet.stdout.contains("removed 36"), "{}", wet.all());
    assert!(
        wet.stdout
            .contains(&format!("swept incomplete set {interrupted}")),
        "{}",
        wet.all()
    );
    assert_eq!(
        complete_times(dest.as_ref(), JobKind::Volume),
        [at(8, 18), at(9, 18), at(10, 12), at(10, 18)],
        "{}",
        wet.all()
    );
    // the other jobs were not touched, and no half set is left over
    assert_eq!(
        complete_times(dest.as_ref(), JobKind::Etcd),
        [at(1, 0), at(2, 0)]
    );
    let left = dest.list_sets(Some(JobKind::Volume)).unwrap();
    assert_eq!(left.len(), 4, "{left:?}");
    assert!(!left.contains(&interrupted));

    // a policy that keeps nothing is refused and deletes nothing
    let zero = [
        ("KEEP_LAST", "0"),
        ("KEEP_DAILY", "0"),
        ("KEEP_WEEKLY", "0"),
        ("KEEP_MONTHLY", "0"),
    ];
    let refused = place.run(&zero, &["prune"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains("keeps nothing"),
        "{}",
        refused.all()
    );
    assert_eq!(complete_times(dest.as_ref(), JobKind::Volume).len(), 4);
    assert_eq!(complete_times(dest.as_ref(), JobKind::Etcd).len(), 2);
}

/// Objects: `old` only in the pruned snapshot, `shared` in both, `new` only in the kept one,
/// `orphan` in none. With keep-last 1 the old snapshot goes; its objects and the orphan go
/// only once they are older than the grace period.
fn gateway_objects_are_marked_and_swept(place: &Place) {
    let dest = place.dest();
    let [old, shared, new, orphan] =
        [b"old".as_slice(), b"shared", b"new", b"orphan"].map(|b| put_object(dest.as_ref(), b));
    write_gateway_set(dest.as_ref(), at(1, 0), &[&old, &shared]);
    write_gateway_set(dest.as_ref(), at(2, 0), &[&shared, &new]);
    let store = dest.objects().unwrap();
    let present = |sha: &str| store.object_size(sha).unwrap().is_some();
    let keep_one = |grace: &'static str| {
        [
            ("KEEP_LAST", "1"),
            ("KEEP_DAILY", "0"),
            ("KEEP_WEEKLY", "0"),
            ("KEEP_MONTHLY", "0"),
            ("OBJECT_GRACE", grace),
        ]
    };

    // the dry run deletes nothing, even with no grace
    let dry = place.run(&keep_one("0s"), &["prune", "--dry-run", "--job", "gateway"]);
    dry.assert_ok();
    assert!(
        dry.stdout
            .contains("4 stored, 2 referenced by kept snapshots, would remove 2"),
        "{}",
        dry.all()
    );
    assert_eq!(
        complete_times(dest.as_ref(), JobKind::Gateway),
        [at(1, 0), at(2, 0)]
    );
    assert!([&old, &shared, &new, &orphan].iter().all(|s| present(s)));

    // while a gateway run writes, objects are not collected (it may reuse old ones)
    let live = SetRef {
        job: JobKind::Gateway,
        run_id: RunId::new(Utc::now()),
    };
    let writer = dest.begin_set(&live).unwrap();
    let busy = place.run(&keep_one("0s"), &["prune", "--job", "gateway"]);
    busy.assert_ok();
    assert!(
        busy.stdout.contains(&format!(
            "not collected: gateway set {live} is being written"
        )),
        "{}",
        busy.all()
    );
    assert_eq!(complete_times(dest.as_ref(), JobKind::Gateway), [at(2, 0)]);
    assert!([&old, &shared, &new, &orphan].iter().all(|s| present(s)));
    drop(writer);

    // within the grace period, the object only the pruned set referenced and the orphan stay
    let young = place.run(&keep_one("1h"), &["prune", "--job", "gateway"]);
    young.assert_ok();
    assert!(
        young
            .stdout
            .contains("4 stored, 2 referenced by kept snapshots, removed 0"),
        "{}",
        young.all()
    );
    assert!(
        young
            .stdout
            .contains("2 unreferenced but within the 1h grace period"),
        "{}",
        young.all()
    );
    assert!([&old, &shared, &new, &orphan].iter().all(|s| present(s)));

    // past the grace period: exactly the unreferenced ones go; what is not an object stays
    let strays = ["gateway/objects/ab/not-an-object", "gateway/objects/README"];
    for stray in strays {
        place.put_raw(stray, b"not ours");
    }
    let swept = place.run(&keep_one("0s"), &["prune", "--job", "gateway"]);
    swept.assert_ok();
    assert!(
        swept
            .stdout
            .contains("4 stored, 2 referenced by kept snapshots, removed 2"),
        "{}",
        swept.all()
    );
    assert!(strays.iter().all(|s| place.has_raw(s)), "{}", swept.all());
    assert!(!present(&old) && !present(&orphan), "{}", swept.all());
    assert!(present(&shared) && present(&new), "{}", swept.all());
    let again = place.run(&keep_one("0s"), &["prune", "--job", "gateway"]);
    again.assert_ok();
    assert!(
        again
            .stdout
            .contains("2 stored, 2 referenced by kept snapshots, removed 0"),
        "{}",
        again.all()
    );
}

#[test]
fn local_prune_keeps_exactly_the_policy_sets() {
    let tmp = tempfile::tempdir().unwrap();
    sets_are_pruned_by_the_policy(&Place::local(tmp.path()));
}

#[test]
fn s3_prune_keeps_exactly_the_policy_sets() {
    sets_are_pruned_by_the_policy(&Place::s3(&unique("retention-sets")));
}

#[test]
fn local_gateway_objects_are_marked_and_swept() {
    let tmp = tempfile::tempdir().unwrap();
    gateway_objects_are_marked_and_swept(&Place::local(tmp.path()));
}

#[test]
fn s3_gateway_objects_are_marked_and_swept() {
    gateway_objects_are_marked_and_swept(&Place::s3(&unique("retention-objects")));
}
