//! Shared helpers of the etcd tests: the test bed's etcd, private etcd processes, key access
//! through the crate's own client (both APIs), and a daemon child process with its log.
#![allow(dead_code)]

use deis_backup::config::{EtcdApi, EtcdSettings};
use deis_backup::etcd::EtcdClient;
use deis_backup::runtime::block_on;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub use crate::support::testbed;

/// The test bed's etcd (v2 and v3 enabled).
pub fn endpoint() -> String {
    testbed("TESTBED_ETCD_ENDPOINT")
}

/// A key prefix no other test uses, standing in for `/deis`.
pub fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("/t-{name}-{}-{nanos}/deis", std::process::id())
}

/// A client of `endpoint` speaking `api`.
pub fn client(endpoint: &str, api: EtcdApi) -> EtcdClient {
    let settings = EtcdSettings {
        endpoints: vec![endpoint.to_string()],
        api,
        prefix: "/deis".into(),
    };
    block_on(EtcdClient::connect(&settings)).expect("connect to etcd")
}

/// Sets keys (full paths) with the crate's client.
pub fn put(client: &EtcdClient, pairs: &[(&str, &str)]) {
    for (key, value) in pairs {
        block_on(client.put(key, value.as_bytes(), None)).expect("put");
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An etcd process of our own (from TESTBED_ETCD_BIN) with a fixed data dir and ports, so
/// that it can be stopped and started again as the same member. Killed on drop.
pub struct OwnEtcd {
    pub dir: PathBuf,
    pub client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl OwnEtcd {
    /// Starts a fresh etcd in `dir` and waits until both APIs answer.
    pub fn start(dir: &Path) -> Self {
        let mut etcd = OwnEtcd {
            dir: dir.to_path_buf(),
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        etcd.restart();
        etcd
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// Starts the process (again) on the same data dir and ports.
    pub fn restart(&mut self) {
        let url = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .unwrap();
        let child = Command::new(testbed("TESTBED_ETCD_BIN"))
            .args(["--name", "own", "--data-dir"])
            .arg(self.dir.join("data"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("own={peer}")])
            .args(["--initial-cluster-state", "new", "--enable-v2=true"])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let ready = crate::support::wait_until(30_000, || {
            let v2 = block_on(async {
                let c = deis_backup::etcd::V2Client::new(
                    std::slice::from_ref(&url),
                    &deis_backup::config::TimeoutSettings::default(),
                );
                c.get_prefix("/").await.is_ok()
            });
            v2 && {
                let settings = EtcdSettings {
                    endpoints: vec![url.clone()],
                    api: EtcdApi::V3,
                    prefix: "/".into(),
                };
                block_on(async {
                    match EtcdClient::connect(&settings).await {
                        Ok(c) => c.get_prefix("/ready").await.is_ok(),
                        Err(_) => false,
                    }
                })
            }
        });
        assert!(
            ready,
            "own etcd on {url} did not come up; see {}",
            self.dir.display()
        );
    }

    /// Kills the process (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A daemon child process whose log goes to a file that tests can poll.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// `deis-backup run --config FILE` with extra environment.
    pub fn start(config: &Path, log: &Path, env: &[(&str, &str)]) -> Self {
        let file = std::fs::File::create(log).unwrap();
        let mut cmd = crate::support::cli();
        cmd.args(["run", "--config"]).arg(config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn the daemon");
        Daemon {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Whether the daemon process is still alive.
    pub fn child_is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains every one of `needles` (on any lines).
    pub fn wait_log(&self, timeout_ms: u64, needles: &[&str]) -> bool {
        crate::support::wait_until(timeout_ms, || {
            let log = self.log();
            needles.iter().all(|n| log.contains(n))
        })
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(mut self) -> Option<i32> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let ok =
            crate::support::wait_until(30_000, || matches!(self.child.try_wait(), Ok(Some(_))));
        if !ok {
            let _ = self.child.kill();
        }
        self.child.wait().ok().and_then(|s| s.code())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Complete sets (with a manifest) of `job` at a local destination.
pub fn complete_sets(dest: &Path, job: &str) -> usize {
    crate::support::set_dirs(dest, job)
        .iter()
        .filter(|d| d.join("manifest.json").exists())
        .count()
}
