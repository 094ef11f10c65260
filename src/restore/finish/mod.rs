//! `restore finish`: after `deisctl start platform`, the Deis controller re-publishes its
//! state (users' keys, apps, domains) from its database into etcd, through execs in the
//! controller container (`restore.controller-container`, Deis v1: `deis-controller`).
//!
//! The controller is asked whether it has `./manage.py load_db_state_to_etcd` (Deis 1.11 and
//! later: `help load_db_state_to_etcd` exits 0); if it does, that runs, otherwise the seed's
//! procedure: `./manage.py shell` saving every Key, App and Domain. Then a read-only shell
//! statement counts what the database holds and each app's processes, which gives the
//! `deis scale` commands that bring the apps' containers back. A dry run asks and counts
//! only. Every exec runs `sh -c 'cd /app && exec ./manage.py ...'` (the Docker engines of
//! Deis v1 hosts cannot set an exec's working directory) and is bounded: its API calls by
//! `timeouts.request`, its silence by `timeouts.request` (asking, counting) or
//! `timeouts.database-idle` (re-publishing, which saves every object through the database).

mod state;

pub use state::{
    count_statements, parse_counts, parse_saved, save_statements, AppProcesses, ControllerCounts,
    SavedCounts, COUNTS_MARKER, SAVED_MARKER,
};

use crate::config::{ConfigDuration, Settings};
use crate::docker::{
    classify, next_output, DockerClient, DockerError, ExecChunk, ExecSpec, TailCapture,
};
use crate::runtime::block_on;
use std::fmt;
use tokio::io::AsyncWriteExt;

/// Where the controller's Django project lives in its container (its WORKDIR).
pub const CONTROLLER_APP_DIR: &str = "/app";
/// The management command of Deis 1.11 and later that re-publishes the database to etcd.
pub const LOAD_COMMAND: &str = "load_db_state_to_etcd";
/// Django's shell, plain: the `code.interact` console reading statements from stdin even
/// where IPython is installed (Django 1.6-1.9 all take `--plain`).
const SHELL: &str = "shell --plain";

/// How much of an exec's stdout is kept (its end, where the result line is).
const STDOUT_LIMIT: usize = 4 << 20;
/// How much of an exec's stderr is kept for messages (its end: a traceback's last lines).
const STDERR_LIMIT: usize = 2 << 10;

/// How the controller re-publishes its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepublishPath {
    /// `./manage.py load_db_state_to_etcd` (Deis 1.11 and later).
    LoadDbStateToEtcd,
    /// `./manage.py shell` saving every Key, App and Domain (the seed's procedure).
    ShellSave,
}

impl fmt::Display for RepublishPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepublishPath::LoadDbStateToEtcd => {
                write!(f, "load_db_state_to_etcd (./manage.py {LOAD_COMMAND})")
            }
            RepublishPath::ShellSave => f.write_str(
                "shell (./manage.py shell saving every Key, App and Domain; this controller has no load_db_state_to_etcd)",
            ),
        }
    }
}

/// Why `restore finish` failed.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error("the controller container {container} does not exist on the Docker engine at {host}; run `restore finish` on the host where fleet started it (`fleetctl list-units | grep controller`), after `deisctl start platform`, or name it with --container / restore.controller-container")]
    ControllerMissing { container: String, host: String },
    #[error("the controller container {container} is not running (state: {state}); start the platform first (`deisctl start platform`) and wait until `deisctl list` shows deis-controller active")]
    ControllerNotRunning { container: String, state: String },
    #[error(transparent)]
    Docker(DockerError),
    #[error("`{command}` in the controller container {container} failed with exit code {code}; {hint}; its output ends: {output}")]
    CommandFailed {
        container: String,
        command: String,
        code: i64,
        hint: &'static str,
        output: String,
    },
    #[error("`{command}` in the controller container {container} printed nothing for {idle} ({setting}); check that deis-database and etcd answer")]
    Silent {
        container: String,
        command: String,
        idle: ConfigDuration,
        setting: &'static str,
    },
    #[error("the exec of `{command}` in the controller container {container} broke off: {detail}")]
    Stream {
        container: String,
        command: String,
        detail: String,
    },
    #[error("`{command}` in the controller container {container} did not report its result: {detail}; its output ends: {output}")]
    NoResult {
        container: String,
        command: String,
        detail: String,
        output: String,
    },
}

/// What `restore finish` did (or, in a dry run, would do).
#[derive(Debug, Clone)]
pub struct FinishReport {
    pub container: String,
    pub image: Option<String>,
    pub path: RepublishPath,
    /// The command that re-published (or would), as it runs in [`CONTROLLER_APP_DIR`].
    pub command: String,
    pub dry_run: bool,
    /// What the save statements saved (the shell path, not a dry run).
    pub saved: Option<SavedCounts>,
    /// What the controller's database holds (counted after re-publishing).
    pub counts: ControllerCounts,
}

/// Makes the controller in `container` re-publish its state to etcd (or, with `dry_run`, says
/// how it would, running only read-only commands).
pub fn finish(
    settings: &Settings,
    container: &str,
    dry_run: bool,
) -> Result<FinishReport, FinishError> {
    let docker = DockerClient::from_env().with_timeouts(&settings.timeouts);
    let controller = Controller {
        docker: &docker,
        container,
        quick: settings.timeouts.request,
        slow: settings.timeouts.database_idle,
    };
    block_on(controller.finish(dry_run))
}

/// The controller container and the deadlines of its execs.
struct Controller<'a> {
    docker: &'a DockerClient,
    container: &'a str,
    /// Silence allowed to asking and counting (`timeouts.request`).
    quick: ConfigDuration,
    /// Silence allowed to re-publishing (`timeouts.database-idle`).
    slow: ConfigDuration,
}

/// What a finished exec printed and returned.
struct ExecResult {
    code: i64,
    stdout: TailCapture,
    stderr: TailCapture,
}

impl ExecResult {
    /// The end of what it printed, stderr first (where errors go), for messages.
    fn output(&self) -> String {
        match (self.stderr.is_empty(), self.stdout.is_empty()) {
            (false, _) => self.stderr.text(),
            (true, false) => tail_chars(&self.stdout.text(), STDERR_LIMIT),
            (true, true) => "(nothing)".into(),
        }
    }
}

fn tail_chars(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_string()
}

/// A `./manage.py ...` command line run in the app folder.
fn manage(args: &str) -> String {
    format!("./manage.py {args}")
}

impl Controller<'_> {
    async fn finish(&self, dry_run: bool) -> Result<FinishReport, FinishError> {
        let running = self
            .docker
            .running_container(self.container)
            .await
            .map_err(|e| self.docker_error(e))?;
        let path = self.republish_path().await?;
        let command = match path {
            RepublishPath::LoadDbStateToEtcd => manage(LOAD_COMMAND),
            RepublishPath::ShellSave => manage(SHELL),
        };
        let saved = if dry_run {
            None
        } else {
            self.republish(path, &command).await?
        };
        let counts = self.counts().await?;
        Ok(FinishReport {
            container: self.container.into(),
            image: running.image,
            path,
            command,
            dry_run,
            saved,
            counts,
        })
    }

    /// Asks the controller whether it has `load_db_state_to_etcd`: Django's `help COMMAND`
    /// exits 0 for a command it has and says `Unknown command` for one it has not.
    async fn republish_path(&self) -> Result<RepublishPath, FinishError> {
        let command = manage(&format!("help {LOAD_COMMAND}"));
        let result = self
            .exec(&command, None, self.quick, "timeouts.request")
            .await?;
        if result.code == 0 {
            return Ok(RepublishPath::LoadDbStateToEtcd);
        }
        let said = format!("{}{}", result.stderr.raw_text(), result.stdout.raw_text());
        if said.contains("Unknown command") {
            return Ok(RepublishPath::ShellSave);
        }
        Err(FinishError::CommandFailed {
            container: self.container.into(),
            command,
            code: result.code,
            hint: "check that the container is a Deis v1 controller with its Django project (manage.py) in /app",
            output: result.output(),
        })
    }

    /// Runs the re-publishing `command`; on the shell path, says what it saved.
    async fn republish(
        &self,
        path: RepublishPath,
        command: &str,
    ) -> Result<Option<SavedCounts>, FinishError> {
        let stdin = match path {
            RepublishPath::LoadDbStateToEtcd => None,
            RepublishPath::ShellSave => Some(save_statements()),
        };
        let result = self
            .exec(
                command,
                stdin.as_deref(),
                self.slow,
                "timeouts.database-idle",
            )
            .await?;
        self.check_exit(command, &result)?;
        match path {
            RepublishPath::LoadDbStateToEtcd => Ok(None),
            RepublishPath::ShellSave => parse_saved(&result.stdout.raw_text())
                .map(Some)
                .map_err(|detail| self.no_result(command, detail, &result)),
        }
    }

    /// Counts what the controller's database holds (read-only).
    async fn counts(&self) -> Result<ControllerCounts, FinishError> {
        let command = manage(SHELL);
        let statements = count_statements();
        let result = self
            .exec(&command, Some(&statements), self.quick, "timeouts.request")
            .await?;
        self.check_exit(&command, &result)?;
        parse_counts(&result.stdout.raw_text())
            .map_err(|detail| self.no_result(&command, detail, &result))
    }

    /// A Docker error, with the controller container's absence or stop said as such.
    fn docker_error(&self, e: DockerError) -> FinishError {
        match e {
            DockerError::ContainerMissing(container) => FinishError::ControllerMissing {
                container,
                host: self.docker.host().to_string(),
            },
            DockerError::ContainerNotRunning { container, state } => {
                FinishError::ControllerNotRunning { container, state }
            }
            e => FinishError::Docker(e),
        }
    }

    fn check_exit(&self, command: &str, result: &ExecResult) -> Result<(), FinishError> {
        if result.code == 0 {
            return Ok(());
        }
        Err(FinishError::CommandFailed {
            container: self.container.into(),
            command: command.into(),
            code: result.code,
            hint: "check the controller's logs (`docker logs` of the container) and that deis-database and etcd are up",
            output: result.output(),
        })
    }

    fn no_result(&self, command: &str, detail: String, result: &ExecResult) -> FinishError {
        FinishError::NoResult {
            container: self.container.into(),
            command: command.into(),
            detail,
            output: result.output(),
        }
    }

    /// Runs `command` in the app folder, feeding it `stdin` (then end of file) when given, and
    /// collects its output; fails when it prints nothing for `idle`.
    async fn exec(
        &self,
        command: &str,
        stdin: Option<&str>,
        idle: ConfigDuration,
        setting: &'static str,
    ) -> Result<ExecResult, FinishError> {
        let spec = ExecSpec {
            cmd: vec![
                "sh".into(),
                "-c".into(),
                format!("cd {CONTROLLER_APP_DIR} && exec {command}"),
            ],
            user: None,
            attach_stdin: stdin.is_some(),
        };
        tracing::debug!(
            container = self.container,
            command,
            "Running in the controller."
        );
        let session = self
            .docker
            .start_exec(self.container, &spec)
            .await
            .map_err(|e| self.docker_error(e))?;
        let stream_err = |detail: String| FinishError::Stream {
            container: self.container.into(),
            command: command.into(),
            detail,
        };
        let (mut input, mut output) = (session.input, session.output);
        // without stdin the input half stays open (untouched) until the output ends
        let write = async {
            match stdin {
                Some(text) => {
                    input.write_all(text.as_bytes()).await?;
                    input.shutdown().await
                }
                None => Ok(()),
            }
        };
        let read = async {
            let mut stdout = TailCapture::new(STDOUT_LIMIT);
            let mut stderr = TailCapture::new(STDERR_LIMIT);
            loop {
                let frame = match next_output(&mut output, idle.get()).await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return Ok((stdout, stderr)),
                    Err(_silent) => {
                        return Err(FinishError::Silent {
                            container: self.container.into(),
                            command: command.into(),
                            idle,
                            setting,
                        })
                    }
                };
                let frame =
                    frame.map_err(|e| stream_err(format!("the output stream failed: {e}")))?;
                match classify(frame).map_err(stream_err)? {
                    ExecChunk::Stdout(bytes) => stdout.push(&bytes),
                    ExecChunk::Stderr(bytes) => stderr.push(&bytes),
                }
            }
        };
        let (written, read) = tokio::join!(write, read);
        let (stdout, stderr) = read?;
        let code = self
            .docker
            .exit_code(self.container, &session.id)
            .await
            .map_err(|e| self.docker_error(e))?;
        let result = ExecResult {
            code,
            stdout,
            stderr,
        };
        // a command that failed may have stopped reading its stdin: its exit code says more
        if code == 0 {
            if let Err(e) = written {
                return Err(stream_err(format!("writing its stdin failed: {e}")));
            }
        }
        Ok(result)
    }
}
