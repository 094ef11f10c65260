//! Restoring a `database` set: the decompressed pg_dumpall is streamed into
//! `psql -v ON_ERROR_STOP=1` through the stdin of an exec in the target container.
//!
//! A pg_dumpall starts with `CREATE ROLE postgres;` for the superuser that every fresh
//! cluster already has; with ON_ERROR_STOP that one statement would stop the restore. The
//! [`RoleFilter`] drops exactly that line (for the configured database user, in the roles
//! section before the first `\connect`); the `ALTER ROLE` after it still applies, and every
//! other error still stops psql. A target that already holds the dump's databases fails on
//! `CREATE DATABASE`: restore into a new cluster's database container.

use super::RestoreError;
use crate::config::DatabaseSettings;
use crate::docker::{drain_output, BoundedCapture, DockerClient, DockerError, ExecSpec};
use crate::io_util::HashingReader;
use crate::jobs::database::{as_database_user, STDERR_LIMIT};
use crate::jobs::DATABASE_ARTIFACT;
use crate::runtime::{block_on, runtime};
use crate::store::{Destination, Manifest};
use bytes::Bytes;
use std::io::Read;
use tokio::io::AsyncWriteExt;

const CHUNK: usize = 256 << 10;
const HEADER_LINE_LIMIT: usize = 64 << 10;

/// Why a database restore failed.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseRestoreError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("`{command}` in container {container} failed with exit code {code} after {bytes} bytes of the dump (a pg_dumpall restores only into a new, empty cluster); stderr: {stderr}")]
    PsqlFailed {
        container: String,
        command: String,
        code: i64,
        bytes: u64,
        stderr: String,
    },
    #[error("the exec of `{command}` in container {container} broke off: {detail}")]
    Stream {
        container: String,
        command: String,
        detail: String,
    },
}

/// What a database restore did (or, with `dry_run`, would do).
#[derive(Debug, Clone)]
pub struct DatabaseRestoreReport {
    pub container: String,
    pub command: String,
    /// Uncompressed dump bytes read (and, unless a dry run, sent to psql).
    pub bytes: u64,
    /// Statements left out, e.g. `CREATE ROLE postgres;`.
    pub skipped_statements: Vec<String>,
    pub dry_run: bool,
    /// What psql printed on stderr (notices), if anything.
    pub stderr: String,
}

/// The psql command that replays a dump, as the database user.
pub fn restore_command(db: &DatabaseSettings) -> ExecSpec {
    let mut spec = as_database_user(
        db,
        &[
            "psql",
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            "postgres",
        ],
    );
    spec.attach_stdin = true;
    spec
}

/// Restores a `database` set into the PostgreSQL of `container`.
pub fn restore_database(
    dest: &dyn Destination,
    manifest: &Manifest,
    db: &DatabaseSettings,
    container: &str,
    dry_run: bool,
) -> Result<DatabaseRestoreReport, RestoreError> {
    let set = manifest.set_ref();
    let artifact = super::artifact_of(manifest, DATABASE_ARTIFACT)?;
    let archive_err = |source| RestoreError::Archive {
        set: set.clone(),
        artifact: artifact.name.clone(),
        source,
    };
    let spec = restore_command(db);
    let command = crate::docker::describe_command(&spec);
    let docker = DockerClient::from_env();
    block_on(docker.running_container(container)).map_err(DatabaseRestoreError::from)?;

    let mut hashing = HashingReader::new(dest.open_artifact(&set, &artifact.name)?);
    let mut decoder = zstd::stream::read::Decoder::new(&mut hashing)
        .map_err(archive_err)?
        .single_frame();
    let mut filter = RoleFilter::new(&db.user);
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0u64;

    let mut feed = |send: &mut dyn FnMut(Vec<u8>) -> bool| -> Result<bool, RestoreError> {
        loop {
            let n = decoder.read(&mut buf).map_err(archive_err)?;
            let mut out = Vec::with_capacity(n + 64);
            if n == 0 {
                filter.finish(&mut out);
            } else {
                bytes += n as u64;
                filter.process(&buf[..n], &mut out);
            }
            if !out.is_empty() && !send(out) {
                return Ok(false);
            }
            if n == 0 {
                return Ok(true);
            }
        }
    };

    let (completed, psql) = if dry_run {
        (feed(&mut |_| true)?, None)
    } else {
        let session =
            block_on(docker.start_exec(container, &spec)).map_err(DatabaseRestoreError::from)?;
        let exec_id = session.id.clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
        let (mut input, mut output) = (session.input, session.output);
        let task = runtime().spawn(async move {
            let write = async {
                while let Some(chunk) = rx.recv().await {
                    input.write_all(&chunk).await?;
                }
                input.shutdown().await
            };
            let mut stdout = BoundedCapture::new(STDERR_LIMIT);
            let mut stderr = BoundedCapture::new(STDERR_LIMIT);
            let read = drain_output(&mut output, &mut stdout, &mut stderr);
            let (written, read) = tokio::join!(write, read);
            (written, read, stderr)
        });
        let completed = feed(&mut |chunk| tx.blocking_send(Bytes::from(chunk)).is_ok());
        drop(tx);
        let (written, read, stderr) = block_on(task).map_err(|e| DatabaseRestoreError::Stream {
            container: container.into(),
            command: command.clone(),
            detail: e.to_string(),
        })?;
        // a damaged artifact is the cause of whatever psql made of it: report that first
        let completed = completed?;
        let code =
            block_on(docker.exit_code(container, &exec_id)).map_err(DatabaseRestoreError::from)?;
        if code != 0 {
            return Err(DatabaseRestoreError::PsqlFailed {
                container: container.into(),
                command,
                code,
                bytes,
                stderr: stderr.text(),
            }
            .into());
        }
        if let Err(detail) =
            read.and_then(|()| written.map_err(|e| format!("writing to psql's stdin failed: {e}")))
        {
            return Err(DatabaseRestoreError::Stream {
                container: container.into(),
                command,
                detail,
            }
            .into());
        }
        (completed, Some(stderr))
    };
    if !completed {
        return Err(DatabaseRestoreError::Stream {
            container: container.into(),
            command,
            detail: "psql stopped reading before the end of the dump".into(),
        }
        .into());
    }
    drop(decoder);
    let (size, sha256) = hashing.finish().map_err(archive_err)?;
    artifact
        .check_read(size, &sha256)
        .map_err(|detail| RestoreError::Corrupt {
            set,
            artifact: artifact.name.clone(),
            detail,
        })?;
    Ok(DatabaseRestoreReport {
        container: container.into(),
        command,
        bytes,
        skipped_statements: filter.skipped,
        dry_run,
        stderr: psql.map(|s| s.text()).unwrap_or_default(),
    })
}

/// Drops `CREATE ROLE <user>;` from the roles section of a pg_dumpall stream (the lines
/// before the first `\connect`); passes everything else through unchanged.
#[derive(Debug)]
pub struct RoleFilter {
    targets: [String; 2],
    pending: Vec<u8>,
    done: bool,
    /// The statements left out.
    pub skipped: Vec<String>,
}

impl RoleFilter {
    /// A filter for the superuser `user` that the target cluster already has.
    pub fn new(user: &str) -> Self {
        Self {
            targets: [
                format!("CREATE ROLE {user};"),
                format!("CREATE ROLE \"{user}\";"),
            ],
            pending: Vec::new(),
            done: false,
            skipped: Vec::new(),
        }
    }

    /// Filters the next bytes of the dump into `out`.
    pub fn process(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.done {
            out.extend_from_slice(input);
            return;
        }
        self.pending.extend_from_slice(input);
        let mut start = 0;
        while let Some(pos) = self.pending[start..].iter().position(|&b| b == b'\n') {
            let line = &self.pending[start..start + pos];
            let end = start + pos + 1;
            if self.targets.iter().any(|t| t.as_bytes() == line) {
                self.skipped
                    .push(String::from_utf8_lossy(line).into_owned());
            } else {
                out.extend_from_slice(&self.pending[start..end]);
                if line.starts_with(b"\\connect ") {
                    self.done = true;
                    out.extend_from_slice(&self.pending[end..]);
                    self.pending = Vec::new();
                    return;
                }
            }
            start = end;
        }
        self.pending.drain(..start);
        if self.pending.len() > HEADER_LINE_LIMIT {
            self.finish(out);
        }
    }

    /// Passes on what is still held back; later bytes go through unfiltered.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.pending);
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "SET x = 1;\nCREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER;\n\
CREATE ROLE deis;\n\\connect template1\nCREATE ROLE postgres;\nSELECT 1;\n";

    #[test]
    fn filter_drops_only_the_superuser_role_before_the_first_connect() {
        for chunk in [1, 2, 5, 11, 1000] {
            let mut f = RoleFilter::new("postgres");
            let mut out = Vec::new();
            for part in DUMP.as_bytes().chunks(chunk) {
                f.process(part, &mut out);
            }
            f.finish(&mut out);
            let expected = DUMP.replacen("CREATE ROLE postgres;\n", "", 1);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "chunk {chunk}");
            assert_eq!(f.skipped, ["CREATE ROLE postgres;"]);
        }
    }

    #[test]
    fn filter_handles_quoted_names_and_a_dump_without_connect() {
        let mut f = RoleFilter::new("deis-db");
        let mut out = Vec::new();
        f.process(
            b"CREATE ROLE \"deis-db\";\nCREATE ROLE other;\nno newline",
            &mut out,
        );
        f.finish(&mut out);
        assert_eq!(out, b"CREATE ROLE other;\nno newline");
    }

    #[test]
    fn restore_command_stops_on_errors() {
        let spec = restore_command(&DatabaseSettings::default());
        assert!(spec.attach_stdin);
        assert_eq!(spec.cmd[..3], ["sudo", "-u", "postgres"]);
        assert!(spec.cmd.contains(&"ON_ERROR_STOP=1".to_string()));
    }
}
