//! One shared tokio runtime for the async clients (S3, Docker) that synchronous jobs call.
//!
//! Jobs stream bytes through `std::io` pipelines (tar, zstd, sha256) on ordinary threads;
//! where they need an async client they call [`block_on`], which must never be called from
//! inside an async task.

use std::future::Future;
use std::sync::OnceLock;
use tokio::runtime::{Builder, Runtime};

/// The process-wide runtime, started on first use.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("deis-backup-io")
            .enable_all()
            .build()
            .expect("cannot start the tokio runtime")
    })
}

/// Runs a future to completion from synchronous code.
pub fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

/// SIGTERM and SIGINT, as one stream of "please stop" requests (the daemon and `backup`).
pub struct Termination {
    term: tokio::signal::unix::Signal,
}

impl Termination {
    /// Starts listening (call inside the runtime).
    pub fn listen() -> std::io::Result<Self> {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        Ok(Self { term })
    }

    /// Waits for the next request; says which signal it was.
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
}
