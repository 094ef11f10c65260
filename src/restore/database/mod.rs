//! Restoring a `database` set: the decompressed pg_dumpall is streamed into
//! `psql -v ON_ERROR_STOP=1` through the stdin of an exec in the target container.
//!
//! Safe by default: before a byte goes to psql the target cluster is inspected (read-only,
//! [`target`]) and the restore is refused, naming what was found, when any database holds
//! user relations, unless forced. A fresh Deis cluster is fine: its roles (`postgres`, and
//! `deis` from deis-database's first boot) keep their `CREATE ROLE` out of the stream, and
//! its empty `deis` database is used as it is ([`filter`]); the `ALTER ROLE` / `ALTER
//! DATABASE` after them still apply. Forced, the databases holding data that the dump
//! creates are dropped just before it creates them (and `postgres`, which the dump fills
//! without creating, is emptied first); roles are never dropped. Every other error still
//! stops psql. A dry run inspects the target and reads the whole dump through the same
//! filter, so its plan is the real one, and writes nothing.

mod filter;
mod plan;
mod target;

pub use filter::{DumpFilter, FilterEvent};
pub use plan::{OnCreate, RestorePlan};
pub use target::{inspect_target, Contents, TargetCluster, TargetDatabase};

use super::RestoreError;
use crate::config::{DatabaseSettings, Settings};
use crate::docker::{drain_output, BoundedCapture, DockerClient, DockerError, ExecSpec};
use crate::io_util::HashingReader;
use crate::jobs::database::{as_database_user, STDERR_LIMIT};
use crate::jobs::DATABASE_ARTIFACT;
use crate::runtime::{block_on, runtime};
use crate::store::{Destination, Manifest};
use bytes::Bytes;
use std::collections::BTreeSet;
use std::io::Read;
use tokio::io::AsyncWriteExt;

const CHUNK: usize = 256 << 10;

/// Why a database restore failed.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseRestoreError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error("container {container} already holds data: {found}; nothing was written. Restore into a new cluster, or pass --force to drop and recreate the databases the dump creates (roles are kept); --dry-run shows the plan")]
    LiveData { container: String, found: String },
    #[error(
        "cannot inspect database {database} in container {container} before restoring: {detail}"
    )]
    Inspect {
        container: String,
        database: String,
        detail: String,
    },
    #[error("`{command}` in container {container} failed with exit code {code} after {bytes} bytes of the dump (psql stops at the first error); stderr: {stderr}")]
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
    /// What the filter left out, replaced or added, in dump order.
    pub events: Vec<FilterEvent>,
    /// What `postgres` held when a forced restore emptied it first.
    pub emptied_postgres: Option<String>,
    /// The target's databases the dump does not create, left as they are (described).
    pub untouched: Vec<String>,
    /// Dry run only: why a restore without `--force` is refused (the databases holding data).
    pub refusal: Option<String>,
    pub dry_run: bool,
    /// What psql printed on stderr (notices), if anything.
    pub stderr: String,
}

/// Whether to write, and over what.
#[derive(Debug, Clone, Copy, Default)]
pub struct DatabaseRestoreMode {
    /// Inspect and read everything, write nothing.
    pub dry_run: bool,
    /// Restore over databases that hold data (dropping those the dump creates).
    pub force: bool,
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
    settings: &Settings,
    container: &str,
    mode: DatabaseRestoreMode,
) -> Result<DatabaseRestoreReport, RestoreError> {
    let set = manifest.set_ref();
    let artifact = super::artifact_of(manifest, DATABASE_ARTIFACT)?;
    let archive_err = |source| RestoreError::Archive {
        set: set.clone(),
        artifact: artifact.name.clone(),
        source,
    };
    let db = &settings.database;
    let spec = restore_command(db);
    let command = crate::docker::describe_command(&spec);
    let docker = DockerClient::from_env().with_timeouts(&settings.timeouts);
    block_on(docker.running_container(container)).map_err(DatabaseRestoreError::from)?;

    let target = block_on(inspect_target(&docker, container, db))?;
    let plan = RestorePlan::new(&target);
    let live = plan.live_data();
    let refusal = (!mode.force && !live.is_empty()).then(|| live.join("; "));
    if let (Some(found), false) = (&refusal, mode.dry_run) {
        return Err(DatabaseRestoreError::LiveData {
            container: container.into(),
            found: found.clone(),
        }
        .into());
    }

    let mut hashing = HashingReader::new(dest.open_artifact(&set, &artifact.name)?);
    let decoder = zstd::stream::read::Decoder::new(&mut hashing)
        .map_err(archive_err)?
        .single_frame();
    let mut feeder = Feeder {
        decoder,
        filter: DumpFilter::new(&plan),
        prologue: plan.prologue().into_bytes(),
        buf: vec![0u8; CHUNK],
        bytes: 0,
    };
    let stderr = if mode.dry_run {
        while feeder.next_chunk().map_err(archive_err)?.is_some() {}
        String::new()
    } else {
        stream_into_psql(
            &docker,
            container,
            &spec,
            &command,
            &mut feeder,
            &archive_err,
        )?
    };
    let Feeder {
        decoder,
        filter,
        bytes,
        ..
    } = feeder;
    drop(decoder);
    let (size, sha256) = hashing.finish().map_err(archive_err)?;
    artifact
        .check_read(size, &sha256)
        .map_err(|detail| RestoreError::Corrupt {
            set: set.clone(),
            artifact: artifact.name.clone(),
            detail,
        })?;
    let created: BTreeSet<&str> = filter
        .events
        .iter()
        .filter_map(|e| match e {
            FilterEvent::DatabaseCreated { name }
            | FilterEvent::DatabaseUsed { name, .. }
            | FilterEvent::DatabaseRecreated { name, .. } => Some(name.as_str()),
            FilterEvent::RoleSkipped { .. } => None,
        })
        .collect();
    let untouched = plan.untouched(&created);
    Ok(DatabaseRestoreReport {
        container: container.into(),
        command,
        bytes,
        untouched,
        events: filter.events,
        emptied_postgres: plan.maintenance_db_data(),
        refusal,
        dry_run: mode.dry_run,
        stderr,
    })
}

/// The SQL that goes to psql: the plan's prologue, then the dump through the filter.
struct Feeder<'p, R> {
    decoder: R,
    filter: DumpFilter<'p>,
    prologue: Vec<u8>,
    buf: Vec<u8>,
    /// Dump bytes read so far.
    bytes: u64,
}

impl<R: Read> Feeder<'_, R> {
    /// The next piece of SQL (possibly empty), or `None` after the end of the dump.
    fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        if !self.prologue.is_empty() {
            return Ok(Some(std::mem::take(&mut self.prologue)));
        }
        if self.buf.is_empty() {
            return Ok(None);
        }
        let n = self.decoder.read(&mut self.buf)?;
        let mut out = Vec::with_capacity(n + 64);
        if n == 0 {
            self.filter.finish(&mut out);
            self.buf = Vec::new();
        } else {
            self.bytes += n as u64;
            self.filter.process(&self.buf[..n], &mut out);
        }
        Ok(Some(out))
    }
}

/// Runs `spec` (psql) in `container` fed with everything `feeder` gives; returns psql's
/// stderr once psql read all of it and exited 0.
fn stream_into_psql<R: Read>(
    docker: &DockerClient,
    container: &str,
    spec: &ExecSpec,
    command: &str,
    feeder: &mut Feeder<'_, R>,
    archive_err: &dyn Fn(std::io::Error) -> RestoreError,
) -> Result<String, RestoreError> {
    let stream_err = |detail: String| DatabaseRestoreError::Stream {
        container: container.into(),
        command: command.into(),
        detail,
    };
    let session =
        block_on(docker.start_exec(container, spec)).map_err(DatabaseRestoreError::from)?;
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
    // Ok(true): all sent; Ok(false): psql stopped reading first
    let fed = (|| {
        while let Some(chunk) = feeder.next_chunk()? {
            if !chunk.is_empty() && tx.blocking_send(Bytes::from(chunk)).is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    })();
    drop(tx);
    let (written, read, stderr) = block_on(task).map_err(|e| stream_err(e.to_string()))?;
    // a damaged artifact is the cause of whatever psql made of it: report that first
    let fed = fed.map_err(archive_err)?;
    let code =
        block_on(docker.exit_code(container, &exec_id)).map_err(DatabaseRestoreError::from)?;
    if code != 0 {
        return Err(DatabaseRestoreError::PsqlFailed {
            container: container.into(),
            command: command.into(),
            code,
            bytes: feeder.bytes,
            stderr: stderr.text(),
        }
        .into());
    }
    read.and_then(|()| written.map_err(|e| format!("writing to psql's stdin failed: {e}")))
        .map_err(stream_err)?;
    if !fed {
        return Err(stream_err("psql stopped reading before the end of the dump".into()).into());
    }
    Ok(stderr.text())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "SET x = 1;\nCREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER;\n\
CREATE ROLE deis;\n\\connect template1\nCREATE ROLE postgres;\nSELECT 1;\n";

    fn plan_with_roles(roles: &[&str]) -> RestorePlan {
        RestorePlan::new(&TargetCluster {
            roles: roles.iter().map(|r| r.to_string()).collect(),
            databases: Vec::new(),
        })
    }

    fn skipped(events: &[FilterEvent]) -> Vec<&str> {
        events
            .iter()
            .filter_map(|e| match e {
                FilterEvent::RoleSkipped { statement } => Some(statement.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn filter_drops_only_existing_roles_before_the_first_connect() {
        let plan = plan_with_roles(&["postgres"]);
        for chunk in [1, 2, 5, 11, 1000] {
            let mut f = DumpFilter::new(&plan);
            let mut out = Vec::new();
            for part in DUMP.as_bytes().chunks(chunk) {
                f.process(part, &mut out);
            }
            f.finish(&mut out);
            let expected = DUMP.replacen("CREATE ROLE postgres;\n", "", 1);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "chunk {chunk}");
            assert_eq!(skipped(&f.events), ["CREATE ROLE postgres;"]);
        }
    }

    #[test]
    fn filter_handles_quoted_names_and_a_dump_without_connect() {
        let plan = plan_with_roles(&["deis-db"]);
        let mut f = DumpFilter::new(&plan);
        let mut out = Vec::new();
        f.process(
            b"CREATE ROLE \"deis-db\";\nCREATE ROLE other;\nno newline",
            &mut out,
        );
        f.finish(&mut out);
        assert_eq!(out, b"CREATE ROLE other;\nno newline");
    }

    #[test]
    fn the_feeder_sends_the_prologue_first_and_counts_dump_bytes() {
        let plan = RestorePlan::new(&TargetCluster {
            roles: ["postgres".to_string()].into(),
            databases: vec![TargetDatabase {
                name: "postgres".into(),
                contents: Contents::NoConnections,
            }],
        });
        let mut feeder = Feeder {
            decoder: DUMP.as_bytes(),
            filter: DumpFilter::new(&plan),
            prologue: plan.prologue().into_bytes(),
            buf: vec![0; 7],
            bytes: 0,
        };
        let mut sent = Vec::new();
        while let Some(chunk) = feeder.next_chunk().unwrap() {
            sent.extend(chunk);
        }
        let sent = String::from_utf8(sent).unwrap();
        assert!(sent.starts_with(&plan.prologue()), "{sent}");
        assert!(sent.ends_with(&DUMP.replacen("CREATE ROLE postgres;\n", "", 1)));
        assert_eq!(feeder.bytes, DUMP.len() as u64);
    }

    #[test]
    fn restore_command_stops_on_errors() {
        let spec = restore_command(&DatabaseSettings::default());
        assert!(spec.attach_stdin);
        assert_eq!(spec.cmd[..3], ["sudo", "-u", "postgres"]);
        assert!(spec.cmd.contains(&"ON_ERROR_STOP=1".to_string()));
    }
}
