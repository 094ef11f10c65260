//! Database restore into a new Deis cluster and refusals, through the binary against real
//! PostgreSQL 15 containers of the test bed's deis-database image: a fresh Deis cluster (role
//! and empty database `deis` made at first boot) takes another cluster's dump as it is; a
//! cluster holding data is refused without `--force`, with nothing written; `--force` drops
//! and recreates what the dump creates; a dry run writes nothing.
//!
//! Needs the test bed: run `bash tests/run.sh` (it sets TESTBED_DB_IMAGE and
//! TESTBED_DB_LABEL). Without it these tests fail; they never skip.

mod support;

use support::pg_cluster::*;
use support::*;

/// A Deis cluster "A" with the controller's tables in `deis` (owned by the role `deis`, as
/// the controller makes them), backed up into a fresh local destination.
struct BackedUp {
    source: FreshContainer,
    url: String,
    password: String,
    _dir: tempfile::TempDir,
}

fn backed_up_deis_cluster() -> BackedUp {
    let password = unique("cluster-a-secret");
    let source = FreshContainer::start_deis(&password);
    psql(
        &source.name,
        "deis",
        &format!("SET ROLE deis;\n{DEIS_SCHEMA}"),
    );
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir.path().join("backups"));
    let env = [("DEIS_BACKUP_DATABASE__CONTAINER", source.name.as_str())];
    run_with(&env, &["backup", "database", "--destination", &url]).assert_ok();
    BackedUp {
        source,
        url,
        password,
        _dir: dir,
    }
}

fn restore_args<'a>(url: &'a str, container: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "restore",
        "latest",
        "--only",
        "database",
        "--container",
        container,
        "--destination",
        url,
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn a_fresh_deis_cluster_takes_another_clusters_dump() {
    let a = backed_up_deis_cluster();
    let target_password = unique("cluster-b-secret");
    let target = FreshContainer::start_deis(&target_password);
    let fresh = comparable_dump(&target.name);

    let dry = run(&restore_args(&a.url, &target.name, &["--dry-run"]));
    dry.assert_ok();
    for expected in [
        "would skip `CREATE ROLE deis;`: the role exists in the target",
        "would skip `CREATE ROLE postgres;`",
        "would use the existing empty database deis: skipped `CREATE DATABASE deis WITH",
        "dry run: nothing executed",
    ] {
        assert!(dry.stdout.contains(expected), "{expected:?}: {}", dry.all());
    }
    assert_eq!(
        comparable_dump(&target.name),
        fresh,
        "a dry run writes nothing"
    );

    let restore = run(&restore_args(&a.url, &target.name, &[]));
    restore.assert_ok();
    for expected in [
        "skipped `CREATE ROLE deis;`: the role exists in the target (its ALTER ROLE still applies)",
        "skipped `CREATE ROLE postgres;`",
        "used the existing empty database deis: skipped `CREATE DATABASE deis WITH TEMPLATE = template0",
        "(exit code 0)",
    ] {
        assert!(
            restore.stdout.contains(expected),
            "{expected:?}: {}",
            restore.all()
        );
    }
    assert!(!restore.stdout.contains("dropped"), "{}", restore.all());
    assert_eq!(
        comparable_dump(&target.name),
        comparable_dump(&a.source.name),
        "the new cluster differs from the one backed up"
    );
    for out in [&dry, &restore] {
        for secret in [&a.password, &target_password] {
            assert!(
                !out.all().contains(secret.as_str()),
                "password printed: {}",
                out.all()
            );
        }
    }
}

#[test]
fn a_cluster_holding_data_is_refused_without_force_and_replaced_with_it() {
    let a = backed_up_deis_cluster();
    let target = FreshContainer::start_deis(&unique("cluster-b-secret"));
    psql(
        &target.name,
        "deis",
        "CREATE TABLE public.local_notes (id int, note text);\n\
         INSERT INTO public.local_notes VALUES (1, 'secret-row-value');\n",
    );
    psql(
        &target.name,
        "postgres",
        "CREATE TABLE public.scratch (id int);\nCREATE DATABASE extra;\n",
    );
    psql(
        &target.name,
        "extra",
        "CREATE TABLE public.kept (id int);\n",
    );
    let before = comparable_dump(&target.name);

    let refused = run(&restore_args(&a.url, &target.name, &[]));
    assert_eq!(refused.code, 1, "{}", refused.all());
    let expected = format!(
        "database: refused: container {} already holds data (database deis holds 1 table (schema public: local_notes); \
         database extra holds 1 table (schema public: kept); \
         database postgres holds 1 table (schema public: scratch)); pass --force=database",
        target.name
    );
    assert!(refused.stderr.contains(&expected), "{}", refused.all());
    assert!(refused.stderr.contains("--force"), "{}", refused.all());
    assert!(
        !refused.all().contains("secret-row-value"),
        "names only, never data: {}",
        refused.all()
    );
    assert_eq!(
        comparable_dump(&target.name),
        before,
        "a refusal writes nothing"
    );

    let dry = run(&restore_args(&a.url, &target.name, &["--dry-run"]));
    assert_eq!(
        dry.code,
        1,
        "a dry run says the restore would be refused: {}",
        dry.all()
    );
    assert!(
        dry.stdout.contains(
            "refused without --force: database deis holds 1 table (schema public: local_notes)"
        ),
        "{}",
        dry.all()
    );
    assert!(
        dry.stderr.contains("database: refused: container"),
        "{}",
        dry.all()
    );
    let forced_dry = run(&restore_args(
        &a.url,
        &target.name,
        &["--dry-run", "--force"],
    ));
    forced_dry.assert_ok();
    for expected in [
        "would drop database postgres (1 table (schema public: scratch)) and create it empty before the dump",
        "would drop database deis (1 table (schema public: local_notes)) and recreate it from the dump",
        "database extra (1 table (schema public: kept)) is not in the dump: would be left as it is",
    ] {
        assert!(forced_dry.stdout.contains(expected), "{expected:?}: {}", forced_dry.all());
    }
    assert_eq!(
        comparable_dump(&target.name),
        before,
        "dry runs write nothing"
    );

    let forced = run(&restore_args(&a.url, &target.name, &["--force"]));
    forced.assert_ok();
    for expected in [
        "dropped database postgres (1 table (schema public: scratch)) and created it empty before the dump (--force)",
        "dropped database deis (1 table (schema public: local_notes)) and recreated it from the dump (--force)",
        "skipped `CREATE ROLE deis;`",
        "database extra (1 table (schema public: kept)) is not in the dump: left as it is",
    ] {
        assert!(forced.stdout.contains(expected), "{expected:?}: {}", forced.all());
    }
    for db in ["deis", "postgres"] {
        assert_eq!(
            comparable_database_dump(&target.name, db),
            comparable_database_dump(&a.source.name, db),
            "database {db} differs from the one backed up"
        );
    }
    assert_eq!(
        rows(&target.name, "extra", "SELECT count(*) FROM public.kept"),
        "0",
        "a database the dump does not create is left as it is"
    );
    assert_eq!(
        rows(
            &target.name,
            "postgres",
            "SELECT description FROM pg_catalog.pg_shdescription d JOIN pg_catalog.pg_database b \
             ON b.oid = d.objoid WHERE b.datname = 'postgres'"
        ),
        "default administrative connection database"
    );
}
