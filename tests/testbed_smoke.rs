//! Smoke tests for the test bed itself: each real service that the integration tests
//! lean on (etcd with its v2 and v3 APIs, Ceph radosgw with the gateway and destination
//! users, the CephFS mount, the deis-database container) answers the way the product expects.
//!
//! They read the `TESTBED_*` variables written by `tests/testbed/up.sh`; run them through
//! `bash tests/run.sh`, which brings the test bed up and exports those variables.

use aws_sdk_s3::primitives::ByteStream;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::Docker;

mod support;

use support::{s3_client, testbed, unique};

#[tokio::test]
async fn etcd_v2_keys_api_puts_and_gets() {
    let endpoint = testbed("TESTBED_ETCD_ENDPOINT");
    let url = format!("{endpoint}/v2/keys/{}", unique("smoke/v2"));
    let http = reqwest::Client::new();

    let put = http
        .put(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("value=hello-v2")
        .send()
        .await
        .expect("PUT to the etcd v2 keys API");
    assert!(
        put.status().is_success(),
        "v2 PUT answered {}",
        put.status()
    );

    let got: serde_json::Value = http
        .get(&url)
        .send()
        .await
        .expect("GET from the etcd v2 keys API")
        .error_for_status()
        .expect("v2 GET status")
        .json()
        .await
        .expect("v2 GET body is JSON");
    assert_eq!(got["node"]["value"], "hello-v2", "v2 answer: {got}");
}

#[tokio::test]
async fn etcd_v3_api_puts_and_gets() {
    let endpoint = testbed("TESTBED_ETCD_ENDPOINT");
    let mut client = etcd_client::Client::connect([endpoint.as_str()], None)
        .await
        .expect("connect to etcd v3");
    let key = unique("/smoke/v3");

    client
        .put(key.as_str(), "hello-v3", None)
        .await
        .expect("v3 put");
    let got = client.get(key.as_str(), None).await.expect("v3 get");
    let kv = got.kvs().first().expect("the key just written");
    assert_eq!(kv.value(), b"hello-v3");
}

#[test]
fn etcd_binary_for_extra_clusters_exists() {
    let bin = testbed("TESTBED_ETCD_BIN");
    assert!(
        std::path::Path::new(&bin).is_file(),
        "TESTBED_ETCD_BIN={bin} is not a file"
    );
}

#[tokio::test]
async fn gateway_user_puts_gets_and_lists_in_db_wal() {
    let s3 = s3_client("TESTBED_GATEWAY_ACCESS_KEY", "TESTBED_GATEWAY_SECRET_KEY");
    let key = unique("smoke/object");
    let body = b"write-ahead log segment".to_vec();

    s3.put_object()
        .bucket("db_wal")
        .key(&key)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("PutObject into db_wal");

    let got = s3
        .get_object()
        .bucket("db_wal")
        .key(&key)
        .send()
        .await
        .expect("GetObject from db_wal")
        .body
        .collect()
        .await
        .expect("read the object body")
        .into_bytes();
    assert_eq!(got.as_ref(), body.as_slice());

    let listed = s3
        .list_objects_v2()
        .bucket("db_wal")
        .prefix(&key)
        .send()
        .await
        .expect("ListObjectsV2 on db_wal");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, [key.as_str()]);

    s3.delete_object()
        .bucket("db_wal")
        .key(&key)
        .send()
        .await
        .expect("DeleteObject in db_wal");
}

#[tokio::test]
async fn gateway_user_owns_both_deis_buckets() {
    let s3 = s3_client("TESTBED_GATEWAY_ACCESS_KEY", "TESTBED_GATEWAY_SECRET_KEY");
    let buckets = s3
        .list_buckets()
        .send()
        .await
        .expect("ListBuckets (gateway)");
    let mut names: Vec<_> = buckets.buckets().iter().filter_map(|b| b.name()).collect();
    names.sort_unstable();
    assert_eq!(names, ["db_wal", "registry"]);
}

#[tokio::test]
async fn destination_user_lists_its_bucket_only() {
    let bucket = testbed("TESTBED_DEST_BUCKET");
    let s3 = s3_client("TESTBED_DEST_ACCESS_KEY", "TESTBED_DEST_SECRET_KEY");
    s3.list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("ListObjectsV2 on the destination bucket");

    let foreign = s3.list_objects_v2().bucket("db_wal").send().await;
    assert!(
        foreign.is_err(),
        "the destination user must not read the gateway's bucket db_wal"
    );
}

#[tokio::test]
async fn database_container_answers_pg_dumpall() {
    let container = testbed("TESTBED_DB_CONTAINER");
    assert!(!testbed("TESTBED_DB_IMAGE").is_empty());
    // Debian 12's engine (20.10) speaks an older API than bollard's default: negotiate.
    let docker = Docker::connect_with_unix_defaults()
        .expect("Docker socket")
        .negotiate_version()
        .await
        .expect("negotiate the Docker API version");

    let exec = docker
        .create_exec(
            &container,
            CreateExecOptions {
                cmd: Some(vec!["sudo", "-u", "postgres", "pg_dumpall"]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("create the pg_dumpall exec");
    let StartExecResults::Attached { mut output, .. } = docker
        .start_exec(&exec.id, None)
        .await
        .expect("start pg_dumpall")
    else {
        panic!("exec started detached");
    };

    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    while let Some(chunk) = std::future::poll_fn(|cx| output.as_mut().poll_next(cx)).await {
        match chunk.expect("read the exec output") {
            LogOutput::StdOut { message } => stdout.extend_from_slice(&message),
            LogOutput::StdErr { message } => stderr.extend_from_slice(&message),
            _ => {}
        }
    }
    let inspected = docker.inspect_exec(&exec.id).await.expect("inspect exec");
    let stderr = String::from_utf8_lossy(&stderr);
    assert_eq!(inspected.exit_code, Some(0), "pg_dumpall failed: {stderr}");
    let dump = String::from_utf8_lossy(&stdout);
    assert!(
        dump.contains("-- PostgreSQL database cluster dump complete"),
        "dump lacks its completion line; stderr: {stderr}"
    );
}

#[test]
fn cephfs_is_mounted_with_ceph_fuse_and_takes_owners() {
    use std::os::unix::fs::MetadataExt;
    let mount = testbed("TESTBED_CEPHFS_MOUNT");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    // fields: id parent dev root MOUNT_POINT options ... - FSTYPE SOURCE ...
    let fstype = mountinfo
        .lines()
        .find(|line| line.split(' ').nth(4) == Some(mount.as_str()))
        .and_then(|line| line.split(" - ").nth(1))
        .and_then(|tail| tail.split(' ').next())
        .unwrap_or_else(|| panic!("{mount} is not a mount point:\n{mountinfo}"));
    assert!(
        fstype == "fuse.ceph-fuse" || fstype == "ceph",
        "{mount} is {fstype}, not CephFS"
    );

    let file = std::path::Path::new(&mount).join(unique("smoke"));
    std::fs::write(&file, b"on cephfs").expect("write on the CephFS mount");
    std::os::unix::fs::chown(&file, Some(4242), Some(4343)).expect("root chowns on CephFS");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    assert_eq!(std::fs::read(&file).unwrap(), b"on cephfs");
    std::fs::remove_file(&file).unwrap();
}
