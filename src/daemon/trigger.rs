//! `trigger/<job>`: writing any value under `<prefix>/backup/trigger/` asks the job's owner to
//! run it now. Every daemon looks at the keys every few seconds; the owner of the job deletes
//! the key and runs it (once after a run in progress, never twice); a key that names no job is
//! warned about by name and deleted by whichever daemon sees it.

use crate::config::Settings;
use crate::etcd::EtcdClient;
use crate::store::JobKind;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often the trigger keys are looked at.
const EVERY: Duration = Duration::from_secs(2);

/// `<prefix>/backup/trigger/`.
pub fn trigger_prefix(prefix: &str) -> String {
    format!("{}/backup/trigger/", prefix.trim_end_matches('/'))
}

/// Watches the trigger keys forever, sending each triggered job this daemon owns to `fire`.
pub async fn watch_triggers(
    settings: watch::Receiver<Arc<Settings>>,
    owned: watch::Receiver<BTreeSet<JobKind>>,
    fire: mpsc::Sender<JobKind>,
) {
    let mut client: Option<EtcdClient> = None;
    loop {
        tokio::time::sleep(EVERY).await;
        let current = settings.borrow().clone();
        if client.is_none() {
            client = EtcdClient::connect_with(&current.etcd, &current.timeouts)
                .await
                .ok();
        }
        let Some(c) = &client else { continue };
        let prefix = trigger_prefix(&current.etcd.prefix);
        let listing = match c.get_prefix(&prefix).await {
            Ok(listing) => listing,
            Err(_) => {
                client = None;
                continue;
            }
        };
        for node in listing.nodes.iter().filter(|n| !n.dir) {
            let name = node.key.strip_prefix(&prefix).unwrap_or(&node.key);
            match name.parse::<JobKind>() {
                Err(_) => {
                    tracing::warn!(key = %node.key, "A trigger names no job (gateway, volume, database, etcd); deleting it.");
                    let _ = c.delete(&node.key).await;
                }
                Ok(job) if owned.borrow().contains(&job) => {
                    if c.delete(&node.key).await.is_ok() {
                        tracing::info!(key = %node.key, backup_job = %job, "The job was triggered.");
                        let _ = fire.send(job).await;
                    }
                }
                Ok(_) => {} // for the job's owner
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn triggers_live_under_backup_trigger() {
        assert_eq!(super::trigger_prefix("/deis/"), "/deis/backup/trigger/");
    }
}
