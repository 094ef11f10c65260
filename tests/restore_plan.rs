//! A whole-cluster `restore latest`: every job that has a set, in the order of a Deis bring-up,
//! naming the jobs that have none, and the steps left for the operator; the database dump only
//! when db_wal holds no WAL-E base backup. And sets forged at the destination (a manifest
//! naming a path outside its set, a snapshot digest that is a path, an export key outside its
//! prefix) are clear errors, never a panic or a read or write outside.

mod support;

use deis_backup::jobs::gateway::{BucketSnapshot, ObjectRecord, Snapshot, SNAPSHOT_ARTIFACT};
use deis_backup::store::{
    Artifact, Destination, JobKind, LocalDestination, Manifest, RunId, SetRef, ToolInfo,
    FORMAT_VERSION,
};
use std::io::Write;
use std::path::Path;
use support::*;

/// Plants a complete set of `job` whose one artifact holds `json`, zstd-compressed.
fn plant(dest: &Path, job: JobKind, name: &str, json: &[u8]) -> SetRef {
    let store = LocalDestination::new(dest);
    let set = SetRef {
        job,
        run_id: RunId::new(chrono::Utc::now()),
    };
    let bytes = zstd::encode_all(json, 3).unwrap();
    let mut pending = store.begin_set(&set).unwrap();
    let mut sink = pending.create_artifact(name).unwrap();
    sink.write_all(&bytes).unwrap();
    let size = sink.finish().unwrap();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        job,
        run_id: set.run_id.clone(),
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        host: "forger".into(),
        tool: ToolInfo::this_build(),
        source: serde_json::json!({}),
        artifacts: vec![Artifact {
            name: name.into(),
            size,
            sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            compression: "zstd".into(),
            compression_level: Some(3),
            uncompressed_size: json.len() as u64,
            content: "json".into(),
        }],
        warnings: vec![],
        stats: Default::default(),
    };
    pending.complete(&manifest.to_json()).unwrap();
    set
}

#[test]
fn restore_latest_restores_what_there_is_in_bring_up_order_and_says_what_is_left() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    write(&store.join("a.txt"), b"only a volume was backed up");
    let url = file_url(&tmp.path().join("backups"));
    backup_volume(&store, &url).assert_ok();

    let target = tmp.path().join("restored");
    let out = run(&[
        "restore",
        "latest",
        "--dry-run",
        "--destination",
        &url,
        "--volume-path",
        target.to_str().unwrap(),
    ]);
    out.assert_ok();
    let text = &out.stdout;
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} missing:\n{text}"))
    };
    let order = [
        at("gateway: no complete gateway backup set"),
        at("would restore into"),
        at("etcd: no complete etcd backup set"),
        at("database: no complete database backup set"),
        at("Next steps on the new cluster"),
    ];
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(!target.exists(), "a dry run writes nothing");

    // a job asked for by name must have a set
    let out = run(&["restore", "latest", "--only", "etcd", "--destination", &url]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("no complete etcd backup set"),
        "{}",
        out.all()
    );
}

#[test]
fn forged_sets_are_clear_errors_and_never_reach_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backups");
    let url = file_url(&dest);

    // a manifest naming a file outside its set is not a complete set
    let forged = plant(&dest, JobKind::Volume, "store.tar.zst", b"{}");
    let manifest = dest.join(forged.dir()).join("manifest.json");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("\"store.tar.zst\"", "\"../../x\"");
    std::fs::write(&manifest, text).unwrap();
    let list = run(&["list", "--destination", &url]);
    assert!(
        list.all().contains("not a plain file name"),
        "{}",
        list.all()
    );
    let verify = run(&["verify", &forged.to_string(), "--destination", &url]);
    assert_eq!(verify.code, 1, "{}", verify.all());

    // a snapshot whose digest is a path, or not ASCII
    for digest in ["../../../../etc", "é".repeat(32).as_str()] {
        let snapshot = Snapshot {
            format_version: 1,
            buckets: vec![BucketSnapshot {
                name: "db_wal".into(),
                objects: vec![ObjectRecord {
                    key: "wal_005/x".into(),
                    size: 1,
                    etag: "e".into(),
                    sha256: digest.into(),
                    content_type: None,
                    metadata: Default::default(),
                    location: "gateway/objects/xx/y".into(),
                }],
            }],
        };
        let set = plant(
            &dest,
            JobKind::Gateway,
            SNAPSHOT_ARTIFACT,
            &serde_json::to_vec(&snapshot).unwrap(),
        );
        let out = run(&["verify", &set.to_string(), "--destination", &url]);
        assert_eq!(out.code, 1, "{}", out.all());
        assert!(
            out.all().contains("not 64 lowercase hex digits"),
            "{}",
            out.all()
        );
        assert!(!out.all().contains("panicked"), "{}", out.all());
    }

    // an export with a key outside its prefix (a fleet unit would start)
    let export = serde_json::json!({
        "format": 1, "api": "v2", "prefix": "/deis", "index": 1,
        "exported_at": "2026-12-01T00:00:00Z",
        "keys": [
            {"key": "/deis/platform/domain", "value": "example.com"},
            {"key": "/_coreos.com/fleet/job/evil.service/object", "value": "x"}
        ]
    });
    let set = plant(
        &dest,
        JobKind::Etcd,
        "etcd.json.zst",
        &serde_json::to_vec(&export).unwrap(),
    );
    let out = run(&[
        "restore",
        &set.to_string(),
        "--dry-run",
        "--etcd-target",
        "http://127.0.0.1:9",
        "--destination",
        &url,
    ]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("outside its prefix /deis"),
        "{}",
        out.all()
    );
}

/// `deis-backup` for the test bed's gateway (buckets `bucket`), database and `destination`.
fn bed_cli(bucket: &str, destination: &str) -> std::process::Command {
    let mut cmd = cli();
    testbed_gateway(&mut cmd, bucket)
        .env(
            "DEIS_BACKUP_DATABASE__CONTAINER",
            testbed("TESTBED_DB_CONTAINER"),
        )
        .env("DEIS_BACKUP_DESTINATION__URL", destination)
        .stdin(std::process::Stdio::null());
    cmd
}

fn bed_run(bucket: &str, destination: &str, args: &[&str]) -> Run {
    bed_cli(bucket, destination)
        .args(args)
        .output()
        .unwrap()
        .into()
}

#[test]
fn the_dump_is_replayed_only_when_db_wal_holds_no_wal_e_base_backup() {
    let tmp = tempfile::tempdir().unwrap();
    // the dry runs plan into a new cluster: the shared one may hold data from other tests,
    // which a database restore (dry or not) refuses
    let target = support::pg_cluster::FreshContainer::start(&unique("pw"));
    let sentinel =
        "basebackups_005/base_000000010000000000000002_00000040_backup_stop_sentinel.json";
    for (with_wal_e, keys) in [
        (true, vec![sentinel, "wal_005/000000010000000000000002.lzo"]),
        (false, vec!["wal_005/000000010000000000000002.lzo"]),
    ] {
        let bucket = GatewayBucket::with(
            "walrule",
            keys.iter().map(|k| (k.to_string(), b"{}".to_vec())),
        );
        let url = file_url(&tmp.path().join(format!("backups-{with_wal_e}")));
        bed_run(&bucket.0, &url, &["backup", "gateway"]).assert_ok();
        bed_run(&bucket.0, &url, &["backup", "database"]).assert_ok();
        let out = bed_run(
            &bucket.0,
            &url,
            &[
                "restore",
                "latest",
                "--dry-run",
                "--container",
                &target.name,
            ],
        );
        out.assert_ok();
        let skipped = out
            .stdout
            .contains("skipped: db_wal holds 1 WAL-E base backup(s)");
        let replayed = out.stdout.contains("would run `");
        assert_eq!(
            (skipped, replayed),
            (with_wal_e, !with_wal_e),
            "{}",
            out.all()
        );
        if with_wal_e {
            // asked for by name, the dump is replayed anyway
            let out = bed_run(
                &bucket.0,
                &url,
                &[
                    "restore",
                    "latest",
                    "--only",
                    "database",
                    "--dry-run",
                    "--container",
                    &target.name,
                ],
            );
            out.assert_ok();
            assert!(out.stdout.contains("would run `"), "{}", out.all());
        }
    }
}
