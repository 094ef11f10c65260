//! The command-line contract: help, not-yet-available subcommands, configuration layering,
//! validation messages, and secrets that never appear in any output.

mod support;

use std::fs;
use support::*;

const SECRETS: [&str; 4] = [
    "DEST-ACCESS-1a2b",
    "dest-secret-3c4d",
    "GW-ACCESS-5e6f",
    "gw-secret-7a8b",
];

fn config_with_secrets(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("deis-backup.toml");
    fs::write(
        &path,
        format!(
            "[destination]\nurl = \"file://{}/backups\"\naccess-key = \"{}\"\nsecret-key = \"{}\"\n\
             [gateway]\nendpoint = \"http://127.0.0.1:8888\"\naccess-key = \"{}\"\n\
             [schedule]\nvolume = \"0 4 * * *\"\n",
            dir.display(),
            SECRETS[0],
            SECRETS[1],
            SECRETS[2]
        ),
    )
    .unwrap();
    path
}

#[test]
fn help_explains_every_subcommand_with_an_example() {
    let top = run(&["--help"]);
    top.assert_ok();
    for sub in [
        "run", "backup", "list", "verify", "restore", "prune", "config",
    ] {
        assert!(top.stdout.contains(sub), "{sub} missing from --help");
        let help = run(&[sub, "--help"]);
        help.assert_ok();
        assert!(
            help.stdout.contains("Example"),
            "{sub} --help has no example:\n{}",
            help.stdout
        );
    }
}

#[test]
fn a_usage_error_names_the_bad_value_and_exits_2() {
    let r = run(&["prune", "--dry-run", "--job", "nosuch"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stderr.contains("nosuch"), "{}", r.all());
    let r = run(&["backup", "everything"]);
    assert_eq!(r.code, 2, "{}", r.all());
}

#[test]
fn config_show_layers_sources_and_redacts_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let file = config_with_secrets(tmp.path());
    let out = cli()
        .args([
            "config",
            "show",
            "--config",
            file.to_str().unwrap(),
            "--compression-level",
            "9",
        ])
        .env("DEIS_BACKUP_GATEWAY__SECRET_KEY", SECRETS[3])
        .env("DEIS_BACKUP_RETENTION__KEEP_LAST", "11")
        .output()
        .unwrap();
    let show = Run::from(out);
    show.assert_ok();
    let shown: toml::Table = toml::from_str(&show.stdout).unwrap();
    assert_eq!(
        shown["schedule"]["volume"].as_str(),
        Some("0 4 * * *"),
        "from the file"
    );
    assert_eq!(
        shown["retention"]["keep-last"].as_integer(),
        Some(11),
        "from the environment"
    );
    assert_eq!(
        shown["compression"]["level"].as_integer(),
        Some(9),
        "from a flag"
    );
    assert_eq!(shown["gateway"]["secret-key"].as_str(), Some("***"));
    assert_eq!(shown["destination"]["access-key"].as_str(), Some("***"));
    for secret in SECRETS {
        assert!(
            !show.all().contains(secret),
            "secret {secret} leaked:\n{}",
            show.all()
        );
    }
}

#[test]
fn config_check_names_each_bad_key_and_never_a_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let file = config_with_secrets(tmp.path());
    let out = cli()
        .args(["config", "check", "--config", file.to_str().unwrap()])
        .env("DEIS_BACKUP_SCHEDULE__DATABASE", "0 25 * * *")
        .env("DEIS_BACKUP_DESTINATION__URL", "ftp://elsewhere")
        .output()
        .unwrap();
    let check = Run::from(out);
    assert_eq!(check.code, 1, "{}", check.all());
    assert!(
        check.stderr.contains("schedule.database") && check.stderr.contains("0 25 * * *"),
        "{}",
        check.all()
    );
    assert!(
        check.stderr.contains("destination.url") && check.stderr.contains("\"ftp\""),
        "{}",
        check.all()
    );
    for secret in SECRETS {
        assert!(!check.all().contains(secret), "secret {secret} leaked");
    }
    run(&["config", "check", "--config", file.to_str().unwrap()]).assert_ok();
}

#[test]
fn unknown_keys_and_wrong_types_name_the_place() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.toml");
    fs::write(
        &file,
        "[volume]\npath = \"/x\"\n[gateway]\nconcurency = 4\n",
    )
    .unwrap();
    let r = run(&["config", "check", "--config", file.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("concurency") && r.stderr.contains("bad.toml, line 4"),
        "{}",
        r.all()
    );

    fs::write(&file, "[destination]\nsecret-key = 12345678\n").unwrap();
    let r = run(&["config", "show", "--config", file.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("secret-key") && !r.all().contains("12345678"),
        "{}",
        r.all()
    );

    let r = Run::from(
        cli()
            .args(["config", "check"])
            .env("DEIS_BACKUP_VOLUME__PATHS", "/x")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("DEIS_BACKUP_VOLUME__PATHS"),
        "{}",
        r.all()
    );

    let r = run(&["config", "check", "--config", "/no/such/file.toml"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("/no/such/file.toml"), "{}", r.all());
}
