//! Two daemons on one etcd elect one leader: only the leader runs jobs; when it dies (kill -9)
//! the other takes over once the leader key expires; a leader stopped with SIGTERM hands over
//! at once. Over both etcd APIs. Needs the test bed's etcd (`bash tests/run.sh`).

mod etcd_support;
mod support;

use deis_backup::daemon::leader::LEADER_TTL_SECS;
use etcd_support::{complete_sets, endpoint, unique_prefix, Daemon};
use std::path::Path;
use support::{file_url, wait_until, write};

/// A daemon's configuration: the volume job every second into `dest`, etcd at `prefix`.
fn config(dir: &Path, name: &str, api: &str, prefix: &str) -> std::path::PathBuf {
    write(&dir.join("store/data.txt"), b"leader test");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[etcd]\nendpoints = [\"{}\"]\napi = \"{api}\"\nprefix = \"{prefix}\"\n\
             [destination]\nurl = \"{}\"\n[volume]\npath = \"{}\"\n\
             [schedule]\nvolume = \"*/1 * * * * *\"\ngateway = \"\"\ndatabase = \"\"\netcd = \"\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n[retention]\nkeep-last = 1000\n",
            endpoint(),
            file_url(&dir.join(name)),
            dir.join("store").display()
        ),
    )
    .unwrap();
    path
}

fn one_leader_at_a_time(api: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix(&format!("leader-{api}"));
    let start = |name: &str| {
        Daemon::start(
            &config(tmp.path(), name, api, &prefix),
            &tmp.path().join(format!("{name}.log")),
            &[],
        )
    };
    let sets = |name: &str| complete_sets(&tmp.path().join(name), "volume");
    let a = start("a");
    assert!(
        wait_until(30_000, || sets("a") >= 2),
        "the first daemon never led:\n{}",
        a.log()
    );
    let mut b = start("b");
    assert!(
        b.wait_log(15_000, &["does not own the job"]),
        "the second daemon did not wait:\n{}",
        b.log()
    );
    let before = sets("a");
    assert!(
        wait_until(30_000, || sets("a") >= before + 2),
        "{}",
        a.log()
    );
    assert_eq!(sets("b"), 0, "only the leader runs jobs:\n{}", b.log());

    // the leader dies without a word: the other takes over once the key expires
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let takeover = (LEADER_TTL_SECS as u64 + 20) * 1000;
    assert!(
        wait_until(takeover, || sets("b") >= 1),
        "no takeover after the leader died:\n{}",
        b.log()
    );
    assert!(b.wait_log(1, &["This daemon owns the job"]), "{}", b.log());

    // a leader stopped with SIGTERM gives the key up: a new daemon leads at once
    let c = start("c");
    assert!(c.wait_log(15_000, &["does not own the job"]), "{}", c.log());
    assert!(b.child_is_running());
    assert_eq!(b.terminate(), Some(0));
    assert!(
        wait_until(((LEADER_TTL_SECS / 3) as u64 + 8) * 1000, || sets("c") >= 1),
        "the released key was not taken at once:\n{}",
        c.log()
    );
    assert_eq!(c.terminate(), Some(0));
}

#[test]
fn one_leader_at_a_time_over_v2() {
    one_leader_at_a_time("v2");
}

#[test]
fn one_leader_at_a_time_over_v3() {
    one_leader_at_a_time("v3");
}
