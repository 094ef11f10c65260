//! Every network call has a deadline: with small timeouts configured, a service that accepts
//! connections and never answers (a black hole) or stops answering half-way (a stalling
//! proxy in front of the real service) fails the run in bounded time, with an error that
//! names the service; a database dump that produces no output fails at the idle timeout.
//!
//! Needs the test bed (`bash tests/run.sh --test deadlines`): real radosgw, etcd and the
//! database container. The bounds asserted are upper bounds on elapsed time; nothing sleeps.

mod support;

use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::blackhole::{BlackHole, StallingProxy};
use support::pg_lock::{sql, LockHolder};
use support::*;

/// The deadlines every run here is given.
const TIMEOUTS: [(&str, &str); 4] = [
    ("DEIS_BACKUP_TIMEOUTS__CONNECT", "2s"),
    ("DEIS_BACKUP_TIMEOUTS__REQUEST", "3s"),
    ("DEIS_BACKUP_TIMEOUTS__IDLE", "3s"),
    ("DEIS_BACKUP_TIMEOUTS__DATABASE_IDLE", "3s"),
];
/// What a failing run may take at most with those deadlines (retries included).
const BOUND: Duration = Duration::from_secs(40);

/// Runs `deis-backup ARGS...` with the small deadlines and `env`; returns the run and how
/// long it took.
fn timed(env: &[(&str, String)], args: &[&str]) -> (Run, Duration) {
    let started = Instant::now();
    let run: Run = cli()
        .envs(TIMEOUTS)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run deis-backup")
        .into();
    (run, started.elapsed())
}

/// Asserts a failed run, within [`BOUND`], whose output names `service`.
#[track_caller]
fn assert_failed_naming(run: &Run, took: Duration, service: &str) {
    eprintln!("failed after {took:?}:\n{}", run.stderr.trim_end());
    assert_ne!(run.code, 0, "the run should fail:\n{}", run.all());
    assert!(
        took < BOUND,
        "the run took {took:?} (bound {BOUND:?}):\n{}",
        run.all()
    );
    assert!(
        run.stderr.contains(service) || run.stdout.contains(service),
        "the error should name {service}:\n{}",
        run.all()
    );
}

/// A small volume to back up.
fn volume() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("a/data.bin"), &random_bytes(7, 4 << 20));
    dir
}

/// The S3 destination settings with `endpoint`.
fn destination(endpoint: &str, prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "DEIS_BACKUP_DESTINATION__URL",
            format!("s3://{}/{prefix}", testbed("TESTBED_DEST_BUCKET")),
        ),
        ("DEIS_BACKUP_DESTINATION__ENDPOINT", endpoint.into()),
        (
            "DEIS_BACKUP_DESTINATION__ACCESS_KEY",
            testbed("TESTBED_DEST_ACCESS_KEY"),
        ),
        (
            "DEIS_BACKUP_DESTINATION__SECRET_KEY",
            testbed("TESTBED_DEST_SECRET_KEY"),
        ),
    ]
}

#[test]
fn an_s3_destination_that_never_answers_fails_the_backup_in_bounded_time() {
    let hole = BlackHole::start();
    let src = volume();
    let env = destination(&hole.url(), &unique("hole"));
    let path = src.path().to_str().unwrap();
    let (run, took) = timed(&env, &["backup", "volume", "--volume-path", path]);
    assert_failed_naming(&run, took, &hole.url());
    assert_eq!(run.code, 1, "{}", run.all());
}

#[test]
fn an_s3_destination_that_stalls_mid_body_fails_verify_in_bounded_time() {
    let src = volume();
    let prefix = unique("stall");
    let path = src.path().to_str().unwrap();
    let direct = destination(&testbed("TESTBED_S3_ENDPOINT"), &prefix);
    let (backup, _) = timed(&direct, &["backup", "volume", "--volume-path", path]);
    backup.assert_ok();

    // answers pass until 64 KiB: the listing and the manifest, then the artifact stalls
    let proxy = StallingProxy::start(&testbed("TESTBED_S3_ENDPOINT"), 64 << 10);
    let env = destination(&proxy.url(), &prefix);
    let (run, took) = timed(&env, &["verify", "latest", "--job", "volume"]);
    assert_failed_naming(&run, took, &proxy.url());
    assert_eq!(proxy.passed(), 64 << 10, "the stall came before the body");
}

/// The gateway settings with `endpoint`, a bucket list and a local destination.
fn gateway(endpoint: &str, buckets: &str, dest: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("DEIS_BACKUP_GATEWAY__ENDPOINT", endpoint.into()),
        (
            "DEIS_BACKUP_GATEWAY__ACCESS_KEY",
            testbed("TESTBED_GATEWAY_ACCESS_KEY"),
        ),
        (
            "DEIS_BACKUP_GATEWAY__SECRET_KEY",
            testbed("TESTBED_GATEWAY_SECRET_KEY"),
        ),
        ("DEIS_BACKUP_GATEWAY__BUCKETS", buckets.into()),
        ("DEIS_BACKUP_DESTINATION__URL", file_url(dest)),
    ]
}

#[test]
fn a_gateway_that_never_answers_fails_the_backup_in_bounded_time() {
    let hole = BlackHole::start();
    let dest = tempfile::tempdir().unwrap();
    let env = gateway(&hole.url(), "db_wal", dest.path());
    let (run, took) = timed(&env, &["backup", "gateway"]);
    assert_failed_naming(&run, took, &hole.url());
}

#[test]
fn a_gateway_that_stalls_inside_a_body_fails_the_backup_in_bounded_time() {
    let bucket = format!("db_wal-{}", unique("stall").replace('-', "").to_lowercase());
    let bucket = &bucket[..bucket.len().min(60)];
    let s3 = s3_client("TESTBED_GATEWAY_ACCESS_KEY", "TESTBED_GATEWAY_SECRET_KEY");
    deis_backup::runtime::block_on(async {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
        s3.put_object()
            .bucket(bucket)
            .key("big")
            .body(random_bytes(3, 2 << 20).into())
            .send()
            .await
            .unwrap();
    });
    let proxy = StallingProxy::start(&testbed("TESTBED_S3_ENDPOINT"), 64 << 10);
    let dest = tempfile::tempdir().unwrap();
    let env = gateway(&proxy.url(), bucket, dest.path());
    let (run, took) = timed(&env, &["backup", "gateway"]);
    assert_failed_naming(&run, took, &proxy.url());
    assert_eq!(proxy.passed(), 64 << 10, "the stall came inside the body");
    deis_backup::runtime::block_on(async {
        s3.delete_object()
            .bucket(bucket)
            .key("big")
            .send()
            .await
            .unwrap();
        s3.delete_bucket().bucket(bucket).send().await.unwrap();
    });
}

#[test]
fn an_etcd_that_never_answers_fails_in_bounded_time_with_both_apis() {
    let hole = BlackHole::start();
    let url = hole.url();
    let dest = tempfile::tempdir().unwrap();
    let env = [("DEIS_BACKUP_DESTINATION__URL", file_url(dest.path()))];
    for api in ["v2", "v3"] {
        for command in [["backup", "etcd"], ["config", "show"]] {
            let args = [command[0], command[1], "--etcd", &url, "--etcd-api", api];
            let (run, took) = timed(&env, &args);
            assert_failed_naming(&run, took, &hole.url());
            assert!(run.all().contains("etcd"), "{}", run.all());
        }
    }
}

#[test]
fn restore_targets_that_never_answer_fail_the_restore_and_its_plan_in_bounded_time() {
    // sets to restore: a gateway snapshot of a small bucket, an export of a keyspace
    let bucket = GatewayBucket::with("holewal", [("wal_005/a".to_string(), b"x".to_vec())]);
    let dest = tempfile::tempdir().unwrap();
    let direct = gateway(&testbed("TESTBED_S3_ENDPOINT"), &bucket.0, dest.path());
    timed(&direct, &["backup", "gateway"]).0.assert_ok();
    let prefix = unique("/hole-restore");
    let etcd = testbed("TESTBED_ETCD_ENDPOINT");
    let env = [
        ("DEIS_BACKUP_DESTINATION__URL", file_url(dest.path())),
        ("DEIS_BACKUP_ETCD__PREFIX", prefix.clone()),
    ];
    let put = std::process::Command::new("curl")
        .args(["-fsS", "-X", "PUT", "-d", "value=v"])
        .arg(format!("{etcd}/v2/keys{prefix}/platform/x"))
        .output()
        .unwrap();
    assert!(put.status.success(), "{put:?}");
    timed(&env, &["backup", "etcd", "--etcd", &etcd])
        .0
        .assert_ok();

    // the gateway step lists the target before writing: a black hole there fails in time
    let hole = BlackHole::start();
    let at_hole = gateway(&hole.url(), &bucket.0, dest.path());
    for dry in [true, false] {
        let mut args = vec!["restore", "latest", "--only", "gateway"];
        args.extend(dry.then_some("--dry-run"));
        let (run, took) = timed(&at_hole, &args);
        assert_failed_naming(&run, took, &hole.url());
    }
    // the etcd step reads the target's keys before writing, over either API
    let hole_url = hole.url();
    for api in ["v2", "v3"] {
        for dry in [true, false] {
            let mut args = vec!["restore", "latest", "--only", "etcd", "--etcd-api", api];
            args.extend(["--etcd-target", &hole_url]);
            args.extend(dry.then_some("--dry-run"));
            let (run, took) = timed(&env, &args);
            assert_failed_naming(&run, took, "etcd");
        }
    }
}

/// The database tests hold locks in the shared container: one at a time.
static DATABASE: Mutex<()> = Mutex::new(());

/// Dumps (pg_dump backends) running in `container`.
fn dumps_running(container: &str) -> usize {
    let count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump'";
    sql(container, count)
        .stdout
        .trim()
        .parse()
        .unwrap_or(usize::MAX)
}

#[test]
fn a_dump_blocked_on_a_lock_fails_at_the_idle_timeout() {
    let _one = DATABASE.lock().unwrap_or_else(|e| e.into_inner());
    let container = testbed("TESTBED_DB_CONTAINER");
    let lock = LockHolder::start(&container);
    let dest = tempfile::tempdir().unwrap();
    let env = [
        ("DEIS_BACKUP_DATABASE__CONTAINER", container.clone()),
        ("DEIS_BACKUP_DESTINATION__URL", file_url(dest.path())),
    ];
    let (run, took) = timed(&env, &["backup", "database"]);
    drop(lock);
    assert_failed_naming(&run, took, &container);
    assert!(
        run.stderr.contains("no output for 3s"),
        "the error should name the idle timeout:\n{}",
        run.all()
    );
    assert!(
        took >= Duration::from_secs(3),
        "failed before the idle timeout: {took:?}"
    );
    assert!(
        set_dirs(dest.path(), "database").is_empty(),
        "no set is kept"
    );
    // the abandoned dump is not left hanging: once the lock is gone it ends (the engine
    // discards its output)
    assert!(
        wait_until(60_000, || dumps_running(&container) == 0),
        "a pg_dump is still running in {container}"
    );
}

#[test]
fn a_dump_silent_for_longer_than_the_request_deadline_still_succeeds() {
    let _one = DATABASE.lock().unwrap_or_else(|e| e.into_inner());
    let container = testbed("TESTBED_DB_CONTAINER");
    let lock = LockHolder::start(&container);
    let dest = tempfile::tempdir().unwrap();
    let backup = cli()
        .envs(TIMEOUTS)
        .env("DEIS_BACKUP_TIMEOUTS__REQUEST", "2s")
        .env("DEIS_BACKUP_TIMEOUTS__DATABASE_IDLE", "60s")
        .env("DEIS_BACKUP_DATABASE__CONTAINER", &container)
        .env("DEIS_BACKUP_DESTINATION__URL", file_url(dest.path()))
        .args(["backup", "database"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn deis-backup");
    // the dump waits on the lock, silent, for more than twice the request deadline ...
    let waited = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' \
         AND wait_event_type = 'Lock' AND now() - query_start > interval '4 seconds'";
    let blocked = wait_until(60_000, || sql(&container, waited).stdout.trim() == "1");
    drop(lock);
    let run: Run = backup.wait_with_output().unwrap().into();
    assert!(blocked, "the dump never waited on the lock:\n{}", run.all());
    // ... and, the lock gone, completes: no deadline cut the healthy stream
    run.assert_ok();
    let sets = set_dirs(dest.path(), "database");
    assert_eq!(sets.len(), 1, "{}", run.all());
    assert!(sets[0].join("manifest.json").is_file(), "{}", run.all());
}
