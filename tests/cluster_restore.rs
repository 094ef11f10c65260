//! Cluster A -> cluster B, as on the day a cluster is rebuilt: `backup all` on A (its radosgw
//! buckets with WAL-E keys, a store volume with absolute and outward symlinks, the `/deis`
//! keyspace, the database), then a fresh radosgw, etcd and deis-database for B, one
//! `restore latest` without `--only`, and B compared with A. The WAL-E rule both ways: with a
//! base backup in db_wal the dump is not replayed (deis-database restores itself from WAL-E);
//! without one it is, and the two clusters' pg_dumpall match.
//!
//! Needs the test bed (`bash tests/run.sh`): A's gateway and the off-cluster destination are
//! the test bed's radosgw; B's is a second one this test brings up.

mod etcd_support;
mod support;

use deis_backup::config::EtcdApi;
use deis_backup::runtime::block_on;
use etcd_support::{client, OwnEtcd};
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::Path;
use support::cluster::{bucket_digests, tree_facts, OwnGateway};
use support::pg_cluster::{comparable_dump, psql, FreshContainer};
use support::*;

const SENTINEL: &str =
    "basebackups_005/base_000000010000000000000002_00000040_backup_stop_sentinel.json";
const SECRET: &str = "ssh-private-key-of-cluster-a";

/// What the CLI needs to talk to one cluster: its etcd, database container and store volume;
/// the gateway comes from `/deis/store/gateway/*` in its etcd, as in Deis.
struct Cluster<'a> {
    etcd: &'a OwnEtcd,
    database: &'a FreshContainer,
    volume: &'a Path,
    destination: &'a str,
}

impl Cluster<'_> {
    fn run(&self, args: &[&str]) -> Run {
        let mut cmd = cli();
        testbed_s3_destination(&mut cmd, self.destination)
            .args(args)
            .args(["--etcd", &self.etcd.url(), "--etcd-api", "v2"])
            .env("DEIS_BACKUP_DESTINATION__REGION", "us-east-1")
            .env("DEIS_BACKUP_DATABASE__CONTAINER", &self.database.name)
            .env("DEIS_BACKUP_VOLUME__PATH", self.volume)
            .output()
            .unwrap()
            .into()
    }
}

/// Publishes a gateway's address and keys as a Deis store does.
fn publish_gateway(etcd: &OwnEtcd, endpoint: &str, access: &str, secret: &str) {
    let (host, port) = endpoint
        .trim_start_matches("http://")
        .split_once(':')
        .unwrap();
    etcd_support::put(
        &client(&etcd.url(), EtcdApi::V2),
        &[
            ("/deis/store/gateway/host", host),
            ("/deis/store/gateway/port", port),
            ("/deis/store/gateway/accessKey", access),
            ("/deis/store/gateway/secretKey", secret),
        ],
    );
}

/// A store volume with what Deis keeps there: logs that grow, folders with their own owners
/// and modes, a hard link, and symlinks inside, absolute, outward and dangling.
fn make_volume(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    write(
        &root.join("logs/deis-router.log"),
        b"GET / 200\n".repeat(500).as_slice(),
    );
    write(&root.join("logs/app/web.1.log"), &random_bytes(7, 300_000));
    write(&root.join("registry/config.yml"), b"storage: s3\n");
    std::fs::hard_link(
        root.join("registry/config.yml"),
        root.join("registry/config.yml.bak"),
    )
    .unwrap();
    symlink("/etc/passwd", root.join("passwd")).unwrap();
    symlink("../../outside/of/the/store", root.join("logs/outward")).unwrap();
    symlink("app/web.1.log", root.join("logs/current")).unwrap();
    symlink("nowhere", root.join("dangling")).unwrap();
    std::os::unix::fs::chown(root.join("logs/app"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::lchown(root.join("passwd"), Some(1234), Some(5678)).unwrap();
    std::fs::set_permissions(
        root.join("registry"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("registry/config.yml"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
}

/// The job prefixes of the lines a restore printed, in order, each once.
fn job_order(stdout: &str) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for line in stdout.lines() {
        let Some((job, _)) = line.split_once('/') else {
            continue;
        };
        if ["gateway", "volume", "etcd", "database"].contains(&job)
            && order.last().map(String::as_str) != Some(job)
        {
            order.push(job.to_string());
        }
    }
    order
}

/// Cluster A's `/deis` keys and values as B should have them after a restore (what a new
/// cluster makes itself, and the status keys of A's backups, are skipped).
fn restorable_keys(etcd: &OwnEtcd) -> BTreeMap<String, Vec<u8>> {
    let listing = block_on(client(&etcd.url(), EtcdApi::V2).get_prefix("/deis")).unwrap();
    listing
        .nodes
        .into_iter()
        .filter(|n| !n.dir && n.ttl.is_none())
        .filter(|n| {
            ![
                "/deis/store/",
                "/deis/services/",
                "/deis/platform/domain",
                "/deis/backup/status/",
            ]
            .iter()
            .any(|p| n.key.starts_with(p))
        })
        .map(|n| (n.key, n.value))
        .collect()
}

#[test]
fn a_new_cluster_is_restored_in_one_command_and_matches_the_old_one() {
    let tmp = tempfile::tempdir().unwrap();
    for dir in ["etcd-a", "etcd-b"] {
        std::fs::create_dir(tmp.path().join(dir)).unwrap();
    }
    let destination = format!(
        "s3://{}/{}",
        testbed("TESTBED_DEST_BUCKET"),
        unique("cluster-a")
    );

    // cluster A: the test bed's radosgw with its Deis buckets, an etcd, a database, a volume
    let wal = GatewayBucket::with(
        "db_wal",
        [
            (SENTINEL.to_string(), b"{\"wal_segment_backup_stop\": \"x\"}".to_vec()),
            (
                "basebackups_005/base_000000010000000000000002_00000040/tar_partitions/part_00000000.tar.lzo"
                    .to_string(),
                random_bytes(1, 200_000),
            ),
            (
                "wal_005/000000010000000000000003.lzo".to_string(),
                random_bytes(2, 70_000),
            ),
        ],
    );
    let registry = GatewayBucket::with(
        "registry",
        [
            (
                "docker/registry/v2/blobs/sha256/ab/abcd/data".to_string(),
                random_bytes(3, 6 << 20),
            ),
            (
                "docker/registry/v2/repositories/app1/_manifests/tags/v1/current/link".to_string(),
                b"sha256:abcd".to_vec(),
            ),
        ],
    );
    let etcd_a = OwnEtcd::start(&tmp.path().join("etcd-a"));
    publish_gateway(
        &etcd_a,
        &testbed("TESTBED_S3_ENDPOINT"),
        &testbed("TESTBED_GATEWAY_ACCESS_KEY"),
        &testbed("TESTBED_GATEWAY_SECRET_KEY"),
    );
    etcd_support::put(
        &client(&etcd_a.url(), EtcdApi::V2),
        &[
            ("/deis/database/bucketName", &wal.0),
            ("/deis/registry/bucketName", &registry.0),
            ("/deis/platform/domain", "a.example.com"),
            ("/deis/platform/sshPrivateKey", SECRET),
            ("/deis/controller/registrationMode", "admin_only"),
            ("/deis/builder/users/alice/alice-key", "ssh-rsa AAAA alice"),
            ("/deis/domains/app1.example.com", "app1"),
            ("/deis/services/app1/app1_v2.web.1", "10.0.0.5:32768"),
        ],
    );
    let db_a = FreshContainer::start_deis("password-of-a");
    psql(
        &db_a.name,
        "deis",
        "SET ROLE deis;
         CREATE TABLE api_app (id text PRIMARY KEY, structure jsonb NOT NULL);
         INSERT INTO api_app VALUES ('app1', '{\"web\": 2}'), ('app2', '{}');
         CREATE TABLE api_key (owner text, fingerprint text, public text);
         INSERT INTO api_key VALUES ('alice', 'aa:bb', 'ssh-rsa AAAA alice');",
    );
    let volume_a = tmp.path().join("a/store");
    make_volume(&volume_a);
    let a = Cluster {
        etcd: &etcd_a,
        database: &db_a,
        volume: &volume_a,
        destination: &destination,
    };
    let backup = a.run(&["backup", "all"]);
    backup.assert_ok();

    // cluster B: a fresh radosgw (its store publishes its own keys), etcd and deis-database
    let gateway_b = OwnGateway::start(&tmp.path().join("rgw-b"));
    let etcd_b = OwnEtcd::start(&tmp.path().join("etcd-b"));
    publish_gateway(
        &etcd_b,
        gateway_b.var("TESTBED_S3_ENDPOINT"),
        gateway_b.var("TESTBED_GATEWAY_ACCESS_KEY"),
        gateway_b.var("TESTBED_GATEWAY_SECRET_KEY"),
    );
    let db_b = FreshContainer::start_deis("password-of-b");
    let db_b_fresh = comparable_dump(&db_b.name);
    let volume_b = tmp.path().join("b/store");
    let b = Cluster {
        etcd: &etcd_b,
        database: &db_b,
        volume: &volume_b,
        destination: &destination,
    };

    // the plan first: every job in bring-up order, the database left to WAL-E
    let plan = b.run(&["restore", "latest", "--dry-run"]);
    plan.assert_ok();
    assert_eq!(
        job_order(&plan.stdout),
        ["gateway", "volume", "etcd", "database"]
    );
    assert!(
        plan.stdout
            .contains("skipped: db_wal holds 1 WAL-E base backup(s)"),
        "{}",
        plan.all()
    );
    assert!(!volume_b.exists(), "a dry run writes nothing");

    // one command restores what the plan said, in that order
    let restore = b.run(&["restore", "latest"]);
    restore.assert_ok();
    assert_eq!(
        job_order(&restore.stdout),
        ["gateway", "volume", "etcd", "database"]
    );
    assert!(restore.stdout.contains("Next steps"), "{}", restore.all());
    for out in [&backup, &plan, &restore] {
        assert!(
            !out.all().contains(SECRET),
            "a secret leaked:\n{}",
            out.all()
        );
    }

    // B matches A: objects by digest, content type and metadata
    let client_a = s3_client("TESTBED_GATEWAY_ACCESS_KEY", "TESTBED_GATEWAY_SECRET_KEY");
    for bucket in [&wal.0, &registry.0] {
        let (in_a, in_b) = (
            bucket_digests(&client_a, bucket),
            bucket_digests(&gateway_b.client(), bucket),
        );
        assert!(!in_a.is_empty());
        assert!(
            in_a == in_b,
            "bucket {bucket} differs:\nA {in_a:?}\nB {in_b:?}"
        );
    }
    // the volume, byte for byte, with every symlink as it was, owners and modes
    let diff = std::process::Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(&volume_a)
        .arg(&volume_b)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    assert_eq!(tree_facts(&volume_a), tree_facts(&volume_b));
    // the keys, except what the new cluster makes itself
    let keys_b = block_on(client(&etcd_b.url(), EtcdApi::V2).get_prefix("/deis")).unwrap();
    let value_b = |key: &str| {
        keys_b
            .nodes
            .iter()
            .find(|n| n.key == key)
            .map(|n| n.value.clone())
    };
    for (key, value) in restorable_keys(&etcd_a) {
        assert_eq!(value_b(&key), Some(value), "{key}");
    }
    assert_eq!(value_b("/deis/platform/domain"), None);
    assert_eq!(
        value_b("/deis/store/gateway/port").unwrap(),
        gateway_b
            .var("TESTBED_S3_ENDPOINT")
            .rsplit(':')
            .next()
            .unwrap()
            .as_bytes(),
        "B's own gateway keys stay"
    );
    // the database was left to WAL-E: B's cluster is as it started
    assert_eq!(comparable_dump(&db_b.name), db_b_fresh);

    // without a WAL-E base backup in db_wal the dump is replayed, into the empty database
    // that deis-database made at its first boot
    block_on(client_a.delete_object().bucket(&wal.0).key(SENTINEL).send()).unwrap();
    a.run(&["backup", "all"]).assert_ok();
    let volume_b2 = tmp.path().join("b2/store");
    let b2 = Cluster {
        volume: &volume_b2,
        ..b
    };
    let plan = b2.run(&["restore", "latest", "--dry-run"]);
    plan.assert_ok();
    assert!(!plan.stdout.contains("WAL-E base backup"), "{}", plan.all());
    let restore = b2.run(&["restore", "latest"]);
    restore.assert_ok();
    assert_eq!(
        job_order(&restore.stdout),
        ["gateway", "volume", "etcd", "database"]
    );
    assert!(
        restore.stdout.contains("identical"),
        "the second restore leaves what is there: {}",
        restore.all()
    );
    assert_eq!(comparable_dump(&db_b.name), comparable_dump(&db_a.name));
    assert_eq!(tree_facts(&volume_a), tree_facts(&volume_b2));

    // B now lives: an object and a key changed there, its volume and database hold data.
    // Without --force every step refuses; --force=etcd lets only etcd write.
    let link = "docker/registry/v2/repositories/app1/_manifests/tags/v1/current/link";
    block_on(
        gateway_b
            .client()
            .put_object()
            .bucket(&registry.0)
            .key(link)
            .body(b"sha256:newer".to_vec().into())
            .send(),
    )
    .unwrap();
    let mode = "/deis/controller/registrationMode";
    etcd_support::put(&client(&etcd_b.url(), EtcdApi::V2), &[(mode, "disabled")]);
    let objects_before = bucket_digests(&gateway_b.client(), &registry.0);
    let (volume_before, dump_before) = (tree_facts(&volume_b2), comparable_dump(&db_b.name));
    let dry = b2.run(&["restore", "latest", "--only", "volume", "--dry-run"]);
    assert_eq!(dry.code, 1, "{}", dry.all());
    assert!(
        dry.stdout.contains("8 of them already at the target"),
        "{}",
        dry.all()
    );
    let refused = b2.run(&["restore", "latest"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains(link)
            && refused.stderr.contains(mode)
            && refused.stderr.contains("not empty")
            && refused
                .stderr
                .contains("refused for gateway, volume, etcd, database"),
        "{}",
        refused.all()
    );
    let forced = b2.run(&["restore", "latest", "--force=etcd"]);
    assert_eq!(forced.code, 1, "{}", forced.all());
    assert!(
        forced
            .stderr
            .contains("refused for gateway, volume, database"),
        "{}",
        forced.all()
    );
    let keys_b = block_on(client(&etcd_b.url(), EtcdApi::V2).get_prefix(mode)).unwrap();
    assert_eq!(keys_b.nodes[0].value, b"admin_only", "etcd was forced");
    assert_eq!(
        bucket_digests(&gateway_b.client(), &registry.0),
        objects_before
    );
    assert_eq!(tree_facts(&volume_b2), volume_before);
    assert_eq!(comparable_dump(&db_b.name), dump_before);
}
