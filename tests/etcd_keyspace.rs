//! The `etcd` job and its restore: the keyspace exported through either API into
//! `etcd.json.zst`, restored into a fresh etcd with ephemeral and cluster-made keys skipped,
//! and no value (secrets included) in any output. Needs the test bed (`bash tests/run.sh`).

mod etcd_support;
mod support;

use deis_backup::config::EtcdApi;
use deis_backup::runtime::block_on;
use etcd_support::*;
use support::*;

const SECRET: &str = "keyspace-secret-5d4c3b2a";

fn round_trip(api: EtcdApi, flag: &str) {
    let url = endpoint();
    let prefix = unique_prefix(&format!("keys-{flag}"));
    let c = client(&url, api);
    let k = |rel: &str| format!("{prefix}/{rel}");
    put(
        &c,
        &[
            (&k("controller/registrationMode"), "admin_only"),
            (&k("platform/sshPrivateKey"), SECRET),
            (&k("platform/domain"), "old.example.com"),
            (&k("database/initId"), "abc"),
            (&k("database/bucketName"), "db_wal"),
            (&k("services/app/web.1"), "10.0.0.1:5000"),
            (&k("store/gateway/secretKey"), SECRET),
            (&k("backup/schedule/volume"), "0 3 * * *"),
        ],
    );
    block_on(c.put(&k("router/hosts/a"), b"1.2.3.4", Some(300))).unwrap();

    let tmp = tempfile::tempdir().unwrap();
    let dest = file_url(&tmp.path().join("backups"));
    let backup = Run::from(
        cli()
            .args([
                "backup",
                "etcd",
                "--destination",
                &dest,
                "--etcd",
                &url,
                "--etcd-api",
                flag,
            ])
            .env("DEIS_BACKUP_ETCD__PREFIX", &prefix)
            .output()
            .unwrap(),
    );
    backup.assert_ok();
    assert_eq!(complete_sets(&tmp.path().join("backups"), "etcd"), 1);
    let verify = run(&["verify", "latest", "--job", "etcd", "--destination", &dest]);
    verify.assert_ok();

    let own_dir = tempfile::tempdir().unwrap();
    let fresh = OwnEtcd::start(own_dir.path());
    let restore_args = |dry: bool| {
        let mut args = vec![
            "restore",
            "latest",
            "--only",
            "etcd",
            "--destination",
            &dest,
            "--etcd-api",
            flag,
        ];
        if dry {
            args.push("--dry-run");
        }
        args
    };
    let target = fresh.url();
    let restore_into = |dry: bool, extra: &[&str]| -> Run {
        Run::from(
            cli()
                .args(restore_args(dry))
                .args(["--etcd-target", &target])
                .args(extra)
                .output()
                .unwrap(),
        )
    };
    let dry = restore_into(true, &[]);
    dry.assert_ok();
    assert!(
        dry.stdout
            .contains(&format!("would write {}", k("controller/registrationMode"))),
        "{}",
        dry.stdout
    );
    for skipped in [
        "router/hosts/a",
        "services/app/web.1",
        "store/gateway/secretKey",
        "database/initId",
        "platform/domain",
    ] {
        assert!(
            dry.stdout.contains(&format!("skip {}", k(skipped))),
            "{skipped}: {}",
            dry.stdout
        );
    }
    let fresh_client = client(&target, api);
    assert!(
        block_on(fresh_client.get_prefix(&prefix))
            .unwrap()
            .nodes
            .is_empty(),
        "a dry run writes nothing"
    );

    let restore = restore_into(false, &[]);
    restore.assert_ok();
    // the value of PREFIX/REL in the fresh etcd, as it is now
    let value = |rel: &str| {
        block_on(fresh_client.get_prefix(&prefix))
            .unwrap()
            .nodes
            .into_iter()
            .find(|n| n.key == k(rel))
            .map(|n| String::from_utf8_lossy(&n.value).into_owned())
    };
    assert_eq!(
        value("controller/registrationMode").as_deref(),
        Some("admin_only")
    );
    assert_eq!(value("platform/sshPrivateKey").as_deref(), Some(SECRET));
    assert_eq!(value("database/bucketName").as_deref(), Some("db_wal"));
    assert_eq!(
        value("backup/schedule/volume").as_deref(),
        Some("0 3 * * *")
    );
    for skipped in [
        "router/hosts/a",
        "services/app/web.1",
        "store/gateway/secretKey",
        "database/initId",
        "platform/domain",
    ] {
        assert_eq!(value(skipped), None, "{skipped} must not be restored");
    }
    // a second restore finds every key identical and writes nothing
    let again = restore_into(false, &[]);
    again.assert_ok();
    assert!(
        again.stdout.contains("0 keys written")
            && again.stdout.contains("0 new, 0 with another value"),
        "{}",
        again.all()
    );
    // a key changed at the target: refused, nothing written, the key named (never its value)
    let mode = k("controller/registrationMode");
    block_on(fresh_client.put(&mode, b"disabled", None)).unwrap();
    block_on(fresh_client.delete(&k("database/bucketName"))).unwrap();
    let refused = restore_into(false, &[]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(
        refused.stderr.contains(&mode) && refused.stderr.contains("--force=etcd"),
        "{}",
        refused.all()
    );
    assert_eq!(
        value("controller/registrationMode").as_deref(),
        Some("disabled"),
        "refused means untouched"
    );
    assert_eq!(value("database/bucketName"), None, "nothing written at all");
    // --force=etcd overwrites it and writes the missing one
    let forced = restore_into(false, &["--force=etcd"]);
    forced.assert_ok();
    assert!(
        forced.stdout.contains(&format!("overwrote {mode}"))
            && forced.stdout.contains("2 keys written"),
        "{}",
        forced.all()
    );
    assert_eq!(
        value("controller/registrationMode").as_deref(),
        Some("admin_only")
    );
    assert_eq!(value("database/bucketName").as_deref(), Some("db_wal"));
    for out in [&backup, &verify, &dry, &restore, &again, &refused, &forced] {
        assert!(
            !out.all().contains(SECRET),
            "a secret value leaked:\n{}",
            out.all()
        );
    }
    let manifests = set_dirs(&tmp.path().join("backups"), "etcd");
    let manifest = std::fs::read_to_string(manifests[0].join("manifest.json")).unwrap();
    assert!(
        !manifest.contains(SECRET) && manifest.contains("\"keys\""),
        "{manifest}"
    );
}

#[test]
fn keyspace_round_trip_over_v2() {
    round_trip(EtcdApi::V2, "v2");
}

#[test]
fn keyspace_round_trip_over_v3() {
    round_trip(EtcdApi::V3, "v3");
}
