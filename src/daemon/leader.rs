//! One lease per job: the daemon holding `<prefix>/backup/leader/<job>` in etcd owns (runs)
//! that job; the others wait and take over when the key expires or is released. A daemon
//! campaigns for a job only while it is eligible to run it on its host ([`eligibility`]), and
//! gives the lease up as soon as it is not.
//!
//! The key is a v3 lease-backed key created only if absent, or a v2 TTL key created with
//! `prevExist=false`; the holder refreshes it every third of its TTL. When etcd does not answer
//! for a whole TTL no owner can be known: an eligible daemon then runs the job itself rather
//! than let backups stop (a duplicated run is harmless: every run writes its own set), and the
//! election resumes when etcd answers again.
//!
//! [`eligibility`]: super::eligibility

use super::eligibility;
use crate::config::{EtcdSettings, Settings};
use crate::error_chain::error_chain;
use crate::etcd::{EtcdClient, Lease};
use crate::store::JobKind;
use crate::util::ProcessIdentity;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Seconds a job's key lives without a refresh: how long a crashed owner is missed.
pub const LEADER_TTL_SECS: i64 = 15;

/// The election key of `job` under the etcd prefix.
pub fn leader_key(prefix: &str, job: JobKind) -> String {
    format!("{}/backup/leader/{job}", prefix.trim_end_matches('/'))
}

/// Who this daemon is, as written into the keys it holds (host, pid, instance; no secret).
pub fn identity() -> String {
    ProcessIdentity::current().label()
}

/// Where this daemon stands in one job's election.
enum Standing {
    /// Another daemon holds the key, none does yet, or this one is not eligible.
    Follower,
    /// This daemon holds the key; `refreshed` is when it last made sure of it.
    Leader { lease: Lease, refreshed: Instant },
    /// etcd has not answered for a whole TTL: no owner can be known, so this (eligible)
    /// daemon runs the job rather than let backups stop.
    Alone,
}

/// Runs `job`'s election forever, keeping `job` in `owned` exactly while this daemon owns it.
pub async fn elect(
    job: JobKind,
    settings: watch::Receiver<Arc<Settings>>,
    owned: watch::Sender<BTreeSet<JobKind>>,
) {
    let me = identity();
    let ttl = Duration::from_secs(LEADER_TTL_SECS as u64);
    let period = Duration::from_secs((LEADER_TTL_SECS / 3).max(1) as u64);
    let mut standing = Standing::Follower;
    let mut client: Option<EtcdClient> = None;
    let mut answered = Instant::now();
    let mut said_eligible: Option<Result<(), String>> = None;
    let mut announced: Option<bool> = None;
    loop {
        let current = settings.borrow().clone();
        let key = leader_key(&current.etcd.prefix, job);
        let eligible = eligibility::check(job, &current).await;
        if said_eligible.as_ref() != Some(&eligible) {
            match &eligible {
                Ok(()) => {
                    tracing::info!(backup_job = %job, "This daemon can run the job here; it campaigns for its lease.")
                }
                Err(why) => {
                    tracing::info!(backup_job = %job, reason = %why, "This daemon cannot run the job here; it does not campaign for it.")
                }
            }
            said_eligible = Some(eligible.clone());
        }
        if client.is_none() {
            client = EtcdClient::connect_with(&current.etcd, &current.timeouts)
                .await
                .ok();
        }
        let step = match (&client, &standing, &eligible) {
            (Some(c), Standing::Leader { .. }, Err(_)) => {
                give_up(c, &key, &me).await;
                Ok(None)
            }
            (_, _, Err(_)) => Ok(None),
            (None, _, Ok(())) => Err("cannot connect".to_string()),
            (Some(c), Standing::Leader { lease, .. }, Ok(())) => c
                .refresh(lease)
                .await
                .map(|kept| kept.then(|| lease.clone()))
                .map_err(|e| error_chain(&e)),
            (Some(c), _, Ok(())) => c
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
                if client.is_some() {
                    answered = Instant::now();
                }
                if matches!(standing, Standing::Leader { .. }) && eligible.is_ok() {
                    tracing::warn!(key = %key, "The job's lease was lost (expired or taken over).");
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
                            tracing::warn!(key = %key, %error, "etcd has not answered for a whole lease TTL: running the job without an election until it does.");
                        }
                        Standing::Alone
                    }
                    other => other,
                }
            }
        };
        let owns = !matches!(standing, Standing::Follower);
        if announced != Some(owns) {
            announce(&owned, job, owns, &key);
            announced = Some(owns);
        }
        tokio::time::sleep(period).await;
    }
}

/// Records and logs whether this daemon owns `job` (called once per change).
fn announce(owned: &watch::Sender<BTreeSet<JobKind>>, job: JobKind, owns: bool, key: &str) {
    if owns {
        tracing::info!(key, backup_job = %job, "This daemon owns the job: it runs it.");
    } else {
        tracing::info!(key, backup_job = %job, "This daemon does not own the job: it does not run it.");
    }
    owned.send_if_modified(|set| {
        if owns {
            set.insert(job)
        } else {
            set.remove(&job)
        }
    });
}

/// Deletes `key` if it still holds `me` (a lease given up, so another daemon takes over at once).
async fn give_up(client: &EtcdClient, key: &str, me: &str) {
    if let Ok(listing) = client.get_prefix(key).await {
        if listing
            .nodes
            .iter()
            .any(|n| n.key == key && n.value == me.as_bytes())
        {
            let _ = client.delete(key).await;
            tracing::info!(key = %key, "Gave up the job's lease.");
        }
    }
}

/// Gives up the leases of `jobs` on shutdown, so that other daemons take over at once.
pub async fn resign(etcd: &EtcdSettings, jobs: &BTreeSet<JobKind>) {
    let Ok(client) = EtcdClient::connect(etcd).await else {
        return;
    };
    let me = identity();
    for &job in jobs {
        give_up(&client, &leader_key(&etcd.prefix, job), &me).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_job_has_its_key_under_the_backup_prefix() {
        use crate::store::JobKind;
        assert_eq!(
            super::leader_key("/deis", JobKind::Database),
            "/deis/backup/leader/database"
        );
        assert_eq!(
            super::leader_key("/deis/", JobKind::Volume),
            "/deis/backup/leader/volume"
        );
    }
}
