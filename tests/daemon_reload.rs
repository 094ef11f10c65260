//! The daemon (`deis-backup run`) follows etcd live: a new destination and a new schedule are
//! applied without restart, an invalid cron is rejected (key named, last good kept, daemon
//! running), an etcd stopped and restarted under the watcher is recovered from, and no secret
//! put in etcd reaches the log. Needs the test bed's etcd (`bash tests/run.sh`).

mod etcd_support;
mod support;

use deis_backup::config::EtcdApi;
use etcd_support::*;
use std::path::Path;
use support::*;

const SECRET: &str = "daemon-secret-77aa66bb";

/// A config file: the volume job every second into `dest`, every other job disabled.
fn config_file(
    dir: &Path,
    dest: &Path,
    etcd_url: &str,
    api: &str,
    prefix: &str,
) -> std::path::PathBuf {
    write(&dir.join("store/data.txt"), b"hello deis");
    let path = dir.join("daemon.toml");
    std::fs::write(
        &path,
        format!(
            "[etcd]\nendpoints = [\"{etcd_url}\"]\napi = \"{api}\"\nprefix = \"{prefix}\"\n\
             [destination]\nurl = \"{}\"\n[volume]\npath = \"{}\"\n\
             [schedule]\nvolume = \"*/1 * * * * *\"\ngateway = \"\"\ndatabase = \"\"\netcd = \"\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n[retention]\nkeep-last = 1000\n",
            file_url(dest),
            dir.join("store").display()
        ),
    )
    .unwrap();
    path
}

fn live_changes(api: EtcdApi, flag: &str) {
    let url = endpoint();
    let prefix = unique_prefix(&format!("daemon-{flag}"));
    let c = client(&url, api);
    let k = |rel: &str| format!("{prefix}/backup/{rel}");
    put(
        &c,
        &[
            (&k("destination/secretKey"), SECRET),
            (&format!("{prefix}/store/gateway/secretKey"), SECRET),
        ],
    );
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    let config = config_file(tmp.path(), &first, &url, flag, &prefix);
    let daemon = Daemon::start(&config, &tmp.path().join("daemon.log"), &[]);

    assert!(
        wait_until(30_000, || complete_sets(&first, "volume") >= 1),
        "no set at the first destination:\n{}",
        daemon.log()
    );
    put(&c, &[(&k("destination/url"), &file_url(&second))]);
    assert!(
        wait_until(30_000, || complete_sets(&second, "volume") >= 1),
        "the new destination was not used:\n{}",
        daemon.log()
    );
    assert!(
        daemon.wait_log(5_000, &["Configuration reloaded", "destination.url"]),
        "{}",
        daemon.log()
    );

    // An invalid cron: rejected, key named, the daemon keeps running on the last good.
    put(&c, &[(&k("schedule/volume"), "61 * * * *")]);
    assert!(
        daemon.wait_log(
            15_000,
            &["schedule.volume", "last good configuration stays"]
        ),
        "{}",
        daemon.log()
    );
    let before = complete_sets(&second, "volume");
    assert!(
        wait_until(15_000, || complete_sets(&second, "volume") > before),
        "runs stopped after an invalid change:\n{}",
        daemon.log()
    );

    // A valid new schedule (disabled) is applied: runs stop.
    put(&c, &[(&k("schedule/volume"), "")]);
    assert!(
        daemon.wait_log(15_000, &["changed=schedule.volume"]),
        "{}",
        daemon.log()
    );
    let settled = wait_until(5_000, || {
        let n = complete_sets(&second, "volume");
        std::thread::sleep(std::time::Duration::from_millis(2_500));
        complete_sets(&second, "volume") == n
    });
    assert!(
        settled,
        "runs go on after the schedule was emptied:\n{}",
        daemon.log()
    );

    let log_text = daemon.log();
    assert_eq!(daemon.terminate(), Some(0), "{log_text}");
    assert!(
        !log_text.contains(SECRET),
        "a secret reached the log:\n{log_text}"
    );
}

#[test]
fn live_destination_and_schedule_changes_over_v2() {
    live_changes(EtcdApi::V2, "v2");
}

#[test]
fn live_destination_and_schedule_changes_over_v3() {
    live_changes(EtcdApi::V3, "v3");
}

fn survives_restart(api: EtcdApi, flag: &str) {
    let own_dir = tempfile::tempdir().unwrap();
    let mut etcd = OwnEtcd::start(own_dir.path());
    let url = etcd.url();
    let prefix = "/deis";
    let tmp = tempfile::tempdir().unwrap();
    let (first, second) = (tmp.path().join("first"), tmp.path().join("second"));
    let config = config_file(tmp.path(), &first, &url, flag, prefix);
    put(
        &client(&url, api),
        &[("/deis/backup/destination/secretKey", SECRET)],
    );
    let daemon = Daemon::start(&config, &tmp.path().join("daemon.log"), &[]);
    assert!(
        wait_until(30_000, || complete_sets(&first, "volume") >= 1),
        "{}",
        daemon.log()
    );

    etcd.stop();
    assert!(
        daemon.wait_log(30_000, &["etcd is unreachable"]),
        "{}",
        daemon.log()
    );
    let before = complete_sets(&first, "volume");
    assert!(
        wait_until(15_000, || complete_sets(&first, "volume") > before),
        "runs stopped while etcd was down:\n{}",
        daemon.log()
    );
    etcd.restart();
    assert!(
        daemon.wait_log(30_000, &["etcd is reachable again"]),
        "{}",
        daemon.log()
    );
    put(
        &client(&url, api),
        &[("/deis/backup/destination/url", &file_url(&second))],
    );
    assert!(
        wait_until(30_000, || complete_sets(&second, "volume") >= 1),
        "a change after the restart was not applied:\n{}",
        daemon.log()
    );
    let log_text = daemon.log();
    assert_eq!(
        log_text.matches("etcd is unreachable").count(),
        1,
        "one line per outage:\n{log_text}"
    );
    assert_eq!(daemon.terminate(), Some(0), "{log_text}");
    assert!(!log_text.contains(SECRET), "{log_text}");
}

#[test]
fn watcher_recovers_from_an_etcd_restart_over_v2() {
    survives_restart(EtcdApi::V2, "v2");
}

#[test]
fn watcher_recovers_from_an_etcd_restart_over_v3() {
    survives_restart(EtcdApi::V3, "v3");
}
