//! A real Prometheus server (Debian's `prometheus`) scrapes two elected daemons with the
//! shipped alert rules (their `for:` shortened so the test takes seconds, not minutes): the
//! owner's failing job raises DeisBackupJobFailing; after the owner is killed and the other
//! daemon takes over, no alert fires from the dead daemon's series and DeisBackupTooOld stays
//! quiet while backups go on. Alerts are read through Prometheus's HTTP API. Needs the test
//! bed's etcd (`bash tests/run.sh`).

mod etcd_support;
mod support;

use etcd_support::{endpoint, unique_prefix, Daemon};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use support::{file_url, sample, scrape, wait_until, write};

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `GET path` on a loopback port; the body, or "" when nothing answers.
fn http_get(port: u16, path: &str) -> String {
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let _ = stream.write_all(request.as_bytes());
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// A Prometheus server of our own, killed on drop.
struct Prometheus {
    child: Child,
    port: u16,
}

impl Prometheus {
    fn start(dir: &Path, targets: &[u16]) -> Self {
        let rules = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/prometheus/deis-backup.rules.yml"
        ))
        .unwrap()
        .replace("for: 5m", "for: 8s");
        std::fs::write(dir.join("rules.yml"), rules).unwrap();
        let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        std::fs::write(
            dir.join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files: ['{}']\n\
                 scrape_configs:\n  - job_name: deis-backup\n    static_configs:\n      - targets: [{}]\n",
                dir.join("rules.yml").display(),
                targets.join(", ")
            ),
        )
        .unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("prometheus is missing: install Debian's prometheus (tests/testbed/install-deps.sh)");
        let server = Prometheus { child, port };
        assert!(
            wait_until(30_000, || http_get(port, "/-/ready").contains("Ready")),
            "prometheus did not become ready: {}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        server
    }

    /// `(alertname, state, instance)` of every active alert.
    fn alerts(&self) -> Vec<(String, String, String)> {
        let body = http_get(self.port, "/api/v1/alerts");
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&body) else {
            return Vec::new();
        };
        json["data"]["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| {
                let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_string();
                (
                    label("alertname"),
                    a["state"].as_str().unwrap_or("").to_string(),
                    label("instance"),
                )
            })
            .collect()
    }

    fn firing(&self, name: &str) -> Vec<String> {
        self.alerts()
            .into_iter()
            .filter(|(alert, state, _)| alert == name && state == "firing")
            .map(|(_, _, instance)| instance)
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon configuration: the volume job every 5 s from `store` into `backups-<name>`,
/// elected through etcd.
fn config(dir: &Path, name: &str, store: &Path, prefix: &str, port: u16) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[etcd]\nendpoints = [\"{}\"]\napi = \"v3\"\nprefix = \"{prefix}\"\n\
             [destination]\nurl = \"{}\"\n[volume]\npath = \"{}\"\n\
             [schedule]\nvolume = \"*/5 * * * * *\"\ngateway = \"\"\ndatabase = \"\"\netcd = \"\"\n\
             [metrics]\nlisten = \"127.0.0.1:{port}\"\n",
            endpoint(),
            file_url(&dir.join(format!("backups-{name}"))),
            store.display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn alerts_follow_the_owner_and_never_fire_from_a_dead_daemons_series() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = unique_prefix("prometheus");
    let (store_a, store_b) = (tmp.path().join("store-a"), tmp.path().join("store-b"));
    write(&store_a.join("a.txt"), b"daemon a");
    write(&store_b.join("b.txt"), b"daemon b");
    let (port_a, port_b) = (free_port(), free_port());
    let owner = |port: u16| {
        sample(
            &scrape(port),
            "deis_backup_job_owner{backup_job=\"volume\"}",
        )
    };
    let mut a = Daemon::start(
        &config(tmp.path(), "a", &store_a, &prefix, port_a),
        &tmp.path().join("a.log"),
        &[],
    );
    assert!(
        wait_until(30_000, || owner(port_a) == Some(1.0)),
        "{}",
        a.log()
    );
    let b = Daemon::start(
        &config(tmp.path(), "b", &store_b, &prefix, port_b),
        &tmp.path().join("b.log"),
        &[],
    );
    assert!(
        wait_until(30_000, || owner(port_b) == Some(0.0)),
        "{}",
        b.log()
    );
    let prometheus = Prometheus::start(tmp.path(), &[port_a, port_b]);
    let instance_a = format!("127.0.0.1:{port_a}");
    let success_a = "deis_backup_runs_total{backup_job=\"volume\",result=\"success\"}";
    assert!(
        wait_until(30_000, || sample(&scrape(port_a), success_a).unwrap_or(0.0)
            >= 1.0),
        "{}",
        a.log()
    );

    // the owner's job starts failing: its destination is no folder any more
    let dest_a = tmp.path().join("backups-a");
    std::fs::remove_dir_all(&dest_a).unwrap();
    std::fs::write(&dest_a, b"not a folder").unwrap();
    assert!(
        wait_until(60_000, || prometheus.firing("DeisBackupJobFailing")
            == vec![instance_a.clone()]),
        "no failing alert for {instance_a}: {:?}\n{}",
        prometheus.alerts(),
        a.log()
    );
    assert!(prometheus.firing("DeisBackupTooOld").is_empty());

    // the owner dies; the other daemon takes over and its backups succeed
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let success_b = "deis_backup_runs_total{backup_job=\"volume\",result=\"success\"}";
    assert!(
        wait_until(60_000, || sample(&scrape(port_b), success_b).unwrap_or(0.0)
            >= 2.0),
        "no takeover:\n{}",
        b.log()
    );
    // from now on: nothing fires from a's series, "too old" and "failing" stay quiet
    assert!(
        wait_until(30_000, || prometheus
            .firing("DeisBackupJobFailing")
            .is_empty()),
        "the failing alert outlived its daemon: {:?}",
        prometheus.alerts()
    );
    let quiet_until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < quiet_until {
        let alerts = prometheus.alerts();
        for (name, state, instance) in &alerts {
            assert!(
                !(state == "firing"
                    && (name == "DeisBackupTooOld"
                        || name == "DeisBackupJobFailing"
                        || instance == &instance_a)),
                "alert {name} fires for {instance} after the takeover: {alerts:?}\n{}",
                b.log()
            );
        }
        let _ = wait_until(1_000, || false);
    }
    assert_eq!(b.terminate(), Some(0));
}
