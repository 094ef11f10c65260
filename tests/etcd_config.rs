//! Configuration read from etcd over the v2 and the v3 API (`config show|check --etcd URL`):
//! our keys under PREFIX/backup/ and the Deis keys, each value's source named, secrets never
//! shown, bad values named by key. Needs the test bed's etcd (`bash tests/run.sh`).

mod etcd_support;
mod support;

use deis_backup::config::EtcdApi;
use etcd_support::*;
use support::*;

const DEST_SECRET: &str = "etcd-dest-secret-9f8e7d";
const GW_SECRET: &str = "etcd-gw-secret-6c5b4a";
const GW_ACCESS: &str = "ETCDGWACCESS3210";

fn config_show_over(api: EtcdApi, flag: &str) {
    let url = endpoint();
    let prefix = unique_prefix(&format!("show-{flag}"));
    let c = client(&url, api);
    let k = |rel: &str| format!("{prefix}/{rel}");
    put(
        &c,
        &[
            (&k("backup/schedule/volume"), "0 3 * * *"),
            (
                &k("backup/destination/url"),
                "file:///var/backups/from-etcd",
            ),
            (&k("backup/destination/secretKey"), DEST_SECRET),
            (&k("backup/retention/keepLast"), "12"),
            (&k("backup/bogusKey"), "x"),
            (&k("store/gateway/host"), "10.9.8.7"),
            (&k("store/gateway/port"), "8888"),
            (&k("store/gateway/accessKey"), GW_ACCESS),
            (&k("store/gateway/secretKey"), GW_SECRET),
            (&k("database/bucketName"), "db_wal"),
            (&k("registry/bucketName"), "registry"),
        ],
    );
    let out = cli()
        .args(["config", "show", "--etcd", &url, "--etcd-api", flag])
        .env("DEIS_BACKUP_ETCD__PREFIX", &prefix)
        .env("DEIS_BACKUP_RETENTION__KEEP_DAILY", "2")
        .output()
        .unwrap();
    let show = Run::from(out);
    show.assert_ok();
    let shown: toml::Table = toml::from_str(&show.stdout).unwrap();
    assert_eq!(shown["schedule"]["volume"].as_str(), Some("0 3 * * *"));
    assert_eq!(
        shown["destination"]["url"].as_str(),
        Some("file:///var/backups/from-etcd")
    );
    assert_eq!(shown["retention"]["keep-last"].as_integer(), Some(12));
    assert_eq!(shown["retention"]["keep-daily"].as_integer(), Some(2));
    assert_eq!(
        shown["gateway"]["endpoint"].as_str(),
        Some("http://10.9.8.7:8888")
    );
    assert_eq!(shown["gateway"]["secret-key"].as_str(), Some("***"));
    assert_eq!(shown["destination"]["secret-key"].as_str(), Some("***"));
    let buckets = shown["gateway"]["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 2);
    for line in [
        format!("volume = \"0 3 * * *\"  # from etcd {prefix}/backup/schedule/volume"),
        format!("secret-key = \"***\"  # from etcd {prefix}/store/gateway/secretKey"),
        "keep-daily = 2  # from env DEIS_BACKUP_RETENTION__KEEP_DAILY".to_string(),
        "keep-weekly = 4  # from default".to_string(),
        format!("endpoints = [\"{url}\"]  # from flag"),
    ] {
        assert!(
            show.stdout.contains(&line),
            "missing {line:?}:\n{}",
            show.stdout
        );
    }
    assert!(
        show.stderr.contains(&format!("{prefix}/backup/bogusKey")),
        "unknown key not named:\n{}",
        show.stderr
    );
    for secret in [DEST_SECRET, GW_SECRET, GW_ACCESS] {
        assert!(
            !show.all().contains(secret),
            "secret leaked:\n{}",
            show.all()
        );
    }

    // A bad value in etcd: `config check` names the key and fails.
    put(&c, &[(&k("backup/schedule/volume"), "0 25 * * *")]);
    let check = Run::from(
        cli()
            .args(["config", "check", "--etcd", &url, "--etcd-api", flag])
            .env("DEIS_BACKUP_ETCD__PREFIX", &prefix)
            .output()
            .unwrap(),
    );
    assert_eq!(check.code, 1, "{}", check.all());
    assert!(check.stderr.contains("schedule.volume"), "{}", check.all());
    put(&c, &[(&k("backup/retention/keepLast"), "many")]);
    let check = Run::from(
        cli()
            .args(["config", "check", "--etcd", &url, "--etcd-api", flag])
            .env("DEIS_BACKUP_ETCD__PREFIX", &prefix)
            .output()
            .unwrap(),
    );
    assert_eq!(check.code, 1, "{}", check.all());
    assert!(
        check
            .stderr
            .contains(&format!("{prefix}/backup/retention/keepLast"))
            && check.stderr.contains("whole number"),
        "{}",
        check.all()
    );
    for secret in [DEST_SECRET, GW_SECRET, GW_ACCESS] {
        assert!(
            !check.all().contains(secret),
            "secret leaked:\n{}",
            check.all()
        );
    }
}

#[test]
fn config_show_reads_etcd_over_v2() {
    config_show_over(EtcdApi::V2, "v2");
}

#[test]
fn config_show_reads_etcd_over_v3() {
    config_show_over(EtcdApi::V3, "v3");
}

#[test]
fn auto_detection_picks_the_api_that_holds_the_keys() {
    let url = endpoint();
    for (api, flag) in [(EtcdApi::V2, "v2"), (EtcdApi::V3, "v3")] {
        let prefix = unique_prefix(&format!("auto-{flag}"));
        put(
            &client(&url, api),
            &[(&format!("{prefix}/backup/compression/level"), "8")],
        );
        let show = Run::from(
            cli()
                .args(["config", "show", "--etcd", &url])
                .env("DEIS_BACKUP_ETCD__PREFIX", &prefix)
                .output()
                .unwrap(),
        );
        show.assert_ok();
        assert!(
            show.stdout.contains(&format!(
                "level = 8  # from etcd {prefix}/backup/compression/level"
            )),
            "{flag}: {}",
            show.stdout
        );
    }
}

#[test]
fn unreachable_etcd_is_named() {
    let r = run(&[
        "config",
        "show",
        "--etcd",
        "http://127.0.0.1:1",
        "--etcd-api",
        "v2",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("http://127.0.0.1:1"), "{}", r.all());
}
