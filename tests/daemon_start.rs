//! The daemon when etcd is down at start: it runs on a complete file configuration and says
//! so; with a configuration that is not usable on its own it waits and says what is missing.

mod etcd_support;
mod support;

use etcd_support::{complete_sets, Daemon};
use std::path::Path;
use support::{file_url, write};

/// A port on which nothing listens: bound, then released.
fn dead_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

fn config(dir: &Path, destination_url: &str) -> std::path::PathBuf {
    write(&dir.join("store/data.txt"), b"etcd is down");
    let path = dir.join("daemon.toml");
    std::fs::write(
        &path,
        format!(
            "[etcd]\nendpoints = [\"{}\"]\napi = \"v2\"\n[destination]\nurl = \"{destination_url}\"\n\
             [volume]\npath = \"{}\"\n[schedule]\nvolume = \"*/1 * * * * *\"\ngateway = \"\"\n\
             database = \"\"\netcd = \"\"\n[metrics]\nlisten = \"127.0.0.1:0\"\n",
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
    let config = config(tmp.path(), &file_url(&dest));
    let daemon = Daemon::start(&config, &tmp.path().join("daemon.log"), &[]);
    assert!(
        daemon.wait_log(20_000, &["etcd is unreachable at start"]),
        "{}",
        daemon.log()
    );
    assert!(
        support::wait_until(30_000, || complete_sets(&dest, "volume") >= 1),
        "no backup ran on the file configuration:\n{}",
        daemon.log()
    );
    assert_eq!(daemon.terminate(), Some(0));
}

#[test]
fn etcd_down_at_start_with_an_unusable_configuration_waits_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let config = config(tmp.path(), "ftp://nowhere");
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
