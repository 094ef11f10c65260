//! Database job end to end through the binary against a real Docker engine and a real
//! PostgreSQL 15 container (the test bed's deis-database): backup, restore into a fresh
//! container, and the failures that must never leave a set behind.
//!
//! Needs the test bed: run `bash tests/run.sh` (it sets TESTBED_DB_CONTAINER,
//! TESTBED_DB_IMAGE and TESTBED_DB_LABEL). Without it these tests fail; they never skip.

mod support;

use std::path::Path;
use std::process::Stdio;
use support::pg_cluster::*;
use support::*;

fn listed_sets(url: &str) -> serde_json::Value {
    let list = run(&["list", "--json", "--job", "database", "--destination", url]);
    list.assert_ok();
    serde_json::from_str(&list.stdout).expect("list --json prints JSON")
}

fn manifest_of(dest: &Path) -> serde_json::Value {
    let sets = set_dirs(dest, "database");
    assert_eq!(sets.len(), 1, "{sets:?}");
    let bytes = std::fs::read(sets[0].join("manifest.json")).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn round_trip_into_a_fresh_container_gives_back_the_same_cluster() {
    let source = testbed("TESTBED_DB_CONTAINER");
    psql(
        &source,
        "postgres",
        "DROP DATABASE IF EXISTS deis;\nCREATE DATABASE deis;\n",
    );
    psql(&source, "deis", DEIS_SCHEMA);
    let target_password = unique("target-secret");
    let target = FreshContainer::start(&target_password);

    let tmp = tempfile::tempdir().unwrap();
    let url = file_url(&tmp.path().join("backups"));
    let env = [("DEIS_BACKUP_DATABASE__CONTAINER", source.as_str())];
    let backup = run_with(&env, &["backup", "database", "--destination", &url]);
    backup.assert_ok();
    let before = comparable_dump(&source);

    let manifest = manifest_of(&tmp.path().join("backups"));
    assert_eq!(manifest["source"]["kind"], "database");
    assert_eq!(manifest["source"]["container"], source.as_str());
    let databases = manifest["stats"]["databases"].as_array().unwrap();
    assert!(databases.iter().any(|d| d == "deis"), "{manifest}");
    assert!(
        databases.iter().all(|d| d != "fake"),
        "data is no header: {manifest}"
    );
    let version = manifest["source"]["server_version"].as_str().unwrap();
    assert!(version.starts_with("15."), "{version}");
    let artifact = &manifest["artifacts"][0];
    assert_eq!(artifact["name"], "pg_dumpall.sql.zst");
    assert!(artifact["uncompressed_size"].as_u64().unwrap() > artifact["size"].as_u64().unwrap());
    assert_eq!(
        manifest["stats"]["uncompressed_bytes"],
        artifact["uncompressed_size"]
    );

    let restore_args = [
        "restore",
        "latest",
        "--only",
        "database",
        "--container",
        &target.name,
        "--destination",
        &url,
    ];
    let mut dry = restore_args.to_vec();
    dry.push("--dry-run");
    let dry = run(&dry);
    dry.assert_ok();
    assert!(
        dry.stdout.contains("psql") && dry.stdout.contains(&target.name),
        "{}",
        dry.all()
    );
    let untouched = docker(&[
        "exec",
        &target.name,
        "sudo",
        "-u",
        "postgres",
        "psql",
        "-lqt",
    ]);
    assert!(
        !untouched.stdout.contains("deis"),
        "a dry run executes nothing"
    );

    let restore = run(&restore_args);
    restore.assert_ok();
    assert!(
        restore.stdout.contains("CREATE ROLE postgres"),
        "{}",
        restore.all()
    );
    assert_eq!(
        comparable_dump(&target.name),
        before,
        "the restored cluster differs"
    );

    let again = run(&restore_args);
    assert_eq!(
        again.code,
        1,
        "restoring over databases holding data is refused: {}",
        again.all()
    );
    assert!(
        again.stderr.contains(&format!(
            "database: refused: container {} already holds data (database deis holds 4 tables and 1 other relation (schema public: api_app, api_domain, api_key, auth_user, auth_user_id_seq)",
            target.name
        )),
        "{}",
        again.all()
    );
    assert_eq!(
        comparable_dump(&target.name),
        before,
        "a refusal writes nothing"
    );
    for out in [&backup, &dry, &restore, &again] {
        assert!(
            !out.all().contains(&target_password),
            "password printed: {}",
            out.all()
        );
    }
}

#[test]
fn a_failing_pg_dumpall_fails_the_run_with_its_stderr_and_leaves_no_set() {
    let source = testbed("TESTBED_DB_CONTAINER");
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backups");
    let url = file_url(&dest);
    for mode in ["sudo", "user"] {
        let env = [
            ("DEIS_BACKUP_DATABASE__CONTAINER", source.as_str()),
            ("DEIS_BACKUP_DATABASE__USER", "nobody"), // an OS user, but no role
            ("DEIS_BACKUP_DATABASE__EXEC_MODE", mode),
        ];
        let out = run_with(&env, &["backup", "database", "--destination", &url]);
        assert_eq!(out.code, 1, "{}", out.all());
        assert!(out.stderr.contains("exit code"), "{}", out.all());
        assert!(
            out.stderr.contains("role \"nobody\" does not exist"),
            "pg_dumpall's stderr belongs in the error: {}",
            out.all()
        );
        assert_eq!(listed_sets(&url), serde_json::json!([]));
        assert!(
            set_dirs(&dest, "database").is_empty(),
            "a failed run leaves nothing"
        );
    }
}

#[test]
fn a_missing_or_stopped_container_gives_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backups");
    let url = file_url(&dest);
    let missing = unique("deis-database-missing");
    let env = [("DEIS_BACKUP_DATABASE__CONTAINER", missing.as_str())];
    let out = run_with(&env, &["backup", "database", "--destination", &url]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains(&format!("container {missing} does not exist")),
        "{}",
        out.all()
    );

    let stopped = unique("deis-backup-stopped");
    let label = testbed("TESTBED_DB_LABEL");
    let image = testbed("TESTBED_DB_IMAGE");
    docker(&["create", "--name", &stopped, "--label", &label, &image]).assert_ok();
    let env = [("DEIS_BACKUP_DATABASE__CONTAINER", stopped.as_str())];
    let out = run_with(&env, &["backup", "database", "--destination", &url]);
    docker(&["rm", "-f", "-v", &stopped]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr
            .contains(&format!("container {stopped} is not running")),
        "{}",
        out.all()
    );
    assert!(set_dirs(&dest, "database").is_empty());
}

#[test]
fn the_database_password_never_appears_in_output_or_manifest() {
    let source = testbed("TESTBED_DB_CONTAINER");
    let inspect = docker(&[
        "inspect",
        "-f",
        "{{range .Config.Env}}{{println .}}{{end}}",
        &source,
    ]);
    inspect.assert_ok();
    let password = inspect
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("POSTGRES_PASSWORD="))
        .unwrap_or("changeme123") // the test bed entrypoint's default
        .to_string();
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backups");
    let url = file_url(&dest);
    let env = [
        ("DEIS_BACKUP_DATABASE__CONTAINER", source.as_str()),
        ("DEIS_BACKUP_LOG", "debug"),
    ];
    let outputs = [
        run_with(&env, &["backup", "database", "--destination", &url]),
        run_with(&env, &["list", "--destination", &url]),
        run_with(&env, &["verify", "latest", "--destination", &url]),
        run_with(
            &env,
            // forced: the shared cluster may hold data, and this dry run plans over it
            &[
                "restore",
                "latest",
                "--only",
                "database",
                "--dry-run",
                "--force",
                "--destination",
                &url,
            ],
        ),
    ];
    for out in &outputs {
        out.assert_ok();
        assert!(
            !out.all().contains(&password),
            "password printed: {}",
            out.all()
        );
    }
    let manifest = manifest_of(&dest).to_string();
    assert!(!manifest.contains(&password), "{manifest}");
}

#[test]
fn a_dump_killed_mid_stream_fails_the_run_and_leaves_no_set() {
    let db = FreshContainer::start(&unique("secret"));
    psql(
        &db.name,
        "postgres",
        "CREATE DATABASE big;\n\\connect big\n\
         CREATE TABLE blob AS SELECT i, repeat(md5(i::text), 8) AS t FROM generate_series(1, 600000) i;\n",
    );
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backups");
    let url = file_url(&dest);
    let child = cli()
        .env("DEIS_BACKUP_DATABASE__CONTAINER", &db.name)
        .args(["backup", "database", "--destination", &url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // kill pg_dump (pg_dumpall's worker) as soon as it runs
    let killed = wait_until(60_000, || {
        docker(&["exec", &db.name, "pkill", "-KILL", "-x", "pg_dump"]).code == 0
    });
    let out: Run = child.wait_with_output().unwrap().into();
    assert!(killed, "pg_dump was never seen running: {}", out.all());
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(out.stderr.contains("pg_dump"), "{}", out.all());
    assert_eq!(listed_sets(&url), serde_json::json!([]));
    assert!(
        set_dirs(&dest, "database").is_empty(),
        "a failed run leaves nothing"
    );
}

#[test]
fn the_database_job_round_trips_through_the_s3_destination() {
    // a source of its own: the shared one is compared whole by the round-trip test
    let source_container = FreshContainer::start(&unique("pw"));
    let source = source_container.name.clone();
    let db = unique("s3db").replace('-', "_");
    psql(&source, "postgres", &format!("CREATE DATABASE {db};\n"));
    psql(
        &source,
        &db,
        "CREATE TABLE api_app (id text PRIMARY KEY, structure text);\n\
         INSERT INTO api_app VALUES ('via-s3', '{\"web\": 1}');\n",
    );
    let url = format!(
        "s3://{}/{}",
        testbed("TESTBED_DEST_BUCKET"),
        unique("database-s3")
    );
    let (endpoint, access, secret) = (
        testbed("TESTBED_S3_ENDPOINT"),
        testbed("TESTBED_DEST_ACCESS_KEY"),
        testbed("TESTBED_DEST_SECRET_KEY"),
    );
    let env = [
        ("DEIS_BACKUP_DATABASE__CONTAINER", source.as_str()),
        ("DEIS_BACKUP_DESTINATION__URL", url.as_str()),
        ("DEIS_BACKUP_DESTINATION__ENDPOINT", endpoint.as_str()),
        ("DEIS_BACKUP_DESTINATION__ACCESS_KEY", access.as_str()),
        ("DEIS_BACKUP_DESTINATION__SECRET_KEY", secret.as_str()),
    ];
    let backup = run_with(&env, &["backup", "database"]);
    backup.assert_ok();
    psql(&source, "postgres", &format!("DROP DATABASE {db};\n"));

    let list = run_with(&env, &["list", "--json", "--job", "database"]);
    list.assert_ok();
    let sets: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(sets.as_array().unwrap().len(), 1, "{}", list.stdout);
    run_with(&env, &["verify", "latest", "--job", "database"]).assert_ok();

    let target = FreshContainer::start(&unique("pw"));
    let restore = run_with(
        &env,
        &[
            "restore",
            "latest",
            "--only",
            "database",
            "--container",
            &target.name,
        ],
    );
    restore.assert_ok();
    let rows = docker(&[
        "exec",
        &target.name,
        "sudo",
        "-u",
        "postgres",
        "psql",
        "-At",
        "-d",
        &db,
        "-c",
        "SELECT id FROM api_app",
    ]);
    rows.assert_ok();
    assert_eq!(rows.stdout.trim(), "via-s3");
    for out in [&backup, &list, &restore] {
        assert!(!out.all().contains(&secret), "destination secret printed");
    }
}
