//! The `status/<job>` key: after each run its owner writes a one-line summary to etcd
//! (`PREFIX/backup/status/<job>`), so `deis-backup status` and operators see every job's last
//! run without scraping metrics. Holds no secret: the error is the run's one-line error.

use super::{RunOutcome, RunResult};
use crate::config::Settings;
use crate::etcd::EtcdClient;
use serde::{Deserialize, Serialize};

/// The JSON document stored in `status/<job>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub run_id: String,
    pub result: RunResult,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    pub host: String,
    pub bytes_written: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl JobStatus {
    /// The status of a finished run.
    pub fn of(outcome: &RunOutcome) -> Self {
        Self {
            run_id: outcome.run_id.to_string(),
            result: outcome.result,
            started_at: outcome.started_at,
            finished_at: outcome.finished_at,
            host: crate::util::host_name(),
            bytes_written: outcome
                .manifest
                .as_ref()
                .map(|m| crate::metrics::RunFigures::of(m).bytes_written)
                .unwrap_or(0),
            error: outcome.error.as_deref().map(one_line),
        }
    }
}

/// The etcd key of `job`'s status.
pub fn status_key(prefix: &str, job: &str) -> String {
    format!("{}/backup/status/{job}", prefix.trim_end_matches('/'))
}

/// Writes the run's status to etcd when etcd is configured; a failure is logged, never fatal
/// (the run's result stands whether or not etcd took the note).
pub fn publish(settings: &Settings, outcome: &RunOutcome) {
    if settings.etcd.endpoints.is_empty() {
        return;
    }
    let key = status_key(&settings.etcd.prefix, outcome.job.as_str());
    let body = serde_json::to_vec(&JobStatus::of(outcome)).expect("status serializes");
    let limit = settings.timeouts.request.get();
    let written = crate::runtime::block_on(async {
        tokio::time::timeout(limit, async {
            let client = EtcdClient::connect_with(&settings.etcd, &settings.timeouts).await?;
            client.put(&key, &body, None).await
        })
        .await
    });
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(key = %key, error = %crate::error_chain::error_chain(&e), "Cannot write the job's status to etcd.")
        }
        Err(_) => {
            tracing::warn!(key = %key, timeout = ?limit, "Cannot write the job's status to etcd: no answer in time.")
        }
    }
}

/// The first line of `text`, at most 500 characters.
fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    line.chars().take(500).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_key_lives_under_backup_status() {
        assert_eq!(status_key("/deis/", "volume"), "/deis/backup/status/volume");
        assert_eq!(one_line("first\nsecond"), "first");
        assert_eq!(one_line(&"x".repeat(900)).len(), 500);
    }
}
