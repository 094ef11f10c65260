//! Prometheus metrics: one registry for the process, served as text at `/metrics`.

use crate::store::Manifest;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::OnceLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The label that names the backup job (never `job`, which is Prometheus's target label).
pub const JOB_LABEL: &str = "backup_job";

/// The daemon's metrics (names and labels as design.md §6 lists them).
pub struct Metrics {
    pub registry: Registry,
    /// `deis_backup_config_reloads_total{result}`: success | invalid | unchanged.
    pub config_reloads: IntCounterVec,
    /// `deis_backup_runs_total{backup_job,result}`: success | failure | partial | skipped.
    pub runs: IntCounterVec,
    /// Per-job gauges below are exported only by the job's owner (see [`Metrics::disown`]).
    pub last_success: IntGaugeVec,
    pub last_run: IntGaugeVec,
    /// `deis_backup_last_run_partial{backup_job}`: 1 when the newest set is partial.
    pub last_run_partial: IntGaugeVec,
    pub running: IntGaugeVec,
    pub run_started: IntGaugeVec,
    /// `deis_backup_run_deadline_seconds{backup_job}`: the deadline of the job's runs.
    pub run_deadline: IntGaugeVec,
    pub duration: HistogramVec,
    pub schedule_interval: IntGaugeVec,
    /// `deis_backup_job_owner{backup_job}`: 1 while this daemon owns (runs) the job.
    pub job_owner: IntGaugeVec,
    /// `deis_backup_bytes_read_total{backup_job}`: source bytes read by successful runs.
    pub bytes_read: IntCounterVec,
    /// `deis_backup_bytes_written_total{backup_job}`: bytes stored by successful runs.
    pub bytes_written: IntCounterVec,
    /// `deis_backup_artifact_bytes{backup_job}`: stored size of the job's newest set.
    pub artifact_bytes: IntGaugeVec,
    /// `deis_backup_gateway_objects_total{bucket,action}`: copied | unchanged | failed.
    pub gateway_objects: IntCounterVec,
    /// `deis_backup_files_changed_during_read_total`: volume files that changed while read.
    pub files_changed_during_read: IntCounter,
    /// `deis_backup_files_unreadable_total`: volume files that could not be read.
    pub files_unreadable: IntCounter,
    /// `deis_backup_retention_deleted_total{backup_job,kind}`: kind set | object.
    pub retention_deleted: IntCounterVec,
}

/// The process-wide metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics::new().expect("metric definitions are valid"))
}

impl Metrics {
    fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels)
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(Opts::new(name, help), labels)
        };
        let job = &[JOB_LABEL][..];
        let m = Metrics {
            config_reloads: counter(
                "deis_backup_config_reloads_total",
                "Configuration reloads after an etcd change, by result.",
                &["result"],
            )?,
            runs: counter(
                "deis_backup_runs_total",
                "Backup runs, by job and result (success, failure, partial, skipped).",
                &[JOB_LABEL, "result"],
            )?,
            last_success: gauge(
                "deis_backup_last_success_timestamp_seconds",
                "When the job's newest complete set was started (Unix time); exported by the job's owner.",
                job,
            )?,
            last_run: gauge(
                "deis_backup_last_run_timestamp_seconds",
                "When a run of the job last ended (Unix time); exported by the job's owner.",
                job,
            )?,
            last_run_partial: gauge(
                "deis_backup_last_run_partial",
                "1 when the job's newest set is partial (kept, but e.g. a file could not be read).",
                job,
            )?,
            running: gauge(
                "deis_backup_running",
                "1 while a run of the job is in progress.",
                job,
            )?,
            run_started: gauge(
                "deis_backup_run_started_timestamp_seconds",
                "When the run in progress started (Unix time); with the deadline it shows a stuck run.",
                job,
            )?,
            run_deadline: gauge(
                "deis_backup_run_deadline_seconds",
                "How long one run of the job may take before it is cancelled.",
                job,
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new("deis_backup_duration_seconds", "Duration of backup runs.")
                    .buckets(vec![1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0]),
                job,
            )?,
            schedule_interval: gauge(
                "deis_backup_schedule_expected_interval_seconds",
                "Seconds between two scheduled runs of the job.",
                job,
            )?,
            job_owner: gauge(
                "deis_backup_job_owner",
                "1 while this daemon owns the job (holds its lease and runs it).",
                job,
            )?,
            bytes_read: counter(
                "deis_backup_bytes_read_total",
                "Source bytes read by successful runs.",
                job,
            )?,
            bytes_written: counter(
                "deis_backup_bytes_written_total",
                "Bytes stored at the destination by successful runs.",
                job,
            )?,
            artifact_bytes: gauge(
                "deis_backup_artifact_bytes",
                "Stored size of the job's newest complete set.",
                job,
            )?,
            gateway_objects: counter(
                "deis_backup_gateway_objects_total",
                "Gateway objects handled, by bucket and action (copied, unchanged, failed).",
                &["bucket", "action"],
            )?,
            files_changed_during_read: IntCounter::new(
                "deis_backup_files_changed_during_read_total",
                "Volume files that changed while they were read (stored at their length at open).",
            )?,
            files_unreadable: IntCounter::new(
                "deis_backup_files_unreadable_total",
                "Volume files that could not be read (the run is partial).",
            )?,
            retention_deleted: counter(
                "deis_backup_retention_deleted_total",
                "Backup sets and gateway objects deleted by the retention policy.",
                &[JOB_LABEL, "kind"],
            )?,
            registry,
        };
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(m.config_reloads.clone()),
            Box::new(m.runs.clone()),
            Box::new(m.last_success.clone()),
            Box::new(m.last_run.clone()),
            Box::new(m.last_run_partial.clone()),
            Box::new(m.running.clone()),
            Box::new(m.run_started.clone()),
            Box::new(m.run_deadline.clone()),
            Box::new(m.duration.clone()),
            Box::new(m.schedule_interval.clone()),
            Box::new(m.job_owner.clone()),
            Box::new(m.bytes_read.clone()),
            Box::new(m.bytes_written.clone()),
            Box::new(m.artifact_bytes.clone()),
            Box::new(m.gateway_objects.clone()),
            Box::new(m.files_changed_during_read.clone()),
            Box::new(m.files_unreadable.clone()),
            Box::new(m.retention_deleted.clone()),
        ];
        for c in collectors {
            m.registry.register(c)?;
        }
        for result in ["success", "invalid"] {
            m.config_reloads.with_label_values(&[result]);
        }
        Ok(m)
    }

    /// Counts what a successful (or partial) run read and stored, from its manifest.
    pub fn record_success(&self, manifest: &Manifest) {
        let job = [manifest.job.as_str()];
        let figures = RunFigures::of(manifest);
        self.bytes_read
            .with_label_values(&job)
            .inc_by(figures.bytes_read);
        self.bytes_written
            .with_label_values(&job)
            .inc_by(figures.bytes_written);
        self.artifact_bytes
            .with_label_values(&job)
            .set(manifest.stored_bytes() as i64);
    }

    /// Counts one ended run of `job` with `result` (success, failure, partial, skipped).
    pub fn count_run(&self, job: &str, result: &str) {
        self.runs.with_label_values(&[job, result]).inc();
    }

    /// Makes every result of `job` a series at 0, so that `increase()` sees the first one.
    pub fn declare_job(&self, job: &str) {
        for result in ["success", "failure", "partial", "skipped"] {
            self.runs.with_label_values(&[job, result]);
        }
    }

    /// This daemon owns `job` from now on: `job_owner` is 1; the caller seeds the timestamps.
    pub fn own(&self, job: &str) {
        self.job_owner.with_label_values(&[job]).set(1);
        self.declare_job(job);
    }

    /// This daemon no longer owns `job`: its per-job gauges disappear (a daemon that is not
    /// the owner must not keep stale timestamps that alerts would read), `job_owner` is 0.
    pub fn disown(&self, job: &str) {
        self.job_owner.with_label_values(&[job]).set(0);
        for gauge in [
            &self.last_success,
            &self.last_run,
            &self.last_run_partial,
            &self.running,
            &self.run_started,
            &self.run_deadline,
            &self.artifact_bytes,
            &self.schedule_interval,
        ] {
            let _ = gauge.remove_label_values(&[job]);
        }
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// What one run read from its source and wrote to the destination.
#[derive(Debug, PartialEq, Eq)]
pub struct RunFigures {
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl RunFigures {
    /// From a manifest: jobs that count their source reads (`bytes_read`, or the gateway's
    /// `copied_bytes`) say so in their stats; otherwise the artifacts' uncompressed bytes are
    /// what was read. Written: the artifacts plus the gateway objects copied this run.
    pub fn of(manifest: &Manifest) -> Self {
        let stat = |name: &str| manifest.stats.get(name).and_then(|v| v.as_u64());
        let uncompressed: u64 = manifest.artifacts.iter().map(|a| a.uncompressed_size).sum();
        let copied = stat("copied_bytes");
        RunFigures {
            bytes_read: stat("bytes_read").or(copied).unwrap_or(uncompressed),
            bytes_written: manifest.stored_bytes() + copied.unwrap_or(0),
        }
    }
}

/// Serves `GET /metrics` (HTTP/1.1, one request per connection) until the task is dropped.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut request = vec![0u8; 2048];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read(&mut request),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let line = String::from_utf8_lossy(&request[..n]);
            let path = line.split_whitespace().nth(1).unwrap_or("");
            let response = respond(path);
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

/// The HTTP response for a request path (pure apart from reading the registry).
fn respond(path: &str) -> String {
    let (status, content_type, body) = if path == "/metrics" {
        ("200 OK", "text/plain; version=0.0.4", metrics().render())
    } else {
        (
            "404 Not Found",
            "text/plain",
            "only /metrics is served here\n".to_string(),
        )
    };
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::RunFigures;
    use crate::store::Manifest;

    fn manifest(stats: serde_json::Value, stored: u64, uncompressed: u64) -> Manifest {
        serde_json::from_value(serde_json::json!({
            "format_version": 1, "job": "gateway", "run_id": "20261125T034500Z-abcdef",
            "started_at": "2026-11-25T03:45:00Z", "finished_at": "2026-11-25T03:46:00Z",
            "host": "h", "tool": {"name": "deis-backup", "version": "0"}, "source": {},
            "artifacts": [{"name": "a", "size": stored, "sha256": "00", "compression": "zstd",
                           "uncompressed_size": uncompressed, "content": "json"}],
            "stats": stats,
        }))
        .unwrap()
    }

    #[test]
    fn run_figures_prefer_what_the_job_counted() {
        let volume = manifest(serde_json::json!({"bytes_read": 1000}), 300, 1200);
        assert_eq!(
            RunFigures::of(&volume),
            RunFigures {
                bytes_read: 1000,
                bytes_written: 300
            }
        );
        let gateway = manifest(serde_json::json!({"copied_bytes": 5000}), 40, 90);
        assert_eq!(
            RunFigures::of(&gateway),
            RunFigures {
                bytes_read: 5000,
                bytes_written: 5040
            }
        );
        let database = manifest(serde_json::json!({}), 100, 700);
        assert_eq!(
            RunFigures::of(&database),
            RunFigures {
                bytes_read: 700,
                bytes_written: 100
            }
        );
    }

    #[test]
    fn metrics_render_with_the_reload_counter() {
        super::metrics()
            .config_reloads
            .with_label_values(&["invalid"])
            .inc();
        let response = super::respond("/metrics");
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(
            response.contains("deis_backup_config_reloads_total{result=\"invalid\"}"),
            "{response}"
        );
        assert!(super::respond("/").starts_with("HTTP/1.1 404"));
    }
}
