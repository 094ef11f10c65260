//! The `database` job: `pg_dumpall` exec'd in the database container through the Docker
//! Engine API, its stdout streamed through zstd into the destination chunk by chunk.
//!
//! A run succeeds only when the exec exits 0, its stream ended cleanly, and the dump ends
//! with pg_dumpall's completion trailer. Memory stays bounded: a few batches of output in
//! flight (`CHANNEL_BATCHES` of `BATCH_BYTES`), zstd's state (it compresses inline: the
//! dump arrives far slower than one core compresses), a short tail of the dump, and at most
//! [`STDERR_LIMIT`] bytes of stderr.

use super::{Backup, Job, JobError, Run, Workers, DATABASE_ARTIFACT};
use crate::config::{DatabaseSettings, ExecMode};
use crate::docker::{
    classify, next_output, BoundedCapture, DockerClient, DockerError, ExecChunk, ExecSpec,
};
use crate::runtime::{block_on, runtime};
use crate::store::JobKind;
use bytes::Bytes;
use serde::Serialize;
use std::io::{self, Write};

/// How much of a command's stderr is kept for the error message.
pub const STDERR_LIMIT: usize = 64 << 10;

/// The line pg_dumpall writes last (followed by `--` and a blank line).
pub const DUMP_TRAILER: &str = "-- PostgreSQL database cluster dump complete";

const TAIL_BYTES: usize = 512;
const LINE_LIMIT: usize = 4096;
/// Stdout frames are handed from the reading task to the writing thread in batches of about
/// this many bytes (each frame is a few KiB): one hand-off, and one wake-up of the writer,
/// per batch instead of per frame.
const BATCH_BYTES: usize = 256 << 10;
/// Batches in flight between the reading task and the writing thread.
const CHANNEL_BATCHES: usize = 4;

/// Why a database backup failed.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(
        "the output of `{command}` in container {container} broke off: {detail}; no set was kept"
    )]
    Stream {
        container: String,
        command: String,
        detail: String,
    },
    #[error("cannot write the dump of container {container} to the destination")]
    Write {
        container: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` in container {container} failed with exit code {code}; stderr: {stderr}")]
    DumpFailed {
        container: String,
        command: String,
        code: i64,
        stderr: String,
    },
    #[error("the dump of container {container} is incomplete ({detail}); stderr: {stderr}")]
    Incomplete {
        container: String,
        detail: String,
        stderr: String,
    },
}

/// The command that dumps the cluster, as configured.
pub fn dump_command(db: &DatabaseSettings) -> ExecSpec {
    as_database_user(db, &["pg_dumpall"])
}

/// `cmd` run as the database user, by sudo or by the exec's user option.
pub fn as_database_user(db: &DatabaseSettings, cmd: &[&str]) -> ExecSpec {
    let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
    match db.exec_mode {
        ExecMode::Sudo => ExecSpec {
            cmd: ["sudo", "-u", db.user.as_str()]
                .iter()
                .map(|s| s.to_string())
                .chain(cmd)
                .collect(),
            user: None,
            attach_stdin: false,
        },
        ExecMode::User => ExecSpec {
            cmd,
            user: Some(db.user.clone()),
            attach_stdin: false,
        },
    }
}

/// What the dump itself says about the cluster.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct DumpFacts {
    /// From the first `-- Dumped from database version X` line.
    pub server_version: Option<String>,
    /// From the `-- Database "NAME" dump` headers, in dump order.
    pub databases: Vec<String>,
}

/// Reads a pg_dumpall stream as it passes: database headers, server version, and the tail.
/// Lines inside `COPY ... FROM stdin;` data blocks are never taken for headers.
#[derive(Debug, Default)]
pub struct DumpScanner {
    facts: DumpFacts,
    line: Vec<u8>,
    line_too_long: bool,
    in_copy: bool,
    tail: Vec<u8>,
}

impl DumpScanner {
    /// Takes the next bytes of the dump. Lines are looked at in place (a copy is made only of
    /// a line split between two chunks), so a data row costs one `memchr` and a comparison.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.keep_tail(bytes);
        let mut rest = bytes;
        while let Some(pos) = memchr::memchr(b'\n', rest) {
            let line = &rest[..pos];
            if self.line.is_empty() && !self.line_too_long {
                self.observe(line);
            } else {
                self.push_line_part(line);
                let carried = std::mem::take(&mut self.line);
                if !self.line_too_long {
                    self.observe(&carried);
                }
                self.line = carried;
                self.line.clear();
                self.line_too_long = false;
            }
            rest = &rest[pos + 1..];
        }
        self.push_line_part(rest);
    }

    fn keep_tail(&mut self, bytes: &[u8]) {
        if bytes.len() >= TAIL_BYTES {
            self.tail.clear();
            self.tail
                .extend_from_slice(&bytes[bytes.len() - TAIL_BYTES..]);
        } else {
            self.tail.extend_from_slice(bytes);
            let excess = self.tail.len().saturating_sub(TAIL_BYTES);
            self.tail.drain(..excess);
        }
    }

    fn push_line_part(&mut self, part: &[u8]) {
        let room = LINE_LIMIT.saturating_sub(self.line.len());
        if part.len() > room {
            self.line_too_long = true;
        }
        self.line.extend_from_slice(&part[..part.len().min(room)]);
    }

    fn observe(&mut self, line: &[u8]) {
        // an overlong line is a data row or a statement, never a line this scanner looks for
        if line.len() > LINE_LIMIT {
            return;
        }
        if self.in_copy {
            if line == b"\\." {
                self.in_copy = false;
            }
            return;
        }
        if line.starts_with(b"COPY ") && line.ends_with(b"FROM stdin;") {
            self.in_copy = true;
        } else if let Some(name) = line
            .strip_prefix(b"-- Database \"")
            .and_then(|rest| rest.strip_suffix(b"\" dump"))
        {
            self.facts
                .databases
                .push(String::from_utf8_lossy(name).into_owned());
        } else if let Some(version) = line.strip_prefix(b"-- Dumped from database version ") {
            self.facts
                .server_version
                .get_or_insert_with(|| String::from_utf8_lossy(version).trim().to_string());
        }
    }

    /// The last bytes seen, as text (for errors when stderr is empty).
    pub fn tail_text(&self) -> String {
        String::from_utf8_lossy(&self.tail).trim().to_string()
    }

    /// Checks that the dump ended with its trailer and returns what it said.
    pub fn finish(self) -> Result<DumpFacts, String> {
        if self.in_copy {
            return Err("it ends inside a table's data".into());
        }
        let tail = String::from_utf8_lossy(&self.tail);
        let Some(at) = tail.rfind(DUMP_TRAILER) else {
            return Err(format!("its last lines are not {DUMP_TRAILER:?}"));
        };
        let after = &tail[at + DUMP_TRAILER.len()..];
        let only_closing = after
            .lines()
            .all(|l| l.trim().is_empty() || l.trim() == "--");
        if !after.starts_with('\n') || !only_closing {
            return Err(format!("text follows {DUMP_TRAILER:?}"));
        }
        Ok(self.facts)
    }
}

/// Counters for the manifest.
#[derive(Debug, Serialize)]
struct DatabaseStats {
    uncompressed_bytes: u64,
    compressed_bytes: u64,
    databases: Vec<String>,
    server_version: Option<String>,
    exit_code: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr: Option<String>,
}

/// Backs up the PostgreSQL cluster of `database.container` with `pg_dumpall`.
pub struct DatabaseJob;

impl Job for DatabaseJob {
    fn kind(&self) -> JobKind {
        JobKind::Database
    }

    fn restore_step(&self) -> crate::restore::RestoreStep {
        crate::restore::steps::database
    }

    fn backup(&self, run: &mut Run<'_>) -> Result<Backup, JobError> {
        run_database(run)
    }
}

/// Backs up the database container's cluster into the run's set.
fn run_database(run: &mut Run<'_>) -> Result<Backup, JobError> {
    let settings = run.settings;
    let dest = run.dest;
    let db = &settings.database;
    let container = db.container.clone();
    let docker = DockerClient::from_env().with_timeouts(&settings.timeouts);
    block_on(docker.running_container(&container)).map_err(DatabaseError::from)?;
    let spec = dump_command(db);
    let command = crate::docker::describe_command(&spec);
    tracing::info!(container = %container, command = %command, destination = %dest.describe(), "Database backup started.");

    // the dump arrives far slower than one core compresses it: compressing inline keeps the
    // process small (zstd's job buffers for two workers cost ~12 MiB) for less CPU
    let mut compressed = run.start_artifact_with(DATABASE_ARTIFACT, Workers::Inline)?;

    let session = block_on(docker.start_exec(&container, &spec)).map_err(DatabaseError::from)?;
    let exec_id = session.id.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(CHANNEL_BATCHES);
    let mut output = session.output;
    let idle = settings.timeouts.database_idle;
    let reader = runtime().spawn(async move {
        let mut stderr = BoundedCapture::new(STDERR_LIMIT);
        let silent = |stderr: &BoundedCapture| {
            let detail =
                format!("no output for {idle} (timeouts.database-idle); is it waiting on a lock?");
            (detail, stderr.clone())
        };
        let mut batch = Vec::new();
        let mut batched = 0;
        while let Some(frame) = next_output(&mut output, idle.get())
            .await
            .map_err(|_| silent(&stderr))?
        {
            let frame = frame.map_err(|e| {
                (
                    format!("reading the exec's output failed: {e}"),
                    stderr.clone(),
                )
            })?;
            match classify(frame).map_err(|e| (e, stderr.clone()))? {
                ExecChunk::Stdout(bytes) => {
                    batched += bytes.len();
                    batch.push(bytes);
                    if batched >= BATCH_BYTES {
                        batched = 0;
                        if tx.send(std::mem::take(&mut batch)).await.is_err() {
                            return Err(("the writer stopped".into(), stderr));
                        }
                    }
                }
                ExecChunk::Stderr(bytes) => stderr.push(&bytes),
            }
        }
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            return Err(("the writer stopped".into(), stderr));
        }
        Ok(stderr)
    });

    let mut scanner = DumpScanner::default();
    let mut write_error = None;
    'batches: while let Some(batch) = rx.blocking_recv() {
        for chunk in batch {
            scanner.feed(&chunk);
            if let Err(e) = compressed.write_all(&chunk) {
                write_error = Some(e);
                break 'batches;
            }
        }
    }
    drop(rx);
    let read_result =
        block_on(reader).unwrap_or_else(|e| Err((e.to_string(), BoundedCapture::new(0))));
    if let Some(source) = write_error {
        return Err(DatabaseError::Write { container, source }.into());
    }
    let stderr = match read_result {
        Ok(stderr) => stderr,
        Err((detail, stderr)) => {
            let detail = if stderr.is_empty() {
                detail
            } else {
                format!("{detail}; stderr: {}", stderr.text())
            };
            return Err(DatabaseError::Stream {
                container,
                command,
                detail,
            }
            .into());
        }
    };
    let code = block_on(docker.exit_code(&container, &exec_id)).map_err(DatabaseError::from)?;
    if code != 0 {
        // the engine reports exec failures (e.g. an unknown user) on the output stream
        let stderr = match (stderr.is_empty(), scanner.tail_text()) {
            (true, tail) if !tail.is_empty() => format!("(empty); last output: {tail}"),
            (true, _) => "(empty)".into(),
            (false, _) => stderr.text(),
        };
        return Err(DatabaseError::DumpFailed {
            container,
            command,
            code,
            stderr,
        }
        .into());
    }
    let facts = scanner
        .finish()
        .map_err(|detail| DatabaseError::Incomplete {
            container: container.clone(),
            detail,
            stderr: stderr.text(),
        })?;
    let artifact = compressed
        .finish("sql")
        .map_err(|source| JobError::Finish {
            artifact: DATABASE_ARTIFACT,
            source,
        })?;

    let stats = DatabaseStats {
        uncompressed_bytes: artifact.uncompressed_size,
        compressed_bytes: artifact.size,
        databases: facts.databases.clone(),
        server_version: facts.server_version.clone(),
        exit_code: code,
        stderr: (!stderr.is_empty()).then(|| stderr.text()),
    };
    let source = serde_json::json!({
        "kind": "database",
        "container": container,
        "command": command,
        "server_version": facts.server_version,
    });
    tracing::info!(
        databases = ?facts.databases,
        bytes_read = artifact.uncompressed_size,
        bytes_written = artifact.size,
        "Database dump written."
    );
    Ok(Backup {
        source,
        artifacts: vec![artifact],
        warnings: Vec::new(),
        stats: serde_json::to_value(&stats).expect("stats serialize"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "--\n-- PostgreSQL database cluster dump\n--\n\nCREATE ROLE postgres;\n\
--\n-- Database \"template1\" dump\n--\n\n\\connect template1\n\
-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)\n\
--\n-- Database \"deis\" dump\n--\n\n\\connect deis\n\
COPY public.api_app (id, note) FROM stdin;\n1\t-- Database \"fake\" dump\n\\.\n\n\
--\n-- PostgreSQL database cluster dump complete\n--\n\n";

    fn scan(dump: &str, chunk: usize) -> Result<DumpFacts, String> {
        let mut s = DumpScanner::default();
        for part in dump.as_bytes().chunks(chunk) {
            s.feed(part);
        }
        s.finish()
    }

    #[test]
    fn scanner_finds_databases_and_version_whatever_the_chunking() {
        for chunk in [1, 3, 7, 64, 4096] {
            let facts = scan(DUMP, chunk).unwrap();
            assert_eq!(facts.databases, ["template1", "deis"], "chunk {chunk}");
            assert_eq!(
                facts.server_version.as_deref(),
                Some("15.20 (Debian 15.20-0+deb12u1)")
            );
        }
    }

    #[test]
    fn overlong_lines_are_never_headers_whatever_the_chunking() {
        let long = "x".repeat(LINE_LIMIT);
        let dump = DUMP.replacen(
            "\\connect template1\n",
            &format!("\\connect template1\n-- Database \"{long}\" dump\n"),
            1,
        );
        for chunk in [1, 7, 4096, 5000, 1 << 20] {
            let facts = scan(&dump, chunk).unwrap();
            assert_eq!(facts.databases, ["template1", "deis"], "chunk {chunk}");
        }
    }

    #[test]
    fn a_dump_without_its_trailer_is_incomplete() {
        let cut = &DUMP[..DUMP.len() - 20];
        assert!(scan(cut, 5).unwrap_err().contains("last lines"));
        let in_copy = DUMP.split("\\.\n").next().unwrap();
        assert!(scan(in_copy, 5).unwrap_err().contains("inside"));
        let extra = format!("{DUMP}SELECT 1;\n");
        assert!(scan(&extra, 5).unwrap_err().contains("follows"));
        assert!(scan("", 5).is_err());
    }

    #[test]
    fn trailer_without_closing_blank_line_is_accepted() {
        let older = DUMP.trim_end_matches('\n').to_string() + "\n";
        assert!(scan(&older, 9).is_ok());
    }

    #[test]
    fn commands_follow_the_exec_mode() {
        let mut db = DatabaseSettings::default();
        let spec = dump_command(&db);
        assert_eq!(spec.cmd, ["sudo", "-u", "postgres", "pg_dumpall"]);
        assert_eq!(spec.user, None);
        db.exec_mode = ExecMode::User;
        let spec = dump_command(&db);
        assert_eq!(spec.cmd, ["pg_dumpall"]);
        assert_eq!(spec.user.as_deref(), Some("postgres"));
    }
}
