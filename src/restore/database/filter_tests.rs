//! Unit tests of the dump filter: both dump layouts, every chunking.

use super::super::plan::RestorePlan;
use super::super::target::{Contents, TargetCluster, TargetDatabase};
use super::*;

/// A fresh Deis cluster: roles postgres and deis, an empty database deis.
fn fresh_deis() -> RestorePlan {
    target(&[("deis", Contents::Empty), ("postgres", Contents::Empty)])
}

fn target(dbs: &[(&str, Contents)]) -> RestorePlan {
    RestorePlan::new(&TargetCluster {
        roles: ["postgres", "deis", "Odd Role"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        databases: dbs
            .iter()
            .map(|(n, c)| TargetDatabase {
                name: n.to_string(),
                contents: c.clone(),
            })
            .collect(),
    })
}

fn filter_in_chunks(plan: &RestorePlan, dump: &str, chunk: usize) -> (String, Vec<FilterEvent>) {
    let mut f = DumpFilter::new(plan);
    let mut out = Vec::new();
    for part in dump.as_bytes().chunks(chunk) {
        f.process(part, &mut out);
    }
    f.finish(&mut out);
    (String::from_utf8(out).unwrap(), f.events)
}

/// Filters `dump` in chunks of several sizes; all must agree. Returns the output and events.
fn filter(plan: &RestorePlan, dump: &str) -> (String, Vec<FilterEvent>) {
    let whole = filter_in_chunks(plan, dump, dump.len().max(1));
    for chunk in [1, 2, 3, 5, 7, 13, 64] {
        assert_eq!(filter_in_chunks(plan, dump, chunk), whole, "chunk {chunk}");
    }
    whole
}

/// The layout of PostgreSQL 11 and later (here 15, with `\restrict`).
const DUMP_15: &str = "--\n-- PostgreSQL database cluster dump\n--\n\n\\restrict K1\n\n\
SET default_transaction_read_only = off;\n\n\
CREATE ROLE deis;\nALTER ROLE deis WITH LOGIN PASSWORD 'SCRAM-SHA-256$x';\n\
CREATE ROLE \"Odd Role\";\nCREATE ROLE newrole;\nCREATE ROLE postgres;\n\
ALTER ROLE postgres WITH SUPERUSER;\n\n\\unrestrict K1\n\n\
--\n-- Database \"template1\" dump\n--\n\n\\connect template1\n\
CREATE ROLE deis;\n\n\
--\n-- Database \"deis\" dump\n--\n\n\\restrict K2\n\
SET client_encoding = 'UTF8';\n\
CREATE DATABASE deis WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE = 'C.UTF-8';\n\n\
ALTER DATABASE deis OWNER TO deis;\n\n\\unrestrict K2\n\\connect deis\n\\restrict K2\n\
CREATE TABLE public.api_app (id text);\n\
COPY public.api_app (id) FROM stdin;\n\
-- Database \"deis\" dump\n\
CREATE DATABASE deis WITH TEMPLATE = template0;\n\
\\.\n\n\
CREATE DATABASE deis;\n\n\
--\n-- Database \"apps\" dump\n--\n\n\
CREATE DATABASE apps WITH TEMPLATE = template0;\n\
ALTER DATABASE apps OWNER TO deis;\n\\connect apps\n\n\
--\n-- Database \"postgres\" dump\n--\n\n\\connect postgres\n\n\
--\n-- PostgreSQL database cluster dump complete\n--\n\n";

#[test]
fn a_fresh_deis_cluster_skips_its_roles_and_uses_its_empty_database() {
    let plan = fresh_deis();
    let (out, events) = filter(&plan, DUMP_15);
    let expected = DUMP_15
        .replacen("CREATE ROLE deis;\n", "", 1)
        .replacen("CREATE ROLE \"Odd Role\";\n", "", 1)
        .replacen("CREATE ROLE postgres;\n", "", 1)
        .replacen(
            "CREATE DATABASE deis WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE = 'C.UTF-8';\n",
            "",
            1,
        );
    assert_eq!(out, expected);
    assert_eq!(
        events,
        [
            FilterEvent::RoleSkipped {
                statement: "CREATE ROLE deis;".into()
            },
            FilterEvent::RoleSkipped {
                statement: "CREATE ROLE \"Odd Role\";".into()
            },
            FilterEvent::RoleSkipped {
                statement: "CREATE ROLE postgres;".into()
            },
            FilterEvent::DatabaseUsed {
                name: "deis".into(),
                statement: "CREATE DATABASE deis WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE = 'C.UTF-8';".into(),
                owner_set: None,
            },
            FilterEvent::DatabaseCreated {
                name: "apps".into()
            },
        ]
    );
    assert!(
        out.contains("ALTER ROLE deis WITH") && out.contains("ALTER DATABASE deis OWNER TO deis;"),
        "the statements after a skipped one stay"
    );
    assert!(
        out.contains("\\connect template1\nCREATE ROLE deis;\n"),
        "after the first \\connect nothing is a role statement"
    );
    assert!(
        out.contains("-- Database \"deis\" dump\nCREATE DATABASE deis WITH TEMPLATE = template0;\n\\.\n\nCREATE DATABASE deis;\n"),
        "table data and statements outside a database's preamble are never touched"
    );
}

#[test]
fn a_database_holding_data_is_dropped_just_before_the_dump_creates_it() {
    let plan = target(&[
        (
            "deis",
            Contents::Relations {
                tables: 2,
                others: 0,
                sample: vec![("public".into(), "api_app".into())],
            },
        ),
        ("postgres", Contents::Empty),
    ]);
    let (out, events) = filter(&plan, DUMP_15);
    let drop = RestorePlan::drop_database_sql("deis");
    assert!(
        out.contains(&format!(
            "SET client_encoding = 'UTF8';\n{drop}CREATE DATABASE deis WITH TEMPLATE = template0 ENCODING"
        )),
        "{out}"
    );
    assert_eq!(out.matches("DROP DATABASE").count(), 1);
    assert!(events.contains(&FilterEvent::DatabaseRecreated {
        name: "deis".into(),
        found: "2 tables (schema public: api_app, ...)".into()
    }));
}

/// The layout of PostgreSQL up to 10 (Deis v1 runs 9.4): databases are created in the
/// globals section, with their owner in the statement, before the first `\connect`.
const DUMP_94: &str = "SET standard_conforming_strings = on;\n\n\
CREATE ROLE deis;\nALTER ROLE deis WITH NOSUPERUSER LOGIN PASSWORD 'md5abc';\n\
CREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER;\n\n\
CREATE DATABASE deis WITH TEMPLATE = template0 OWNER = deis;\n\
CREATE DATABASE \"My \"\"Apps\"\"\" WITH TEMPLATE = template0 OWNER = \"Odd Role\";\n\
REVOKE ALL ON DATABASE template1 FROM PUBLIC;\n\n\
\\connect deis\n\nCOPY public.t (a) FROM stdin;\nCREATE ROLE deis;\n\\.\n\n\
\\connect postgres\n\n";

#[test]
fn an_old_dump_s_databases_are_used_with_their_owner_set() {
    let plan = target(&[
        ("deis", Contents::Empty),
        ("My \"Apps\"", Contents::Empty),
        ("postgres", Contents::Empty),
    ]);
    let (out, events) = filter(&plan, DUMP_94);
    let expected = DUMP_94
        .replacen("CREATE ROLE deis;\n", "", 1)
        .replacen("CREATE ROLE postgres;\n", "", 1)
        .replacen(
            "CREATE DATABASE deis WITH TEMPLATE = template0 OWNER = deis;",
            "ALTER DATABASE deis OWNER TO deis;",
            1,
        )
        .replacen(
            "CREATE DATABASE \"My \"\"Apps\"\"\" WITH TEMPLATE = template0 OWNER = \"Odd Role\";",
            "ALTER DATABASE \"My \"\"Apps\"\"\" OWNER TO \"Odd Role\";",
            1,
        );
    assert_eq!(out, expected);
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(
        matches!(&events[3], FilterEvent::DatabaseUsed { name, owner_set: Some(_), .. } if name == "My \"Apps\"")
    );
}

#[test]
fn a_cluster_without_the_roles_or_databases_gets_the_dump_unchanged() {
    let plan = RestorePlan::new(&TargetCluster::default());
    let (out, events) = filter(&plan, DUMP_94);
    assert_eq!(out, DUMP_94);
    assert_eq!(
        events,
        [
            FilterEvent::DatabaseCreated {
                name: "deis".into()
            },
            FilterEvent::DatabaseCreated {
                name: "My \"Apps\"".into()
            },
        ]
    );
}

#[test]
fn overlong_lines_and_a_missing_last_newline_pass_through() {
    let plan = fresh_deis();
    let long = format!(
        "INSERT INTO t VALUES ('{}');\n",
        "x".repeat(LINE_LIMIT + 10)
    );
    let dump = format!("{long}CREATE ROLE deis;\nCREATE ROLE other;\nno newline");
    let (out, events) = filter_in_chunks(&plan, &dump, 4096);
    assert_eq!(out, format!("{long}CREATE ROLE other;\nno newline"));
    assert_eq!(events.len(), 1);
}

#[test]
fn only_well_formed_statements_are_recognised() {
    assert_eq!(parse_create_role("CREATE ROLE deis;"), Some("deis".into()));
    assert_eq!(
        parse_create_role("CREATE ROLE \"a \"\"b\"\"\";"),
        Some("a \"b\"".into())
    );
    assert_eq!(parse_create_role("CREATE ROLE deis WITH LOGIN;"), None);
    assert_eq!(
        parse_create_role("CREATE ROLE Deis;"),
        None,
        "never unquoted upper case"
    );
    assert_eq!(parse_create_role("CREATE ROLE \"open;"), None);
    let db = parse_create_database("CREATE DATABASE deis;").unwrap();
    assert_eq!((db.name.as_str(), db.owner), ("deis", None));
    assert!(parse_create_database("CREATE DATABASE deisx-y;").is_none());
    assert!(parse_create_database("CREATE DATABASE deis WITH TEMPLATE = template0").is_none());
}
