//! PostgreSQL clusters for database tests: fresh containers of the test bed's deis-database
//! image (labelled, so the test bed's teardown removes any a test leaves), SQL through psql,
//! and dumps to compare two clusters with.
#![allow(dead_code)]

use super::{docker, testbed, unique, wait_until, Run};
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs SQL in `container` as postgres through psql's stdin, stopping on the first error.
pub fn psql(container: &str, db: &str, sql: &str) {
    let mut child = Command::new("docker")
        .args(["exec", "-i", container, "sudo", "-u", "postgres"])
        .args(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("docker exec psql");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    let run: Run = child.wait_with_output().unwrap().into();
    run.assert_ok();
}

/// Drops the lines that differ between two dumps of equal clusters: versions, and the random
/// keys of `\restrict` / `\unrestrict`.
fn comparable(dump: &str) -> String {
    dump.lines()
        .filter(|l| {
            !l.starts_with("-- Dumped from")
                && !l.starts_with("-- Dumped by")
                && !l.starts_with("\\restrict ")
                && !l.starts_with("\\unrestrict ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The cluster's pg_dumpall, comparable with another's.
pub fn comparable_dump(container: &str) -> String {
    let run = docker(&["exec", container, "sudo", "-u", "postgres", "pg_dumpall"]);
    run.assert_ok();
    comparable(&run.stdout)
}

/// One database's pg_dump (with its CREATE DATABASE), comparable with another's.
pub fn comparable_database_dump(container: &str, db: &str) -> String {
    let run = docker(&[
        "exec", container, "sudo", "-u", "postgres", "pg_dump", "--create", "-d", db,
    ]);
    run.assert_ok();
    comparable(&run.stdout)
}

/// The rows of one query, unaligned.
pub fn rows(container: &str, db: &str, query: &str) -> String {
    let run = docker(&[
        "exec", container, "sudo", "-u", "postgres", "psql", "-X", "-At", "-d", db, "-c", query,
    ]);
    run.assert_ok();
    run.stdout.trim().to_string()
}

/// A fresh database container from the test bed's image, removed when dropped.
pub struct FreshContainer {
    pub name: String,
}

impl FreshContainer {
    /// A bare cluster: only the `postgres` role and database.
    pub fn start(password: &str) -> Self {
        Self::start_with(&[("POSTGRES_PASSWORD", password)])
    }

    /// A new Deis cluster as deis-database makes it on a first boot without WAL-E backups:
    /// also the role `deis` (with `password`) and its empty database `deis`.
    pub fn start_deis(password: &str) -> Self {
        Self::start_with(&[
            ("DEIS_DATABASE_USER", "deis"),
            ("DEIS_DATABASE_PASSWORD", password),
        ])
    }

    /// A container with these environment variables, once postgres accepts connections.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let name = unique("deis-backup-restore-target");
        let label = testbed("TESTBED_DB_LABEL");
        let image = testbed("TESTBED_DB_IMAGE");
        let mut args = vec![
            "run".to_string(),
            "-d".into(),
            "--name".into(),
            name.clone(),
        ];
        args.extend(["--label".into(), label]);
        for (key, value) in env {
            args.extend(["-e".into(), format!("{key}={value}")]);
        }
        args.push(image);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args).assert_ok();
        let container = FreshContainer { name };
        let ready = wait_until(90_000, || {
            docker(&[
                "exec",
                "-u",
                "postgres",
                &container.name,
                "pg_isready",
                "-q",
            ])
            .code
                == 0
        });
        assert!(ready, "postgres in {} did not become ready", container.name);
        container
    }
}

impl Drop for FreshContainer {
    fn drop(&mut self) {
        docker(&["rm", "-f", "-v", &self.name]);
    }
}

/// The tables of a Deis controller, with a few rows (a newline and a fake dump header in
/// one value, which a dump reader must not take for a line of the dump).
pub const DEIS_SCHEMA: &str = r#"
CREATE TABLE auth_user (id serial PRIMARY KEY, username varchar(150) UNIQUE NOT NULL,
    email varchar(254) NOT NULL, password varchar(128) NOT NULL, is_superuser boolean NOT NULL);
CREATE TABLE api_app (uuid uuid PRIMARY KEY, id varchar(64) UNIQUE NOT NULL,
    owner_id integer NOT NULL REFERENCES auth_user(id), structure text NOT NULL,
    created timestamptz NOT NULL DEFAULT '2015-06-01T12:00:00Z');
CREATE TABLE api_key (uuid uuid PRIMARY KEY, owner_id integer NOT NULL REFERENCES auth_user(id),
    id varchar(128) NOT NULL, public text NOT NULL);
CREATE TABLE api_domain (uuid uuid PRIMARY KEY, app_id uuid NOT NULL REFERENCES api_app(uuid),
    domain text UNIQUE NOT NULL);
INSERT INTO auth_user (username, email, password, is_superuser) VALUES
    ('admin', 'admin@example.com', 'pbkdf2_sha256$12000$abc$hash=', true),
    ('dev', 'dev@example.com', 'pbkdf2_sha256$12000$def$hash=', false),
    ('ops', 'ops@example.com', 'pbkdf2_sha256$12000$ghi$hash=', false);
INSERT INTO api_app (uuid, id, owner_id, structure) VALUES
    ('00000000-0000-0000-0000-0000000000a1', 'go-example', 1, '{"web": 2}'),
    ('00000000-0000-0000-0000-0000000000a2', 'rails-shop', 2, '{"web": 1, "worker": 1}'),
    ('00000000-0000-0000-0000-0000000000a3', 'odd app', 3, E'{"web": 0}\n-- Database "fake" dump');
INSERT INTO api_key (uuid, owner_id, id, public) VALUES
    ('00000000-0000-0000-0000-0000000000b1', 1, 'admin@laptop', 'ssh-rsa AAAAB3Nza admin@laptop'),
    ('00000000-0000-0000-0000-0000000000b2', 2, 'dev@desk', 'ssh-ed25519 AAAAC3Nza dev@desk');
INSERT INTO api_domain (uuid, app_id, domain) VALUES
    ('00000000-0000-0000-0000-0000000000c1', '00000000-0000-0000-0000-0000000000a1', 'go.example.com'),
    ('00000000-0000-0000-0000-0000000000c2', '00000000-0000-0000-0000-0000000000a2', 'shop.example.com');
"#;
