//! The daemon when etcd is down at start: it runs on a complete file configuration (without an
//! election, once etcd has not answered for a leader TTL) and says so; with a configuration
//! that is not usable on its own it waits and says what is missing. Without etcd at all it
//! runs the jobs and idles between runs; `/metrics` shows the runs.

mod etcd_support;
mod support;

use etcd_support::{complete_sets, Daemon};
use std::path::Path;
use support::{file_url, sample, scrape, write};

/// A loopback port on which nothing listens: bound, then released.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn dead_endpoint() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

fn config(dir: &Path, destination_url: &str, metrics_port: u16) -> std::path::PathBuf {
    write(&dir.join("store/data.txt"), b"etcd is down");
    let path = dir.join("daemon.toml");
    std::fs::write(
        &path,
        format!(
            "[etcd]\nendpoints = [\"{}\"]\napi = \"v2\"\n[destination]\nurl = \"{destination_url}\"\n\
             [volume]\npath = \"{}\"\n[schedule]\nvolume = \"*/1 * * * * *\"\ngateway = \"\"\n\
             database = \"\"\netcd = \"\"\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            dead_endpoint(),
            dir.join("store").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn etcd_down_at_start_runs_on_a_complete_file_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backups");
    let port = free_port();
    let config = config(tmp.path(), &file_url(&dest), port);
    let daemon = Daemon::start(&config, &tmp.path().join("daemon.log"), &[]);
    assert!(
        daemon.wait_log(20_000, &["etcd is unreachable at start"]),
        "{}",
        daemon.log()
    );
    // no leader can be known without etcd: after one leader TTL the daemon runs the jobs
    assert!(
        support::wait_until(40_000, || complete_sets(&dest, "volume") >= 1),
        "no backup ran on the file configuration:\n{}",
        daemon.log()
    );
    assert!(
        daemon.wait_log(1, &["running the job without an election"]),
        "{}",
        daemon.log()
    );
    let success = "deis_backup_runs_total{backup_job=\"volume\",result=\"success\"}";
    assert!(
        support::wait_until(10_000, || sample(&scrape(port), success).unwrap_or(0.0)
            >= 1.0),
        "{}",
        scrape(port)
    );
    let page = scrape(port);
    for series in [
        "deis_backup_bytes_written_total{backup_job=\"volume\"}",
        "deis_backup_artifact_bytes{backup_job=\"volume\"}",
        "deis_backup_last_success_timestamp_seconds{backup_job=\"volume\"}",
        "deis_backup_schedule_expected_interval_seconds{backup_job=\"volume\"}",
    ] {
        assert!(
            sample(&page, series).unwrap_or(0.0) > 0.0,
            "{series}:\n{page}"
        );
    }
    assert_eq!(daemon.terminate(), Some(0));
}

#[test]
fn etcd_down_at_start_with_an_unusable_configuration_waits_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), "ftp://nowhere", free_port());
    let mut daemon = Daemon::start(&config, &tmp.path().join("daemon.log"), &[]);
    assert!(
        daemon.wait_log(20_000, &["not usable on its own", "destination.url"]),
        "{}",
        daemon.log()
    );
    assert!(
        daemon.wait_log(1, &["waiting"]) && daemon.child_is_running(),
        "the daemon must wait, not exit:\n{}",
        daemon.log()
    );
}

#[test]
fn without_etcd_the_daemon_runs_the_jobs_and_stays_idle_between_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backups");
    write(&tmp.path().join("store/data.txt"), b"no etcd at all");
    let path = tmp.path().join("daemon.toml");
    std::fs::write(
        &path,
        format!(
            "[destination]\nurl = \"{}\"\n[volume]\npath = \"{}\"\n[schedule]\n\
             volume = \"*/1 * * * * *\"\ngateway = \"\"\ndatabase = \"\"\netcd = \"\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n[retention]\nkeep-last = 1000\n",
            file_url(&dest),
            tmp.path().join("store").display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&path, &tmp.path().join("daemon.log"), &[]);
    assert!(
        support::wait_until(30_000, || complete_sets(&dest, "volume") >= 3),
        "{}",
        daemon.log()
    );
    // a few tiny runs a second cost little CPU; a busy loop would burn a whole core
    let cpu_ticks = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    };
    let before = cpu_ticks(daemon.child.id());
    let wall = std::time::Instant::now();
    let _ = support::wait_until(3_000, || false);
    let used = (cpu_ticks(daemon.child.id()) - before) as f64 / 100.0;
    let share = used / wall.elapsed().as_secs_f64();
    assert!(
        share < 0.5,
        "the daemon used {share:.2} of a core while idle"
    );
    assert_eq!(daemon.terminate(), Some(0));
}
