//! What the target cluster holds before a restore writes anything: its roles, and for each
//! database but `template0`/`template1` whether it holds user relations (any table, view,
//! sequence or foreign table outside `pg_catalog`, `information_schema` and the `pg_toast`
//! schemas). Read with read-only `psql` queries exec'd as the database user, each bounded by
//! `timeouts.request`. Only names are read, never data.

use super::DatabaseRestoreError;
use crate::config::DatabaseSettings;
use crate::docker::{describe_command, DockerClient};
use crate::jobs::database::as_database_user;
use std::collections::BTreeSet;

/// How many relation names of a database are kept for messages.
const SAMPLE: usize = 8;
/// The most output one inspection query may print.
const OUTPUT_LIMIT: usize = 4 << 20;

/// The target cluster as inspected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetCluster {
    pub roles: BTreeSet<String>,
    /// Every database but `template0` and `template1`, by name.
    pub databases: Vec<TargetDatabase>,
}

/// One database of the target cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetDatabase {
    pub name: String,
    pub contents: Contents,
}

/// What a database holds, as far as a restore cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contents {
    /// No user relation.
    Empty,
    /// User relations: how many tables, how many other relations, and the first few names
    /// (schema, name), tables first.
    Relations {
        tables: u64,
        others: u64,
        sample: Vec<(String, String)>,
    },
    /// The database does not accept connections, so what it holds is unknown.
    NoConnections,
}

impl Contents {
    /// True unless the database is known to be empty.
    pub fn holds_data(&self) -> bool {
        !matches!(self, Contents::Empty)
    }

    /// What it holds, for messages: `4 tables and 3 other relations (schema public: a, b)`.
    pub fn describe(&self) -> String {
        match self {
            Contents::Empty => "no user relation".into(),
            Contents::NoConnections => {
                "contents that cannot be checked (it does not allow connections)".into()
            }
            Contents::Relations {
                tables,
                others,
                sample,
            } => {
                let mut text = match (tables, others) {
                    (t, 0) => plural(*t, "table"),
                    (0, o) => plural(*o, "relation"),
                    (t, o) => format!(
                        "{} and {}",
                        plural(*t, "table"),
                        plural(*o, "other relation")
                    ),
                };
                let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
                for (schema, name) in sample {
                    match groups.iter_mut().find(|(s, _)| s == schema) {
                        Some((_, names)) => names.push(name),
                        None => groups.push((schema.clone(), vec![name])),
                    }
                }
                let listed: Vec<String> = groups
                    .iter()
                    .map(|(schema, names)| format!("schema {schema}: {}", names.join(", ")))
                    .collect();
                let more = if (tables + others) as usize > sample.len() {
                    ", ..."
                } else {
                    ""
                };
                if !listed.is_empty() {
                    text.push_str(&format!(" ({}{more})", listed.join("; ")));
                }
                text
            }
        }
    }
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Roles and databases (with whether they accept connections), one query.
const CLUSTER_QUERY: &str = "SELECT 'role', rolname, '' FROM pg_catalog.pg_roles \
UNION ALL SELECT 'database', datname, CASE WHEN datallowconn THEN 'y' ELSE 'n' END \
FROM pg_catalog.pg_database WHERE datname NOT IN ('template0', 'template1')";

/// A database's user relations: schema, name, kind, count of all, count of tables.
fn relations_query() -> String {
    format!(
        "SELECT n.nspname, c.relname, c.relkind, count(*) OVER (), \
         sum(CASE WHEN c.relkind IN ('r', 'p') THEN 1 ELSE 0 END) OVER () \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
         AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
         ORDER BY c.relkind NOT IN ('r', 'p'), n.nspname, c.relname LIMIT {SAMPLE}"
    )
}

/// Reads the target cluster in `container` (read-only).
pub async fn inspect_target(
    docker: &DockerClient,
    container: &str,
    db: &DatabaseSettings,
) -> Result<TargetCluster, DatabaseRestoreError> {
    let rows = query(docker, container, db, "postgres", CLUSTER_QUERY, 3).await?;
    let mut cluster = TargetCluster::default();
    let mut connectable = Vec::new();
    for row in rows {
        let [kind, name, allowed] = <[String; 3]>::try_from(row).expect("three columns");
        if kind == "role" {
            cluster.roles.insert(name);
        } else if allowed == "y" {
            connectable.push(name);
        } else {
            cluster.databases.push(TargetDatabase {
                name,
                contents: Contents::NoConnections,
            });
        }
    }
    for name in connectable {
        let rows = query(docker, container, db, &name, &relations_query(), 5).await?;
        let contents = contents_of(&rows).map_err(|detail| DatabaseRestoreError::Inspect {
            container: container.into(),
            database: name.clone(),
            detail,
        })?;
        cluster.databases.push(TargetDatabase { name, contents });
    }
    cluster.databases.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(cluster)
}

/// What the rows of [`relations_query`] say.
fn contents_of(rows: &[Vec<String>]) -> Result<Contents, String> {
    let Some(first) = rows.first() else {
        return Ok(Contents::Empty);
    };
    let count = |text: &str| {
        text.parse::<u64>()
            .map_err(|_| format!("unexpected count {text:?} in psql's output"))
    };
    let all = count(&first[3])?;
    let tables = count(&first[4])?;
    Ok(Contents::Relations {
        tables,
        others: all.saturating_sub(tables),
        sample: rows.iter().map(|r| (r[0].clone(), r[1].clone())).collect(),
    })
}

/// Runs `sql` in `database` with psql (unaligned, fields and rows ended by zero bytes) and
/// returns its rows of `columns` fields.
async fn query(
    docker: &DockerClient,
    container: &str,
    db: &DatabaseSettings,
    database: &str,
    sql: &str,
    columns: usize,
) -> Result<Vec<Vec<String>>, DatabaseRestoreError> {
    let conninfo = format!(
        "dbname='{}'",
        database.replace('\\', "\\\\").replace('\'', "\\'")
    );
    let spec = as_database_user(
        db,
        &[
            "psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-z",
            "-0",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &conninfo,
            "-c",
            sql,
        ],
    );
    let failed = |detail: String| DatabaseRestoreError::Inspect {
        container: container.into(),
        database: database.into(),
        detail,
    };
    let done = docker.run_exec(container, &spec, OUTPUT_LIMIT).await?;
    if done.code != 0 {
        return Err(failed(format!(
            "`{}` exited with code {}; stderr: {}",
            describe_command(&spec),
            done.code,
            done.stderr.text()
        )));
    }
    if done.stdout.is_truncated() {
        return Err(failed(format!(
            "psql printed more than {OUTPUT_LIMIT} bytes"
        )));
    }
    parse_rows(done.stdout.bytes(), columns).map_err(failed)
}

/// Splits psql's `-A -t -z -0` output into rows of `columns` fields.
fn parse_rows(output: &[u8], columns: usize) -> Result<Vec<Vec<String>>, String> {
    let mut fields: Vec<&[u8]> = output.split(|&b| b == 0).collect();
    if fields.last().is_some_and(|f| f.is_empty()) {
        fields.pop();
    }
    if !fields.len().is_multiple_of(columns) {
        return Err(format!(
            "psql printed {} fields, not rows of {columns}",
            fields.len()
        ));
    }
    Ok(fields
        .chunks(columns)
        .map(|row| {
            row.iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psql_rows_split_on_zero_bytes_whatever_the_names_hold() {
        let out = b"role\0deis\0\0database\0odd|name\nx\0y\0";
        let rows = parse_rows(out, 3).unwrap();
        assert_eq!(rows[0], ["role", "deis", ""]);
        assert_eq!(rows[1], ["database", "odd|name\nx", "y"]);
        assert_eq!(parse_rows(b"", 3).unwrap(), Vec::<Vec<String>>::new());
        assert!(parse_rows(b"a\0b\0", 3).is_err());
    }

    #[test]
    fn contents_count_tables_and_list_names_by_schema() {
        assert_eq!(contents_of(&[]).unwrap(), Contents::Empty);
        let row = |s: &str, n: &str, k: &str| {
            vec![s.into(), n.into(), k.into(), "12".into(), "10".into()]
        };
        let rows = vec![
            row("public", "api_app", "r"),
            row("public", "api_key", "r"),
            row("deis", "notes", "r"),
        ];
        let contents = contents_of(&rows).unwrap();
        assert!(contents.holds_data());
        assert_eq!(
            contents.describe(),
            "10 tables and 2 other relations (schema public: api_app, api_key; schema deis: notes, ...)"
        );
        let one = Contents::Relations {
            tables: 1,
            others: 0,
            sample: vec![("public".into(), "t".into())],
        };
        assert_eq!(one.describe(), "1 table (schema public: t)");
        assert!(contents_of(&[vec![
            "public".into(),
            "t".into(),
            "r".into(),
            "x".into(),
            "1".into()
        ]])
        .is_err());
    }
}
