//! The `status/<job>` key: every run writes its result to etcd (both APIs), and
//! `deis-backup status` reads it back; a failed run's error is there, in one line.

mod etcd_support;
mod support;

use etcd_support::{endpoint, unique_prefix};
use std::path::Path;
use support::{file_url, run, write};

fn config(dir: &Path, api: &str, prefix: &str, volume: &Path) -> String {
    let path = dir.join(format!("{api}.toml"));
    std::fs::write(
        &path,
        format!(
            "[etcd]\nendpoints = [\"{}\"]\napi = \"{api}\"\nprefix = \"{prefix}\"\n\
             [destination]\nurl = \"{}\"\n[volume]\npath = \"{}\"\n",
            endpoint(),
            file_url(&dir.join("backups")),
            volume.display()
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

fn status_of(config: &str) -> serde_json::Value {
    let out = run(&["status", "--json", "--config", config]);
    out.assert_ok();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.all()))
}

fn status_key_round_trip(api: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix(&format!("status-{api}"));
    let store = tmp.path().join("store");
    write(&store.join("a.txt"), b"status");
    let good = config(tmp.path(), api, &prefix, &store);
    assert!(status_of(&good)["volume"].is_null(), "no run yet");

    let out = run(&["backup", "volume", "--config", &good]);
    out.assert_ok();
    let status = status_of(&good);
    let volume = &status["volume"];
    assert_eq!(volume["result"], "success", "{status}");
    assert!(
        out.stdout.contains(volume["run_id"].as_str().unwrap()),
        "{status}\n{}",
        out.all()
    );
    assert!(volume["bytes_written"].as_u64().unwrap() > 0);
    assert!(status["database"].is_null());

    let missing = tmp.path().join("no-such-store");
    let bad = config(tmp.path(), api, &prefix, &missing);
    assert_eq!(run(&["backup", "volume", "--config", &bad]).code, 1);
    let volume = &status_of(&bad)["volume"];
    assert_eq!(volume["result"], "failure");
    let error = volume["error"].as_str().unwrap();
    assert!(
        error.contains("no-such-store") && !error.contains('\n'),
        "{error}"
    );

    let text = run(&["status", "--config", &bad]);
    text.assert_ok();
    assert!(text.stdout.contains("volume    failure"), "{}", text.all());
}

#[test]
fn every_run_writes_its_status_key_over_v2() {
    status_key_round_trip("v2");
}

#[test]
fn every_run_writes_its_status_key_over_v3() {
    status_key_round_trip("v3");
}

#[test]
fn status_without_etcd_says_where_the_keys_live_and_exits_2() {
    let out = run(&["status", "--destination", "file:///tmp/nowhere"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("live in etcd"), "{}", out.all());
}
