//! What a database restore does to its target, decided from the inspected cluster before a
//! byte is written: the roles whose `CREATE ROLE` is left out, the empty databases used as
//! they are, the databases holding data (refused without `--force`; with it, dropped before
//! the dump recreates them), and what must run before the dump. Roles are never dropped.

use super::target::{Contents, TargetCluster};
use std::collections::{BTreeMap, BTreeSet};

/// The database every cluster has, which a dump restores into without creating it.
const MAINTENANCE_DB: &str = "postgres";

/// What happens when the dump creates a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnCreate {
    /// The target does not have it: the dump creates it.
    Create,
    /// The target has it, empty: its `CREATE DATABASE` is left out.
    UseEmpty,
    /// The target has it holding `found`: dropped first, then created by the dump (forced).
    DropAndRecreate { found: String },
}

/// The decisions for one target cluster.
#[derive(Debug, Clone, Default)]
pub struct RestorePlan {
    roles: BTreeSet<String>,
    /// The target's databases (but template0/1): what each holds.
    databases: BTreeMap<String, Contents>,
}

impl RestorePlan {
    /// The plan for restoring a dump into `target`.
    pub fn new(target: &TargetCluster) -> Self {
        Self {
            roles: target.roles.clone(),
            databases: target
                .databases
                .iter()
                .map(|d| (d.name.clone(), d.contents.clone()))
                .collect(),
        }
    }

    /// True when the target has the role (its `CREATE ROLE` is left out).
    pub fn role_exists(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    /// What to do when the dump creates database `name`.
    pub fn on_create(&self, name: &str) -> OnCreate {
        match self.databases.get(name) {
            None => OnCreate::Create,
            Some(contents) if contents.holds_data() => OnCreate::DropAndRecreate {
                found: contents.describe(),
            },
            Some(_) => OnCreate::UseEmpty,
        }
    }

    /// The databases holding data, each described (`database deis holds 4 tables (...)`):
    /// a restore without `--force` is refused when there is any.
    pub fn live_data(&self) -> Vec<String> {
        self.databases
            .iter()
            .filter(|(_, c)| c.holds_data())
            .map(|(name, c)| format!("database {name} holds {}", c.describe()))
            .collect()
    }

    /// What the `postgres` database holds, when it holds data: a forced restore empties it
    /// (drops and creates it again) before the dump, which restores into it.
    pub fn maintenance_db_data(&self) -> Option<String> {
        self.databases
            .get(MAINTENANCE_DB)
            .filter(|c| c.holds_data())
            .map(Contents::describe)
    }

    /// The target's databases that `created` (the databases the dump created) leaves alone,
    /// each described; `postgres` is never among them (the dump restores into it).
    pub fn untouched(&self, created: &BTreeSet<&str>) -> Vec<String> {
        self.databases
            .iter()
            .filter(|(name, _)| name.as_str() != MAINTENANCE_DB && !created.contains(name.as_str()))
            .map(|(name, c)| format!("database {name} ({})", c.describe()))
            .collect()
    }

    /// SQL for psql to run before the dump in a forced restore: empties `postgres` when it
    /// holds data (from `template1`, then back). Empty when nothing has to run.
    pub fn prologue(&self) -> String {
        if self.maintenance_db_data().is_none() {
            return String::new();
        }
        format!(
            "\\connect template1\n{}CREATE DATABASE {db} WITH TEMPLATE = template0;\n\
             COMMENT ON DATABASE {db} IS 'default administrative connection database';\n\
             \\connect {db}\n",
            Self::drop_database_sql(MAINTENANCE_DB),
            db = MAINTENANCE_DB
        )
    }

    /// Ends the other sessions of database `name` (PostgreSQL 9.4 has no `DROP DATABASE ...
    /// WITH (FORCE)`) and drops it; `DROP DATABASE` waits a few seconds for them to go.
    pub fn drop_database_sql(name: &str) -> String {
        format!(
            "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity \
             WHERE datname = {} AND pid <> pg_catalog.pg_backend_pid();\nDROP DATABASE {};\n",
            quote_literal(name),
            quote_ident(name)
        )
    }
}

/// `name` as an SQL identifier: always double-quoted, inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal that means the same whatever `standard_conforming_strings`.
pub fn quote_literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::super::target::TargetDatabase;
    use super::*;

    fn relations(tables: u64) -> Contents {
        Contents::Relations {
            tables,
            others: 0,
            sample: vec![("public".into(), "api_app".into())],
        }
    }

    fn cluster(dbs: &[(&str, Contents)]) -> TargetCluster {
        TargetCluster {
            roles: ["postgres", "deis"].iter().map(|s| s.to_string()).collect(),
            databases: dbs
                .iter()
                .map(|(n, c)| TargetDatabase {
                    name: n.to_string(),
                    contents: c.clone(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_fresh_deis_cluster_is_used_as_it_is() {
        let plan = RestorePlan::new(&cluster(&[
            ("deis", Contents::Empty),
            ("postgres", Contents::Empty),
        ]));
        assert!(plan.live_data().is_empty());
        assert!(plan.role_exists("deis") && plan.role_exists("postgres"));
        assert!(!plan.role_exists("Deis"));
        assert_eq!(plan.on_create("deis"), OnCreate::UseEmpty);
        assert_eq!(plan.on_create("other"), OnCreate::Create);
        assert_eq!(plan.prologue(), "");
        assert_eq!(plan.untouched(&["deis"].into()), Vec::<String>::new());
    }

    #[test]
    fn databases_holding_data_are_named_and_recreated_only_when_the_dump_creates_them() {
        let plan = RestorePlan::new(&cluster(&[
            ("deis", relations(4)),
            ("keep", relations(1)),
            ("locked", Contents::NoConnections),
            ("postgres", Contents::Empty),
        ]));
        assert_eq!(
            plan.live_data(),
            [
                "database deis holds 4 tables (schema public: api_app, ...)",
                "database keep holds 1 table (schema public: api_app)",
                "database locked holds contents that cannot be checked (it does not allow connections)",
            ]
        );
        assert_eq!(
            plan.on_create("deis"),
            OnCreate::DropAndRecreate {
                found: "4 tables (schema public: api_app, ...)".into()
            }
        );
        assert!(matches!(
            plan.on_create("locked"),
            OnCreate::DropAndRecreate { .. }
        ));
        assert_eq!(
            plan.untouched(&["deis", "locked"].into()),
            ["database keep (1 table (schema public: api_app))"]
        );
        assert_eq!(plan.prologue(), "", "postgres is empty");
    }

    #[test]
    fn a_postgres_database_holding_data_is_live_data_and_emptied_first_when_forced() {
        let plan = RestorePlan::new(&cluster(&[("postgres", relations(1))]));
        assert_eq!(plan.live_data().len(), 1);
        assert!(plan.maintenance_db_data().is_some());
        let prologue = plan.prologue();
        assert!(prologue.starts_with("\\connect template1\n"), "{prologue}");
        assert!(prologue.contains("DROP DATABASE \"postgres\";\nCREATE DATABASE postgres"));
        assert!(prologue.ends_with("\\connect postgres\n"), "{prologue}");
    }

    #[test]
    fn names_are_quoted_for_sql() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's\\x"), "E'it''s\\\\x'");
        let sql = RestorePlan::drop_database_sql("odd'name");
        assert!(sql.contains("datname = E'odd''name'"), "{sql}");
        assert!(sql.ends_with("DROP DATABASE \"odd'name\";\n"), "{sql}");
    }
}
