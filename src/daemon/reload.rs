//! Live reconfiguration: watch the configuration keys in etcd, re-load and validate the whole
//! configuration on a change, apply it only when valid, and ride out etcd outages.

use crate::config::{self, ConfigError, EtcdLayer, LoadOptions, Settings, Sources};
use crate::etcd::{read_config, ConfigRead, EtcdClient, EtcdError, WatchEvent};
use crate::metrics::metrics;
use crate::util::Backoff;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The result of evaluating a new etcd read against the last good configuration.
#[derive(Debug)]
pub enum Outcome {
    /// Valid and different: apply it. Carries the changed keys (names only).
    Apply {
        settings: Box<Settings>,
        layer: EtcdLayer,
        changed: Vec<String>,
    },
    /// Valid and the same as what runs.
    Unchanged { layer: EtcdLayer },
    /// Not usable: each problem as (config key, etcd key or source, message).
    Invalid(Vec<(String, String, String)>),
}

/// Decides what a new read means (pure apart from reading the configuration file).
pub fn evaluate(
    base: &LoadOptions,
    read: Result<EtcdLayer, Vec<config::EtcdKeyProblem>>,
    current: &Settings,
    current_layer: Option<&EtcdLayer>,
) -> Outcome {
    let layer = match read {
        Ok(layer) => layer,
        Err(problems) => {
            return Outcome::Invalid(
                problems
                    .into_iter()
                    .map(|p| (p.key, p.etcd_key, p.message))
                    .collect(),
            )
        }
    };
    let mut options = base.clone();
    options.etcd = Some(layer.clone());
    match config::load(&options) {
        Ok(settings) => {
            let changed = match current_layer {
                Some(old) => old.changed_keys(&layer),
                None => layer.changed_keys(&EtcdLayer::default()),
            };
            if settings == *current && changed.is_empty() {
                Outcome::Unchanged { layer }
            } else {
                Outcome::Apply {
                    settings: Box::new(settings),
                    layer,
                    changed,
                }
            }
        }
        Err(ConfigError::Invalid(problems)) => {
            let sources = Sources::of(&options);
            Outcome::Invalid(
                problems
                    .into_iter()
                    .map(|p| {
                        let from = sources
                            .get(&p.key)
                            .map(|s| s.to_string())
                            .unwrap_or_default();
                        (p.key, from, p.message)
                    })
                    .collect(),
            )
        }
        Err(other) => Outcome::Invalid(vec![(String::new(), String::new(), other.to_string())]),
    }
}

/// Watches etcd until the task is dropped, sending each valid new configuration.
pub async fn watch_etcd(
    base: LoadOptions,
    etcd: config::EtcdSettings,
    mut current_layer: Option<EtcdLayer>,
    tx: watch::Sender<Arc<Settings>>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut outage: Option<String> = None;
    let mut warned: Vec<String> = Vec::new();
    loop {
        let result: Result<(), EtcdError> = async {
            let client = EtcdClient::connect(&etcd).await?;
            let read = read_config(&client, &etcd.prefix).await?;
            if let Some(since) = outage.take() {
                tracing::info!(endpoints = %etcd.endpoints.join(","), down_since = %since, "etcd is reachable again; re-reading the configuration.");
            }
            backoff.reset();
            let mut index = read.index;
            apply(&base, read, &mut current_layer, &tx, &mut warned);
            let mut watcher = client.watch(&etcd.prefix, index).await?;
            loop {
                let relevant = match watcher.next().await? {
                    WatchEvent::Changed(keys) => keys.iter().any(|k| config::is_config_key(&etcd.prefix, k)),
                    WatchEvent::Resync => true,
                };
                if relevant {
                    let read = read_config(&client, &etcd.prefix).await?;
                    index = index.max(read.index);
                    apply(&base, read, &mut current_layer, &tx, &mut warned);
                }
            }
        }
        .await;
        if let Err(error) = result {
            if outage.is_none() {
                tracing::warn!(%error, "etcd is unreachable; the last good configuration stays in force and etcd is retried with backoff.");
                outage = Some(chrono::Utc::now().to_rfc3339());
            } else {
                tracing::debug!(%error, "etcd still unreachable.");
            }
            tokio::time::sleep(backoff.next_wait()).await;
        }
    }
}

fn apply(
    base: &LoadOptions,
    read: ConfigRead,
    current_layer: &mut Option<EtcdLayer>,
    tx: &watch::Sender<Arc<Settings>>,
    warned: &mut Vec<String>,
) {
    if let Ok(layer) = &read.layer {
        if layer.warnings != *warned {
            for warning in &layer.warnings {
                tracing::warn!("{warning}");
            }
            *warned = layer.warnings.clone();
        }
    }
    let current = tx.borrow().clone();
    match evaluate(base, read.layer, &current, current_layer.as_ref()) {
        Outcome::Apply {
            settings,
            layer,
            changed,
        } => {
            tracing::info!(changed = %changed.join(", "), "Configuration reloaded from etcd; it applies from the next run on.");
            metrics()
                .config_reloads
                .with_label_values(&["success"])
                .inc();
            *current_layer = Some(layer);
            let _ = tx.send(Arc::new(*settings));
        }
        Outcome::Unchanged { layer } => *current_layer = Some(layer),
        Outcome::Invalid(problems) => {
            metrics()
                .config_reloads
                .with_label_values(&["invalid"])
                .inc();
            for (key, from, problem) in problems {
                tracing::error!(key = %key, from = %from, problem = %problem, "Configuration change rejected; the last good configuration stays in force.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::map_etcd_keys;

    fn layer(pairs: &[(&str, &str)]) -> Result<EtcdLayer, Vec<config::EtcdKeyProblem>> {
        let nodes: Vec<(String, Vec<u8>)> = pairs
            .iter()
            .map(|(k, v)| (format!("/deis/backup/{k}"), v.as_bytes().to_vec()))
            .collect();
        map_etcd_keys("/deis", &nodes)
    }

    #[test]
    fn a_valid_change_is_applied_with_its_keys_named() {
        let base = LoadOptions::default();
        let current = Settings::default();
        match evaluate(
            &base,
            layer(&[("schedule/volume", "0 4 * * *")]),
            &current,
            None,
        ) {
            Outcome::Apply {
                settings, changed, ..
            } => {
                assert_eq!(settings.schedule.volume, "0 4 * * *");
                assert_eq!(changed, ["schedule.volume"]);
            }
            other => panic!("{other:?}"),
        }
        let same = layer(&[]).unwrap();
        assert!(matches!(
            evaluate(&base, Ok(same.clone()), &current, Some(&same)),
            Outcome::Unchanged { .. }
        ));
    }

    #[test]
    fn an_invalid_value_names_key_and_etcd_key() {
        let base = LoadOptions::default();
        let current = Settings::default();
        match evaluate(
            &base,
            layer(&[("schedule/volume", "61 * * * *")]),
            &current,
            None,
        ) {
            Outcome::Invalid(problems) => {
                assert_eq!(problems[0].0, "schedule.volume");
                assert_eq!(problems[0].1, "etcd /deis/backup/schedule/volume");
            }
            other => panic!("{other:?}"),
        }
        match evaluate(
            &base,
            layer(&[("retention/keepLast", "-2")]),
            &current,
            None,
        ) {
            Outcome::Invalid(problems) => {
                assert_eq!(problems[0].1, "/deis/backup/retention/keepLast")
            }
            other => panic!("{other:?}"),
        }
    }
}
