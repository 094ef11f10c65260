//! Leader election among daemons: the one holding `<prefix>/backup/leader` in etcd runs the
//! jobs; the others wait and take over when the key expires or is released.
//!
//! The key is a v3 lease-backed key created only if absent, or a v2 TTL key created with
//! `prevExist=false`; the leader refreshes it every third of its TTL. When etcd does not answer
//! for a whole TTL no leader can be known: each daemon then runs the jobs itself rather than
//! let backups stop (duplicate sets are harmless: every run writes its own), and the election
//! resumes when etcd answers again.

use crate::config::EtcdSettings;
use crate::error_chain::error_chain;
use crate::etcd::{EtcdClient, Lease};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Seconds the leader key lives without a refresh: how long a crashed leader is missed.
pub const LEADER_TTL_SECS: i64 = 15;

/// The election key under the etcd prefix.
pub fn leader_key(prefix: &str) -> String {
    format!("{}/backup/leader", prefix.trim_end_matches('/'))
}

/// Who this daemon is, as written into the leader key (host and pid; not a secret).
pub fn identity() -> String {
    format!("{}/{}", crate::util::host_name(), std::process::id())
}

/// Where this daemon stands in the election.
enum Standing {
    /// Another daemon holds the key (or none has been taken yet).
    Follower,
    /// This daemon holds the key; `refreshed` is when it last made sure of it.
    Leader { lease: Lease, refreshed: Instant },
    /// etcd has not answered for a whole TTL: no leader can be known, so this daemon runs the
    /// jobs rather than let backups stop (another daemon may run them too; sets never clash).
    Alone,
}

/// Runs the election forever, telling `leader` whether this daemon should run the jobs.
pub async fn elect(etcd: EtcdSettings, leader: watch::Sender<bool>) {
    let key = leader_key(&etcd.prefix);
    let me = identity();
    let ttl = Duration::from_secs(LEADER_TTL_SECS as u64);
    let period = Duration::from_secs((LEADER_TTL_SECS / 3).max(1) as u64);
    let mut standing = Standing::Follower;
    let mut client: Option<EtcdClient> = None;
    let mut answered = Instant::now();
    let mut announced: Option<bool> = None;
    loop {
        if client.is_none() {
            client = EtcdClient::connect(&etcd).await.ok();
        }
        let step = match (&client, &standing) {
            (None, _) => Err("cannot connect".to_string()),
            (Some(c), Standing::Leader { lease, .. }) => c
                .refresh(lease)
                .await
                .map(|kept| kept.then(|| lease.clone()))
                .map_err(|e| error_chain(&e)),
            (Some(c), _) => c
                .acquire(&key, &me, LEADER_TTL_SECS)
                .await
                .map_err(|e| error_chain(&e)),
        };
        standing = match step {
            Ok(Some(lease)) => {
                answered = Instant::now();
                Standing::Leader {
                    lease,
                    refreshed: answered,
                }
            }
            Ok(None) => {
                answered = Instant::now();
                if matches!(standing, Standing::Leader { .. }) {
                    tracing::warn!(key = %key, "The leader key was lost (expired or taken over).");
                }
                Standing::Follower
            }
            Err(error) => {
                client = None;
                tracing::debug!(key = %key, %error, "etcd did not answer the election.");
                match standing {
                    Standing::Leader { refreshed, .. } if refreshed.elapsed() < ttl => standing,
                    _ if answered.elapsed() >= ttl => {
                        if !matches!(standing, Standing::Alone) {
                            tracing::warn!(key = %key, %error, "etcd has not answered for a whole leader TTL: running the jobs without an election until it does.");
                        }
                        Standing::Alone
                    }
                    other => other,
                }
            }
        };
        let runs_jobs = !matches!(standing, Standing::Follower);
        if announced != Some(runs_jobs) {
            announce(&leader, runs_jobs, &key);
            announced = Some(runs_jobs);
        }
        tokio::time::sleep(period).await;
    }
}

/// Says (once per change) whether this daemon runs the jobs, to the log, the metric and the
/// daemon's scheduler.
fn announce(leader: &watch::Sender<bool>, runs_jobs: bool, key: &str) {
    if runs_jobs {
        tracing::info!(key, "This daemon is the leader: it runs the jobs.");
    } else {
        tracing::info!(
            key,
            "This daemon is not the leader: it waits and runs no jobs."
        );
    }
    let _ = leader.send(runs_jobs);
}

/// Gives the key up on shutdown, so that another daemon takes over at once.
pub async fn resign(etcd: &EtcdSettings) {
    let key = leader_key(&etcd.prefix);
    let Ok(client) = EtcdClient::connect(etcd).await else {
        return;
    };
    if let Ok(listing) = client.get_prefix(&key).await {
        let mine = identity();
        if listing
            .nodes
            .iter()
            .any(|n| n.key == key && n.value == mine.as_bytes())
        {
            let _ = client.delete(&key).await;
            tracing::info!(key = %key, "Gave up the leader key.");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_key_lives_under_the_backup_prefix() {
        assert_eq!(super::leader_key("/deis"), "/deis/backup/leader");
        assert_eq!(super::leader_key("/deis/"), "/deis/backup/leader");
    }
}
