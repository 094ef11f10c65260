//! Prometheus metrics: one registry for the process, served as text at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::OnceLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The daemon's metrics (names and labels as design.md §6 lists them).
pub struct Metrics {
    pub registry: Registry,
    /// `deis_backup_config_reloads_total{result}`: success | invalid | unchanged.
    pub config_reloads: IntCounterVec,
    /// `deis_backup_runs_total{job,result}`: success | failure | skipped.
    pub runs: IntCounterVec,
    pub last_success: IntGaugeVec,
    pub last_run: IntGaugeVec,
    pub running: IntGaugeVec,
    pub duration: HistogramVec,
    pub schedule_interval: IntGaugeVec,
    pub is_leader: IntGauge,
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
        let m = Metrics {
            config_reloads: counter(
                "deis_backup_config_reloads_total",
                "Configuration reloads after an etcd change, by result.",
                &["result"],
            )?,
            runs: counter(
                "deis_backup_runs_total",
                "Backup runs, by job and result.",
                &["job", "result"],
            )?,
            last_success: gauge(
                "deis_backup_last_success_timestamp_seconds",
                "When a run of the job last succeeded (Unix time).",
                &["job"],
            )?,
            last_run: gauge(
                "deis_backup_last_run_timestamp_seconds",
                "When a run of the job last ended (Unix time).",
                &["job"],
            )?,
            running: gauge(
                "deis_backup_running",
                "1 while a run of the job is in progress.",
                &["job"],
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new("deis_backup_duration_seconds", "Duration of backup runs.")
                    .buckets(vec![1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0]),
                &["job"],
            )?,
            schedule_interval: gauge(
                "deis_backup_schedule_expected_interval_seconds",
                "Seconds between two scheduled runs of the job.",
                &["job"],
            )?,
            is_leader: IntGauge::new("deis_backup_is_leader", "1 when this daemon runs the jobs.")?,
            registry,
        };
        m.registry.register(Box::new(m.config_reloads.clone()))?;
        m.registry.register(Box::new(m.runs.clone()))?;
        m.registry.register(Box::new(m.last_success.clone()))?;
        m.registry.register(Box::new(m.last_run.clone()))?;
        m.registry.register(Box::new(m.running.clone()))?;
        m.registry.register(Box::new(m.duration.clone()))?;
        m.registry.register(Box::new(m.schedule_interval.clone()))?;
        m.registry.register(Box::new(m.is_leader.clone()))?;
        for result in ["success", "invalid"] {
            m.config_reloads.with_label_values(&[result]);
        }
        Ok(m)
    }

    /// The registry in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
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
