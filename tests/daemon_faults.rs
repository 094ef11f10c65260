//! The daemon facing a service that accepts connections and never answers: each scheduled run
//! fails within its deadlines with an error naming the service, a later tick runs again (no run
//! hangs and blocks the job), and the daemon stays up and stops cleanly. Also a
//! daemon killed while its database dump is stuck on a lock: the restart alone cleans up.
//! Needs the test bed (`bash tests/run.sh`).

mod etcd_support;
mod support;

use etcd_support::Daemon;
use std::path::{Path, PathBuf};
use support::blackhole::BlackHole;
use support::pg_lock::LockHolder;
use support::{file_url, sample, scrape, set_dirs, testbed, wait_until, write};

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn runs(port: u16, job: &str, result: &str) -> f64 {
    let series = format!("deis_backup_runs_total{{backup_job=\"{job}\",result=\"{result}\"}}");
    sample(&scrape(port), &series).unwrap_or(0.0)
}

fn write_config(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn a_black_holed_destination_fails_each_tick_and_the_daemon_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let hole = BlackHole::start();
    let store = tmp.path().join("store");
    write(&store.join("a.txt"), b"nowhere to go");
    let port = free_port();
    let config = write_config(
        tmp.path(),
        "daemon",
        &format!(
            "[destination]\nurl = \"s3://backups/cluster\"\nendpoint = \"{}\"\n\
             access-key = \"AKIDBLACKHOLE\"\nsecret-key = \"black-hole-secret\"\n\
             [volume]\npath = \"{}\"\n[schedule]\nvolume = \"*/2 * * * * *\"\ngateway = \"\"\n\
             database = \"\"\netcd = \"\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\
             [timeouts]\nconnect = \"1s\"\nrequest = \"2s\"\nidle = \"2s\"\n",
            hole.url(),
            store.display()
        ),
    );
    let daemon = Daemon::start(&config, &tmp.path().join("daemon.log"), &[]);
    assert!(
        wait_until(120_000, || runs(port, "volume", "failure") >= 3.0),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(
        log.contains(&hole.url()),
        "the error names the destination:\n{log}"
    );
    assert!(!log.contains("black-hole-secret"), "{log}");
    // each run ends within its deadlines (ticks meanwhile are skipped), so runs go on failing
    // one after the other instead of one hanging forever
    assert!(log.contains("did not answer in time"), "{log}");
    assert_eq!(daemon.terminate(), Some(0));
}

/// Set folders without a manifest and writer marks at a local destination.
fn leftovers(dest: &Path) -> Vec<PathBuf> {
    let mut left: Vec<PathBuf> = set_dirs(dest, "database")
        .into_iter()
        .filter(|d| !d.join("manifest.json").exists())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dest.join("database")) {
        left.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(".in-progress")),
        );
    }
    left
}

#[test]
fn a_daemon_killed_while_its_dump_waits_on_a_lock_is_cleaned_up_by_its_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let container = testbed("TESTBED_DB_CONTAINER");
    let dest = tmp.path().join("backups");
    let config = |name: &str, schedule: &str| {
        write_config(
            tmp.path(),
            name,
            &format!(
                "[destination]\nurl = \"{}\"\n[database]\ncontainer = \"{container}\"\n\
                 [schedule]\ndatabase = \"{schedule}\"\ngateway = \"\"\nvolume = \"\"\n\
                 etcd = \"\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
                file_url(&dest)
            ),
        )
    };
    let lock = LockHolder::start(&container);
    let mut daemon = Daemon::start(
        &config("stuck", "*/1 * * * * *"),
        &tmp.path().join("stuck.log"),
        &[],
    );
    assert!(
        wait_until(30_000, || !leftovers(&dest).is_empty()),
        "the dump never started:\n{}",
        daemon.log()
    );
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    drop(lock);
    assert!(!leftovers(&dest).is_empty());

    let restarted = Daemon::start(
        &config("restarted", ""),
        &tmp.path().join("restarted.log"),
        &[],
    );
    assert!(
        wait_until(20_000, || leftovers(&dest).is_empty()),
        "left: {:?}\n{}",
        leftovers(&dest),
        restarted.log()
    );
    assert_eq!(restarted.terminate(), Some(0));
}

#[test]
fn a_black_holed_etcd_never_stops_the_backups() {
    // configuration read, election, defaults, triggers and status keys all meet an etcd that
    // accepts connections and never answers: each call gives up at its deadline, the daemon
    // starts on its file, runs the jobs without an election after a lease TTL, and every run
    // ends (its status write times out instead of holding the run)
    let tmp = tempfile::tempdir().unwrap();
    let hole = BlackHole::start();
    let store = tmp.path().join("store");
    write(&store.join("a.txt"), b"etcd is a black hole");
    let port = free_port();
    let config = write_config(
        tmp.path(),
        "daemon",
        &format!(
            "[etcd]\nendpoints = [\"{}\"]\napi = \"v2\"\n[destination]\nurl = \"{}\"\n\
             [volume]\npath = \"{}\"\n[schedule]\nvolume = \"*/2 * * * * *\"\ngateway = \"off\"\n\
             database = \"off\"\netcd = \"off\"\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n\
             [retention]\nkeep-last = 1000\n[timeouts]\nconnect = \"1s\"\nrequest = \"2s\"\n",
            hole.url(),
            file_url(&tmp.path().join("backups")),
            store.display()
        ),
    );
    let daemon = Daemon::start(&config, &tmp.path().join("daemon.log"), &[]);
    assert!(
        wait_until(90_000, || runs(port, "volume", "success") >= 2.0),
        "{}",
        daemon.log()
    );
    assert!(
        daemon.wait_log(1, &["without an election"]),
        "{}",
        daemon.log()
    );
    assert_eq!(daemon.terminate(), Some(0));
}
