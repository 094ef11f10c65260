//! kill -9 of the daemon in the middle of a gateway run into an S3 destination, then a
//! restart of the daemon alone (its jobs disabled): the restart leaves no incomplete set, no
//! staged object, no open multipart upload and no writer marker. Needs the test bed's radosgw
//! (`bash tests/run.sh`).

mod etcd_support;
mod support;

use etcd_support::Daemon;
use std::path::Path;
use support::{keys_under, open_uploads, random_bytes, testbed, unique, wait_until, GatewayBucket};

/// What an interrupted run leaves: markers, staged objects, set folders without a manifest,
/// open uploads.
fn leftovers(bucket: &str, prefix: &str) -> Vec<String> {
    let keys = keys_under(bucket, prefix);
    let mut left: Vec<String> = keys
        .iter()
        .filter(|k| k.ends_with(".in-progress") || k.contains("/.staging/"))
        .cloned()
        .collect();
    for key in keys
        .iter()
        .filter(|k| k.starts_with(&format!("{prefix}/gateway/2")))
    {
        let folder = &key[..key.rfind('/').unwrap()];
        if !keys.contains(&format!("{folder}/manifest.json")) {
            left.push(key.clone());
        }
    }
    left.extend(
        open_uploads(bucket, prefix)
            .into_iter()
            .map(|k| format!("upload {k}")),
    );
    left
}

fn config(
    dir: &Path,
    name: &str,
    source: &str,
    prefix: &str,
    schedule: &str,
) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[destination]\nurl = \"s3://{}/{prefix}\"\nendpoint = \"{endpoint}\"\n\
             [gateway]\nendpoint = \"{endpoint}\"\nbuckets = [\"{source}\"]\nconcurrency = 2\n\
             [schedule]\ngateway = \"{schedule}\"\nvolume = \"\"\ndatabase = \"\"\netcd = \"\"\n\
             [metrics]\nlisten = \"127.0.0.1:0\"\n",
            testbed("TESTBED_DEST_BUCKET"),
            endpoint = testbed("TESTBED_S3_ENDPOINT"),
        ),
    )
    .unwrap();
    path
}

/// Credentials go through the environment, as an operator's secrets would.
fn credentials() -> Vec<(String, String)> {
    vec![
        (
            "DEIS_BACKUP_DESTINATION__ACCESS_KEY".into(),
            testbed("TESTBED_DEST_ACCESS_KEY"),
        ),
        (
            "DEIS_BACKUP_DESTINATION__SECRET_KEY".into(),
            testbed("TESTBED_DEST_SECRET_KEY"),
        ),
        (
            "DEIS_BACKUP_GATEWAY__ACCESS_KEY".into(),
            testbed("TESTBED_GATEWAY_ACCESS_KEY"),
        ),
        (
            "DEIS_BACKUP_GATEWAY__SECRET_KEY".into(),
            testbed("TESTBED_GATEWAY_SECRET_KEY"),
        ),
    ]
}

#[test]
fn a_daemon_killed_mid_gateway_run_leaves_nothing_after_its_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let bucket = testbed("TESTBED_DEST_BUCKET");
    let prefix = unique("daemon-kill9");
    // 16 objects of 12 MiB: staged as multipart uploads at the destination
    let objects = (0..16u64).map(|i| (format!("registry/blob-{i}"), random_bytes(i + 7, 12 << 20)));
    let bucket_guard = GatewayBucket::with("kill9src", objects);
    let source = bucket_guard.0.as_str();
    let env = credentials();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let mut daemon = Daemon::start(
        &config(tmp.path(), "running", source, &prefix, "*/1 * * * * *"),
        &tmp.path().join("running.log"),
        &env,
    );
    assert!(
        wait_until(60_000, || {
            keys_under(&bucket, &prefix)
                .iter()
                .any(|k| k.contains("/.staging/"))
                || !open_uploads(&bucket, &prefix).is_empty()
        }),
        "the gateway run never got going:\n{}",
        daemon.log()
    );
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    assert!(
        !leftovers(&bucket, &prefix).is_empty(),
        "kill -9 mid-run leaves something to clean up"
    );

    let restarted = Daemon::start(
        &config(tmp.path(), "restarted", source, &prefix, ""),
        &tmp.path().join("restarted.log"),
        &env,
    );
    assert!(
        wait_until(60_000, || leftovers(&bucket, &prefix).is_empty()),
        "left after the restart: {:?}\n{}",
        leftovers(&bucket, &prefix),
        restarted.log()
    );
    assert_eq!(restarted.terminate(), Some(0));
}
