//! Publishing the built-in defaults to etcd, create-if-absent (as Deis's boot scripts do with
//! `etcdctl mk`): `deisctl config backup get schedule/volume` then shows the value in force,
//! and a key an operator has set is never overwritten. Only keys that this host's file,
//! environment and flags leave at their default are published: a value set locally stays this
//! host's own instead of becoming every daemon's.

use crate::config::{
    etcd_key_of, EtcdSettings, LoadOptions, Settings, Source, Sources, TimeoutSettings,
};
use crate::error_chain::error_chain;
use crate::etcd::EtcdClient;

/// The keys published: what an operator tunes with deisctl (never a secret, never the
/// gateway's address, which Deis itself publishes).
pub const PUBLISHED: [&str; 20] = [
    "destination.url",
    "schedule.gateway",
    "schedule.volume",
    "schedule.database",
    "schedule.etcd",
    "retention.keep-last",
    "retention.keep-hourly",
    "retention.keep-daily",
    "retention.keep-weekly",
    "retention.keep-monthly",
    "retention.object-grace",
    "volume.path",
    "database.container",
    "gateway.concurrency",
    "compression.level",
    "deadline.gateway",
    "deadline.volume",
    "deadline.database",
    "deadline.etcd",
    "daemon.shutdown-grace",
];

/// The built-in default of each published key that `base` (file, environment, flags) leaves
/// at its default, as the text etcd holds.
pub fn published_values(base: &LoadOptions) -> Vec<(&'static str, String)> {
    let sources = Sources::of(base);
    let Ok(toml::Value::Table(table)) = toml::Value::try_from(Settings::default()) else {
        return Vec::new();
    };
    PUBLISHED
        .iter()
        .filter(|key| matches!(sources.get(key), None | Some(Source::Default)))
        .filter_map(|key| {
            let (section, name) = key.split_once('.')?;
            let value = table.get(section)?.get(name)?;
            let text = match value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((*key, text))
        })
        .collect()
}

/// Creates every published key that etcd does not hold yet; logs how many it created.
pub async fn publish(base: &LoadOptions, etcd: &EtcdSettings, timeouts: &TimeoutSettings) {
    let client = match EtcdClient::connect_with(etcd, timeouts).await {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %error_chain(&e), "Cannot publish the default configuration to etcd; it is retried at the next start.");
            return;
        }
    };
    let mut created = Vec::new();
    for (key, value) in published_values(base) {
        let etcd_key = etcd_key_of(&etcd.prefix, key);
        match client.create(&etcd_key, &value).await {
            Ok(true) => created.push(etcd_key),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(key = %etcd_key, error = %error_chain(&e), "Cannot publish a default to etcd.");
                return;
            }
        }
    }
    if !created.is_empty() {
        tracing::info!(keys = ?created, "Published the built-in defaults to etcd (keys that were absent and are not set here).");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_published_as_etcd_text_unless_set_here() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("c.toml");
        std::fs::write(&file, "[schedule]\nvolume = \"0 1 * * *\"\n").unwrap();
        let local = LoadOptions {
            file: Some(file),
            env: vec![("DEIS_BACKUP_RETENTION__KEEP_LAST".into(), "5".into())],
            ..LoadOptions::default()
        };
        let values: std::collections::BTreeMap<_, _> =
            published_values(&local).into_iter().collect();
        assert!(!values.contains_key("schedule.volume"), "{values:?}");
        assert!(!values.contains_key("retention.keep-last"), "{values:?}");
        assert_eq!(values["schedule.gateway"], "0 * * * *");
        let values: std::collections::BTreeMap<_, _> = published_values(&LoadOptions::default())
            .into_iter()
            .collect();
        assert_eq!(values.len(), PUBLISHED.len());
        assert_eq!(values["schedule.volume"], "30 3 * * *");
        assert_eq!(values["retention.keep-last"], "3");
        assert_eq!(values["deadline.gateway"], "6h");
        assert_eq!(values["destination.url"], "file:///var/backups/deis");
        assert_eq!(
            etcd_key_of("/deis", "retention.keep-last"),
            "/deis/backup/retention/keepLast"
        );
    }
}
