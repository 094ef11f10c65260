//! A thin Docker Engine API adapter (bollard over the Unix socket): container checks and
//! attached execs whose output is streamed, never buffered whole.
//!
//! The client connects lazily on first use (honouring `DOCKER_HOST`, default
//! `unix:///var/run/docker.sock`), negotiates the API version with the engine (Deis v1 hosts
//! run old engines), and retries a few times while the engine does not answer.
//!
//! Deadlines: every API call (connect, inspect, create and start an exec) must be answered
//! within `timeouts.request`. An exec's output stream has no overall deadline (a dump may
//! rightly take hours; bollard's own timeout covers only a response's headers); instead
//! [`next_output`] fails when the stream stays silent for an idle timeout.

mod output;

pub use output::{
    classify, drain_output, next_output, BoundedCapture, ExecChunk, ExecOutput, Silent, TailCapture,
};

use crate::config::TimeoutSettings;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::AsyncWrite;
use tokio::sync::OnceCell;

/// The engine socket used when `DOCKER_HOST` is not set.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";

const CONNECT_ATTEMPTS: u32 = 3;
const EXIT_CODE_WAIT: Duration = Duration::from_secs(30);

/// What went wrong talking to the Docker engine, and what to check.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("the Docker socket {0} does not exist; check that the Docker engine runs on this host (or set DOCKER_HOST)")]
    SocketMissing(String),
    #[error("DOCKER_HOST={0:?} is not supported; expected unix:///path/to/docker.sock")]
    UnsupportedHost(String),
    #[error("the Docker engine at {host} does not answer; check that dockerd runs and that this user may use its socket")]
    NotAnswering {
        host: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("container {0} does not exist; check the name (`docker ps -a`) or set database.container / --container")]
    ContainerMissing(String),
    #[error("container {container} is not running (state: {state}); start it first")]
    ContainerNotRunning { container: String, state: String },
    #[error("cannot {action} in container {container}")]
    Engine {
        action: &'static str,
        container: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("the output of an exec in container {container} broke off: {detail}")]
    Stream { container: String, detail: String },
    #[error("the exec in container {container} did not report an exit code within {seconds} s")]
    NoExitCode { container: String, seconds: u64 },
    #[error("the Docker engine at {host} did not answer within {seconds} s to {action} (container {container}); check that dockerd is responsive (`docker info`)")]
    Timeout {
        host: String,
        action: &'static str,
        container: String,
        seconds: u64,
    },
}

/// A Docker engine client that connects on first use.
pub struct DockerClient {
    host: String,
    client: OnceCell<Docker>,
    /// The deadline of one API call.
    request: Duration,
}

impl Default for DockerClient {
    fn default() -> Self {
        Self::from_env()
    }
}

/// A container checked to be running.
#[derive(Debug, Clone)]
pub struct RunningContainer {
    pub name: String,
    pub id: String,
    pub image: Option<String>,
}

/// What runs in an exec: the command line and the user it runs as (`None`: the container's).
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    pub user: Option<String>,
    pub attach_stdin: bool,
}

/// A short command run to its end: its exit code and what it printed (each bounded).
#[derive(Debug)]
pub struct ExecResult {
    pub code: i64,
    pub stdout: BoundedCapture,
    pub stderr: BoundedCapture,
}

/// The byte streams of a started exec (no TTY: stdout and stderr arrive separately).
pub struct ExecSession {
    pub id: String,
    pub output: ExecOutput,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

impl DockerClient {
    /// A client for `DOCKER_HOST` (or the default socket). Does not connect yet.
    pub fn from_env() -> Self {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| format!("unix://{DEFAULT_SOCKET}"));
        Self {
            host,
            client: OnceCell::new(),
            request: TimeoutSettings::default().request.get(),
        }
    }

    /// The same client with every API call bounded by `timeouts.request`.
    pub fn with_timeouts(mut self, timeouts: &TimeoutSettings) -> Self {
        self.request = timeouts.request.get();
        self
    }

    /// `call` within the request deadline.
    async fn bounded<T>(
        &self,
        action: &'static str,
        container: &str,
        call: impl Future<Output = Result<T, DockerError>>,
    ) -> Result<T, DockerError> {
        tokio::time::timeout(self.request, call)
            .await
            .unwrap_or_else(|_| {
                Err(DockerError::Timeout {
                    host: self.host.clone(),
                    action,
                    container: container.into(),
                    seconds: self.request.as_secs_f64().ceil() as u64,
                })
            })
    }

    /// The engine address, for messages.
    pub fn host(&self) -> &str {
        &self.host
    }

    async fn client(&self) -> Result<&Docker, DockerError> {
        self.client.get_or_try_init(|| self.connect()).await
    }

    async fn connect(&self) -> Result<Docker, DockerError> {
        let path = self
            .host
            .strip_prefix("unix://")
            .ok_or_else(|| DockerError::UnsupportedHost(self.host.clone()))?;
        if !std::path::Path::new(path).exists() {
            return Err(DockerError::SocketMissing(path.into()));
        }
        let mut attempt = 1;
        loop {
            let seconds = self.request.as_secs().max(1);
            let docker =
                Docker::connect_with_unix(&self.host, seconds, bollard::API_DEFAULT_VERSION)
                    .map_err(|source| DockerError::NotAnswering {
                        host: self.host.clone(),
                        source,
                    })?;
            match docker.negotiate_version().await {
                Ok(docker) => return Ok(docker),
                Err(source) if attempt >= CONNECT_ATTEMPTS => {
                    return Err(DockerError::NotAnswering {
                        host: self.host.clone(),
                        source,
                    })
                }
                Err(e) => {
                    tracing::warn!(host = %self.host, attempt, "The Docker engine did not answer ({e}); retrying.");
                    tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Checks that `container` exists and runs.
    pub async fn running_container(
        &self,
        container: &str,
    ) -> Result<RunningContainer, DockerError> {
        let docker = self.bounded("connect", container, self.client()).await?;
        let inspect = async { Ok(docker.inspect_container(container, None).await) };
        let info = self
            .bounded("inspect the container", container, inspect)
            .await?
            .map_err(|source| match source {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => DockerError::ContainerMissing(container.into()),
                source => DockerError::Engine {
                    action: "inspect the container",
                    container: container.into(),
                    source,
                },
            })?;
        let state = info.state.unwrap_or_default();
        if state.running != Some(true) {
            let status = state
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into());
            return Err(DockerError::ContainerNotRunning {
                container: container.into(),
                state: status,
            });
        }
        Ok(RunningContainer {
            name: container.into(),
            id: info.id.unwrap_or_default(),
            image: info.config.and_then(|c| c.image),
        })
    }

    /// Starts `spec` in `container` without a TTY, attached to its output (and stdin if asked).
    pub async fn start_exec(
        &self,
        container: &str,
        spec: &ExecSpec,
    ) -> Result<ExecSession, DockerError> {
        let docker = self.bounded("connect", container, self.client()).await?;
        let engine = |action| {
            move |source| DockerError::Engine {
                action,
                container: container.into(),
                source,
            }
        };
        let create = docker.create_exec(
            container,
            CreateExecOptions::<String> {
                cmd: Some(spec.cmd.clone()),
                user: spec.user.clone(),
                attach_stdin: Some(spec.attach_stdin),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(false),
                ..Default::default()
            },
        );
        let created = self
            .bounded("create an exec", container, async {
                create.await.map_err(engine("create an exec"))
            })
            .await?;
        // bounded until the stream is attached; reading it is not (see `next_output`)
        let start = docker.start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: Some(256 << 10),
            }),
        );
        let started = self
            .bounded("start an exec", container, async {
                start.await.map_err(engine("start an exec"))
            })
            .await?;
        match started {
            StartExecResults::Attached { output, input } => Ok(ExecSession {
                id: created.id,
                output,
                input,
            }),
            StartExecResults::Detached => unreachable!("the exec was started attached"),
        }
    }

    /// Runs a short command (a query, a check) in `container` to its end, all of it within
    /// the request deadline, keeping at most `limit` bytes of stdout (and of stderr).
    pub async fn run_exec(
        &self,
        container: &str,
        spec: &ExecSpec,
        limit: usize,
    ) -> Result<ExecResult, DockerError> {
        let run = async {
            let mut session = self.start_exec(container, spec).await?;
            let mut stdout = BoundedCapture::new(limit);
            let mut stderr = BoundedCapture::new(limit);
            drain_output(&mut session.output, &mut stdout, &mut stderr)
                .await
                .map_err(|detail| DockerError::Stream {
                    container: container.into(),
                    detail,
                })?;
            let code = self.exit_code(container, &session.id).await?;
            Ok(ExecResult {
                code,
                stdout,
                stderr,
            })
        };
        self.bounded("run a command", container, run).await
    }

    /// The exit code of a finished exec; waits (polling) while the engine still reports it running.
    pub async fn exit_code(&self, container: &str, exec_id: &str) -> Result<i64, DockerError> {
        let docker = self.bounded("connect", container, self.client()).await?;
        let deadline = tokio::time::Instant::now() + EXIT_CODE_WAIT;
        loop {
            let inspect = async {
                docker
                    .inspect_exec(exec_id)
                    .await
                    .map_err(|source| DockerError::Engine {
                        action: "inspect an exec",
                        container: container.into(),
                        source,
                    })
            };
            let info = self.bounded("inspect an exec", container, inspect).await?;
            if info.running != Some(true) {
                if let Some(code) = info.exit_code {
                    return Ok(code);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DockerError::NoExitCode {
                    container: container.into(),
                    seconds: EXIT_CODE_WAIT.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The command line of `spec` as a shell would show it, for messages.
pub fn describe_command(spec: &ExecSpec) -> String {
    let cmd = spec.cmd.join(" ");
    match &spec.user {
        Some(user) => format!("{cmd} (as user {user})"),
        None => cmd,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_socket_is_named() {
        let client = DockerClient {
            host: "unix:///nonexistent/docker.sock".into(),
            client: OnceCell::new(),
            request: Duration::from_secs(1),
        };
        let e = crate::runtime::block_on(client.running_container("x")).unwrap_err();
        assert!(matches!(e, DockerError::SocketMissing(_)));
        assert!(e.to_string().contains("/nonexistent/docker.sock"), "{e}");
    }
}
