//! The daemon unattended: a restart shows the newest set's last success on its first scrape;
//! a run past its deadline is cancelled as a failure and the next tick runs; SIGTERM drains
//! within the shutdown grace, then cancels cleanly and exits 0; a daemon killed mid-run
//! leaves nothing that its next start does not clean up. Local destination, no services.

mod etcd_support;
mod support;

use etcd_support::{complete_sets, Daemon};
use std::path::{Path, PathBuf};
use support::{file_url, random_bytes, sample, scrape, set_dirs, wait_until, write};

/// A loopback port on which nothing listens yet.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A store volume of `mib` MiB of incompressible data (seconds to back up in a debug build).
fn big_store(dir: &Path, mib: usize) -> PathBuf {
    let store = dir.join("store");
    for i in 0..mib.div_ceil(8) {
        write(
            &store.join(format!("data-{i}.bin")),
            &random_bytes(i as u64 + 1, 8 << 20),
        );
    }
    store
}

/// A daemon configuration without etcd: the volume job on `schedule`, `extra` TOML appended.
fn config(dir: &Path, store: &Path, schedule: &str, port: u16, extra: &str) -> PathBuf {
    let path = dir.join(format!("daemon-{port}.toml"));
    std::fs::write(
        &path,
        format!(
            "[destination]\nurl = \"{}\"\n[volume]\npath = \"{}\"\n[schedule]\n\
             volume = \"{schedule}\"\ngateway = \"\"\ndatabase = \"\"\netcd = \"\"\n\
             [metrics]\nlisten = \"127.0.0.1:{port}\"\n{extra}",
            file_url(&dir.join("backups")),
            store.display()
        ),
    )
    .unwrap();
    path
}

/// Set folders without a manifest, and `.partial` / lock files anywhere at the destination.
fn leftovers(dest: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = set_dirs(dest, "volume")
        .into_iter()
        .filter(|d| !d.join("manifest.json").exists())
        .collect();
    let mut stack = vec![dest.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".partial") || name.ends_with(".in-progress") {
                found.push(path);
            }
        }
    }
    found
}

fn series(name: &str) -> String {
    format!("{name}{{backup_job=\"volume\"}}")
}

#[test]
fn a_restarted_daemon_shows_the_newest_sets_last_success_on_its_first_scrape() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("small");
    write(&store.join("a.txt"), b"restart me");
    let port = free_port();
    let first = Daemon::start(
        &config(tmp.path(), &store, "*/1 * * * * *", port, ""),
        &tmp.path().join("first.log"),
        &[],
    );
    let dest = tmp.path().join("backups");
    assert!(
        wait_until(20_000, || complete_sets(&dest, "volume") >= 1),
        "{}",
        first.log()
    );
    assert_eq!(first.terminate(), Some(0));
    let newest =
        deis_backup::store::list_complete(&deis_backup::store::LocalDestination::new(&dest), None)
            .unwrap()
            .complete
            .into_iter()
            .max_by_key(|m| m.finished_at)
            .unwrap();

    // the restarted daemon runs nothing (job disabled): its gauges come from the destination
    let port = free_port();
    let second = Daemon::start(
        &config(tmp.path(), &store, "", port, ""),
        &tmp.path().join("second.log"),
        &[],
    );
    let mut page = String::new();
    assert!(
        wait_until(20_000, || {
            page = scrape(port);
            !page.is_empty()
        }),
        "{}",
        second.log()
    );
    assert_eq!(
        sample(&page, &series("deis_backup_last_success_timestamp_seconds")),
        Some(newest.finished_at.timestamp() as f64),
        "first scrape:\n{page}"
    );
    assert_eq!(
        sample(&page, &series("deis_backup_last_run_timestamp_seconds")),
        Some(newest.finished_at.timestamp() as f64)
    );
    assert_eq!(sample(&page, &series("deis_backup_job_owner")), Some(1.0));
    assert_eq!(
        sample(&page, &series("deis_backup_run_deadline_seconds")),
        Some(7200.0)
    );
    assert_eq!(second.terminate(), Some(0));
}

#[test]
fn a_run_past_its_deadline_fails_and_the_next_tick_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = big_store(tmp.path(), 160);
    let port = free_port();
    let daemon = Daemon::start(
        &config(
            tmp.path(),
            &store,
            "*/2 * * * * *",
            port,
            "[deadline]\nvolume = \"1s\"\n",
        ),
        &tmp.path().join("daemon.log"),
        &[],
    );
    let failures = "deis_backup_runs_total{backup_job=\"volume\",result=\"failure\"}";
    assert!(
        wait_until(60_000, || sample(&scrape(port), failures).unwrap_or(0.0)
            >= 2.0),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(
        log.contains("the run passed its deadline of 1s (deadline.volume)"),
        "{log}"
    );
    let skipped = "deis_backup_runs_total{backup_job=\"volume\",result=\"skipped\"}";
    let page = scrape(port);
    assert_eq!(
        sample(&page, skipped),
        Some(0.0),
        "a cancelled run must end:\n{page}"
    );
    let dest = tmp.path().join("backups");
    assert_eq!(complete_sets(&dest, "volume"), 0);
    assert_eq!(daemon.terminate(), Some(0));
    assert_eq!(leftovers(&dest), Vec::<PathBuf>::new());
}

#[test]
fn sigterm_cancels_a_long_run_after_the_grace_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let store = big_store(tmp.path(), 160);
    let port = free_port();
    let daemon = Daemon::start(
        &config(
            tmp.path(),
            &store,
            "*/1 * * * * *",
            port,
            "[daemon]\nshutdown-grace = \"1s\"\n",
        ),
        &tmp.path().join("daemon.log"),
        &[],
    );
    assert!(
        wait_until(30_000, || sample(
            &scrape(port),
            &series("deis_backup_running")
        ) == Some(1.0)),
        "{}",
        daemon.log()
    );
    let log_path = daemon.log.clone();
    let stopped = std::time::Instant::now();
    assert_eq!(daemon.terminate(), Some(0));
    assert!(
        stopped.elapsed().as_secs() < 20,
        "took {:?}",
        stopped.elapsed()
    );
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(
        log.contains("shutdown grace of 1s (daemon.shutdown-grace) passed"),
        "{log}"
    );
    let dest = tmp.path().join("backups");
    assert_eq!(complete_sets(&dest, "volume"), 0, "{log}");
    assert_eq!(leftovers(&dest), Vec::<PathBuf>::new(), "{log}");
}

#[test]
fn a_daemon_killed_mid_run_is_cleaned_up_by_its_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let store = big_store(tmp.path(), 160);
    let port = free_port();
    let mut daemon = Daemon::start(
        &config(tmp.path(), &store, "*/1 * * * * *", port, ""),
        &tmp.path().join("daemon.log"),
        &[],
    );
    let dest = tmp.path().join("backups");
    assert!(
        wait_until(30_000, || !leftovers(&dest).is_empty()),
        "{}",
        daemon.log()
    );
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    assert!(!leftovers(&dest).is_empty(), "kill -9 leaves a set behind");
    assert_eq!(complete_sets(&dest, "volume"), 0);

    // the next start sweeps at once, without any run of the job
    let restarted = Daemon::start(
        &config(tmp.path(), &store, "", free_port(), ""),
        &tmp.path().join("restarted.log"),
        &[],
    );
    assert!(
        wait_until(20_000, || leftovers(&dest).is_empty()),
        "left: {:?}\n{}",
        leftovers(&dest),
        restarted.log()
    );
    assert!(
        restarted.wait_log(5_000, &["Removed an incomplete backup set"]),
        "{}",
        restarted.log()
    );
    assert_eq!(restarted.terminate(), Some(0));
}

#[test]
fn a_volume_that_must_be_a_mount_point_and_is_not_is_never_backed_up() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("small");
    write(&store.join("a.txt"), b"not mounted");
    let port = free_port();
    let daemon = Daemon::start(
        &config(tmp.path(), &store, "*/1 * * * * *", port, ""),
        &tmp.path().join("daemon.log"),
        &[("DEIS_BACKUP_VOLUME__REQUIRE_MOUNT", "true")],
    );
    let skipped = "deis_backup_runs_total{backup_job=\"volume\",result=\"skipped\"}";
    assert!(
        wait_until(20_000, || sample(&scrape(port), skipped).unwrap_or(0.0)
            >= 2.0),
        "{}",
        daemon.log()
    );
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "volume.path {} is not a mount point here",
            store.display()
        )),
        "{log}"
    );
    assert_eq!(complete_sets(&tmp.path().join("backups"), "volume"), 0);
    assert_eq!(daemon.terminate(), Some(0));
}
