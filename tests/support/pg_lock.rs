//! A PostgreSQL session in the test bed's database container holding a table lock, so that
//! `pg_dumpall` blocks on it without producing a byte: how a dump "stuck on a lock" is made.
#![allow(dead_code)]

use super::{docker, unique, wait_until, Run};
use std::io::Write;
use std::process::{Child, Command, Stdio};

/// Runs one SQL command as postgres in `container`; its rows unaligned.
pub fn sql(container: &str, command: &str) -> Run {
    docker(&[
        "exec",
        container,
        "sudo",
        "-u",
        "postgres",
        "psql",
        "-X",
        "-At",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        command,
    ])
}

/// A psql session in the database container holding an ACCESS EXCLUSIVE lock on a table, so
/// that pg_dumpall blocks on it without a byte of output; the session ends when dropped.
pub struct LockHolder {
    psql: Child,
    container: String,
    table: String,
}

impl LockHolder {
    pub fn start(container: &str) -> Self {
        let table = unique("locked").replace('-', "_");
        sql(container, &format!("CREATE TABLE {table} (id int)")).assert_ok();
        let mut child = Command::new("docker")
            .args(["exec", "-i", container, "sudo", "-u", "postgres"])
            .args(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker exec psql");
        let locking = format!(
            "BEGIN;\nLOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(600);\n"
        );
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(locking.as_bytes()).unwrap();
        let holder = LockHolder {
            psql: child,
            container: container.into(),
            table,
        };
        let held = format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             WHERE c.relname = '{}' AND l.mode = 'AccessExclusiveLock' AND l.granted",
            holder.table
        );
        let taken = wait_until(30_000, || sql(container, &held).stdout.trim() == "1");
        assert!(taken, "the lock on {} was not taken", holder.table);
        holder
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        // end the sleeping session in the container and the local docker exec; the table
        // goes last (a dump still reading it may hold it for a moment: a bounded wait)
        let terminate = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND query LIKE '%pg_sleep(600)%'";
        sql(&self.container, terminate);
        let _ = self.psql.kill();
        let _ = self.psql.wait();
        let drop_table = format!(
            "SET lock_timeout = '20s'; DROP TABLE IF EXISTS {}",
            self.table
        );
        sql(&self.container, &drop_table);
    }
}
