//! Each job on a daemon that can run it, driven the Deis way. Two daemons on one etcd, only one
//! of which reaches the Docker engine: every database set comes from that one, and stopping it
//! stops database runs (nobody owns the job) while the other jobs go on. Keys as deisctl
//! writes them: `trigger/<job>` runs a job now and is deleted (a key naming no job is deleted
//! with a warning); `schedule/<job> = off` disables a job live; the configuration in force is
//! published create-if-absent. Over the v2 and v3 APIs. Needs the test bed (`bash tests/run.sh`).

mod etcd_support;
mod support;

use deis_backup::config::EtcdApi;
use deis_backup::runtime::block_on;
use etcd_support::{client, complete_sets, endpoint, put, unique_prefix, Daemon};
use std::path::{Path, PathBuf};
use support::{file_url, sample, scrape, testbed, wait_until, write};

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A daemon's configuration: `schedules` as TOML lines, its own destination folder `name`.
fn config(dir: &Path, name: &str, api: &str, prefix: &str, schedules: &str, port: u16) -> PathBuf {
    let store = dir.join("store");
    write(&store.join("data.txt"), b"placement");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[etcd]\nendpoints = [\"{}\"]\napi = \"{api}\"\nprefix = \"{prefix}\"\n\
             [destination]\nurl = \"{}\"\n[volume]\npath = \"{}\"\n\
             [database]\ncontainer = \"{}\"\n[schedule]\n{schedules}\n\
             [retention]\nkeep-last = 1000\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            endpoint(),
            file_url(&dir.join(name)),
            store.display(),
            testbed("TESTBED_DB_CONTAINER"),
        ),
    )
    .unwrap();
    path
}

fn owner(port: u16, job: &str) -> Option<f64> {
    sample(
        &scrape(port),
        &format!("deis_backup_job_owner{{backup_job=\"{job}\"}}"),
    )
}

#[test]
fn the_database_job_runs_only_where_its_container_is() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("placement");
    let schedules = "volume = \"*/2 * * * * *\"\ndatabase = \"*/3 * * * * *\"\ngateway = \"off\"\netcd = \"off\"";
    let (port_a, port_b) = (free_port(), free_port());
    // b cannot reach any Docker engine
    let b = Daemon::start(
        &config(tmp.path(), "b", "v3", &prefix, schedules, port_b),
        &tmp.path().join("b.log"),
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert!(
        b.wait_log(20_000, &["cannot run the job here", "runs no container"]),
        "{}",
        b.log()
    );
    let a = Daemon::start(
        &config(tmp.path(), "a", "v3", &prefix, schedules, port_a),
        &tmp.path().join("a.log"),
        &[],
    );
    assert!(
        wait_until(40_000, || complete_sets(&tmp.path().join("a"), "database")
            >= 2),
        "{}\n{}",
        a.log(),
        b.log()
    );
    assert_eq!(
        complete_sets(&tmp.path().join("b"), "database"),
        0,
        "{}",
        b.log()
    );
    assert_eq!(owner(port_b, "database"), Some(0.0));
    assert_eq!(owner(port_a, "database"), Some(1.0));
    let volume_sets = || {
        complete_sets(&tmp.path().join("a"), "volume")
            + complete_sets(&tmp.path().join("b"), "volume")
    };
    assert!(volume_sets() >= 1);

    // the daemon that sees deis-database stops: nobody runs the database job, volume goes on
    assert_eq!(a.terminate(), Some(0));
    assert!(
        wait_until(30_000, || owner(port_b, "volume") == Some(1.0)),
        "{}",
        b.log()
    );
    let before = volume_sets();
    assert!(
        wait_until(20_000, || volume_sets() >= before + 2),
        "{}",
        b.log()
    );
    assert_eq!(owner(port_b, "database"), Some(0.0));
    assert_eq!(complete_sets(&tmp.path().join("b"), "database"), 0);
    assert_eq!(b.terminate(), Some(0));
}

fn deisctl_keys(api: EtcdApi, name: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix(&format!("deisctl-{name}"));
    let etcd = client(&endpoint(), api);
    let key = |k: &str| format!("{prefix}/backup/{k}");
    let value = |k: &str| -> Option<String> {
        let listing = block_on(etcd.get_prefix(&key(k))).unwrap();
        listing
            .nodes
            .iter()
            .find(|n| n.key == key(k))
            .map(|n| String::from_utf8_lossy(&n.value).into_owned())
    };
    // what an operator set with deisctl before the daemon starts is never overwritten
    put(
        &etcd,
        &[
            (&key("retention/keepDaily"), "9"),
            (&key("schedule/volume"), "0 3 * * *"),
            (&key("schedule/database"), "off"),
            (&key("schedule/gateway"), "disabled"),
        ],
    );
    let daemon = Daemon::start(
        &config(tmp.path(), "d", name, &prefix, "", free_port()),
        &tmp.path().join("d.log"),
        &[],
    );
    // the defaults of what nobody set are published, so deisctl shows the value in force
    assert!(
        daemon.wait_log(20_000, &["Published the built-in defaults"]),
        "{}",
        daemon.log()
    );
    assert_eq!(value("schedule/etcd").as_deref(), Some("*/15 * * * *"));
    assert_eq!(value("deadline/gateway").as_deref(), Some("6h"));
    assert_eq!(value("retention/keepMonthly").as_deref(), Some("6"));
    assert_eq!(value("schedule/volume").as_deref(), Some("0 3 * * *"));
    assert_eq!(value("schedule/database").as_deref(), Some("off"));
    assert_eq!(value("retention/keepDaily").as_deref(), Some("9"));
    assert!(
        daemon.wait_log(20_000, &["This daemon owns the job"]),
        "{}",
        daemon.log()
    );

    // a trigger runs the job now and is deleted; one naming no job is deleted with a warning
    let dest = tmp.path().join("d");
    put(
        &etcd,
        &[
            (&key("trigger/volume"), "now"),
            (&key("trigger/nosuchjob"), "1"),
        ],
    );
    assert!(
        wait_until(30_000, || complete_sets(&dest, "volume") == 1),
        "{}",
        daemon.log()
    );
    assert!(
        wait_until(10_000, || value("trigger/volume").is_none()
            && value("trigger/nosuchjob").is_none()),
        "{}",
        daemon.log()
    );
    assert!(daemon.wait_log(1, &["names no job"]), "{}", daemon.log());
    // the status key is written just after the set is complete
    assert!(
        wait_until(10_000, || value("status/volume").is_some()),
        "the owner writes the status: {}",
        daemon.log()
    );
    let status = value("status/volume").unwrap();
    assert!(status.contains("\"result\":\"success\""), "{status}");

    // off, live: a job running every second stops running
    put(&etcd, &[(&key("schedule/volume"), "*/1 * * * * *")]);
    assert!(
        wait_until(20_000, || complete_sets(&dest, "volume") >= 3),
        "{}",
        daemon.log()
    );
    put(&etcd, &[(&key("schedule/volume"), "off")]);
    assert!(
        daemon.wait_log(20_000, &["runs only when triggered"]),
        "{}",
        daemon.log()
    );
    let settled = complete_sets(&dest, "volume");
    let grew = wait_until(4_000, || complete_sets(&dest, "volume") > settled + 1);
    assert!(!grew, "the job still runs after off:\n{}", daemon.log());
    assert_eq!(daemon.terminate(), Some(0));
}

#[test]
fn deisctl_style_keys_over_v2() {
    deisctl_keys(EtcdApi::V2, "v2");
}

#[test]
fn deisctl_style_keys_over_v3() {
    deisctl_keys(EtcdApi::V3, "v3");
}

#[test]
fn triggers_during_a_run_give_one_run_after_it_not_more() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("trigger-busy");
    // a volume slow enough to back up (seconds in a debug build) to trigger during its run
    let store = tmp.path().join("store");
    for i in 0..40u64 {
        write(
            &store.join(format!("big-{i}.bin")),
            &support::random_bytes(i + 1, 8 << 20),
        );
    }
    let etcd = client(&endpoint(), EtcdApi::V3);
    let port = free_port();
    let daemon = Daemon::start(
        &config(
            tmp.path(),
            "t",
            "v3",
            &prefix,
            "volume = \"off\"\ndatabase = \"off\"\ngateway = \"off\"\netcd = \"off\"",
            port,
        ),
        &tmp.path().join("t.log"),
        &[],
    );
    assert!(
        wait_until(30_000, || owner(port, "volume") == Some(1.0)),
        "{}",
        daemon.log()
    );
    let trigger = format!("{prefix}/backup/trigger/volume");
    let running = || sample(&scrape(port), "deis_backup_running{backup_job=\"volume\"}");
    put(&etcd, &[(&trigger, "1")]);
    assert!(
        wait_until(20_000, || running() == Some(1.0)),
        "{}",
        daemon.log()
    );
    put(&etcd, &[(&trigger, "2")]);
    let gone = || {
        block_on(etcd.get_prefix(&trigger))
            .unwrap()
            .nodes
            .iter()
            .all(|n| n.key != trigger)
    };
    assert!(wait_until(10_000, gone), "{}", daemon.log());
    put(&etcd, &[(&trigger, "3")]);
    assert!(wait_until(10_000, gone), "{}", daemon.log());
    let dest = tmp.path().join("t");
    assert!(
        // two runs of 320 MiB: seconds each on an idle machine, a minute on a loaded one
        wait_until(300_000, || complete_sets(&dest, "volume") == 2
            && running() == Some(0.0)),
        "{}",
        daemon.log()
    );
    // nothing more comes: the two triggers during the first run made one run after it
    let more = wait_until(6_000, || complete_sets(&dest, "volume") > 2);
    assert!(!more, "{}", daemon.log());
    assert_eq!(daemon.terminate(), Some(0));
}
