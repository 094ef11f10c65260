//! The daemon (`deis-backup run`): loads the configuration, schedules the jobs, follows etcd
//! changes live, serves metrics, and stops cleanly on SIGTERM/SIGINT.
//!
//! With etcd, daemons elect one leader ([`leader`]) and only the leader runs the jobs; without
//! etcd the one daemon runs them.

pub mod leader;
pub mod reload;
pub mod scheduler;

use crate::config::{self, EtcdLayer, LoadOptions, Settings};
use crate::etcd::{read_config, EtcdClient};
use crate::metrics::{metrics, serve};
use crate::util::Backoff;
use reload::{evaluate, Outcome};
use scheduler::Scheduler;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot listen for signals")]
    Signals(#[source] std::io::Error),
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(options: LoadOptions) -> Result<(), DaemonError> {
    crate::runtime::block_on(run_async(options))
}

async fn run_async(base: LoadOptions) -> Result<(), DaemonError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(DaemonError::Signals)?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    };
    tokio::pin!(shutdown);

    let without_etcd = config::load_unvalidated(&base)?;
    let etcd = without_etcd.etcd.clone();
    let (settings, layer) = tokio::select! {
        start = initial(&base, &etcd) => start,
        signal = &mut shutdown => {
            tracing::info!(signal, "Stopping before the configuration was complete.");
            return Ok(());
        }
    };
    let (tx, rx) = watch::channel(Arc::new(settings.clone()));
    let elected = !etcd.endpoints.is_empty();
    let (leader_tx, mut leader_rx) = watch::channel(!elected);
    for job in crate::store::JobKind::ALL {
        if elected {
            metrics().disown(job.as_str());
        } else {
            metrics().own(job.as_str());
        }
    }
    let election = elected.then(|| tokio::spawn(leader::elect(etcd.clone(), leader_tx.clone())));

    let metrics_task = match tokio::net::TcpListener::bind(&settings.metrics.listen).await {
        Ok(listener) => {
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(listen = %addr, "Serving metrics at /metrics.");
            Some(tokio::spawn(serve(listener)))
        }
        Err(error) => {
            tracing::error!(listen = %settings.metrics.listen, %error, "Cannot serve metrics; the daemon runs without them. Check metrics.listen.");
            None
        }
    };
    let watcher = (!etcd.endpoints.is_empty()).then(|| {
        tokio::spawn(reload::watch_etcd(
            base.clone(),
            etcd.clone(),
            layer,
            tx.clone(),
        ))
    });

    let mut scheduler = Scheduler::new();
    if *leader_rx.borrow_and_update() {
        scheduler.apply(&settings, &rx);
    }
    tracing::info!(etcd = %etcd.endpoints.join(","), "Daemon started.");
    let mut changes = rx.clone();
    let signal = loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    continue;
                }
                let new = changes.borrow_and_update().clone();
                if *leader_rx.borrow() {
                    scheduler.apply(&new, &rx);
                }
            }
            changed = leader_rx.changed() => {
                if changed.is_err() {
                    continue;
                }
                if *leader_rx.borrow_and_update() {
                    scheduler.apply(&rx.borrow().clone(), &rx);
                } else {
                    // runs in progress finish; no new run starts here
                    scheduler.stop();
                }
            }
            signal = &mut shutdown => break signal,
        }
    };

    tracing::info!(signal, "Shutting down: no new runs start.");
    scheduler.stop();
    if let Some(w) = watcher {
        w.abort();
    }
    if let Some(e) = election {
        e.abort();
    }
    let mut logged = false;
    while !scheduler.busy().is_empty() {
        if !logged {
            tracing::info!(jobs = ?scheduler.busy(), "Waiting for runs in progress to finish.");
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if elected && *leader_rx.borrow() {
        leader::resign(&etcd).await;
    }
    if let Some(m) = metrics_task {
        m.abort();
    }
    // the senders lived until here so that the loop above never saw a closed channel
    drop((tx, leader_tx));
    tracing::info!("Daemon stopped.");
    Ok(())
}

/// The configuration to start on: etcd's when it can be read and is valid; otherwise the
/// file/environment configuration when it is valid on its own; otherwise wait, saying why.
async fn initial(base: &LoadOptions, etcd: &config::EtcdSettings) -> (Settings, Option<EtcdLayer>) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    let mut said = String::new();
    loop {
        let fallback = config::load(base);
        if etcd.endpoints.is_empty() {
            match fallback {
                Ok(settings) => return (settings, None),
                Err(e) => say_once(
                    &mut said,
                    format!("The configuration is not usable; waiting for it to be fixed: {e}"),
                ),
            }
        } else {
            let read = async {
                let client = EtcdClient::connect(etcd).await?;
                read_config(&client, &etcd.prefix).await
            };
            match read.await {
                Ok(read) => match evaluate(base, read.layer, &Settings::default(), None) {
                    Outcome::Apply { settings, layer, .. } => return (*settings, Some(layer)),
                    Outcome::Unchanged { layer } => return (Settings::default(), Some(layer)),
                    Outcome::Invalid(problems) => {
                        for (key, from, problem) in &problems {
                            tracing::error!(key = %key, from = %from, problem = %problem, "The configuration in etcd is not usable.");
                        }
                        metrics().config_reloads.with_label_values(&["invalid"]).inc();
                        if let Ok(settings) = fallback {
                            tracing::warn!("Starting on the file/environment configuration; etcd changes are applied once valid.");
                            return (settings, None);
                        }
                    }
                },
                Err(error) => match fallback {
                    Ok(settings) => {
                        tracing::warn!(%error, "etcd is unreachable at start; starting on the file/environment configuration and retrying etcd.");
                        return (settings, None);
                    }
                    Err(e) => say_once(&mut said, format!("etcd is unreachable ({error}) and the file/environment configuration is not usable on its own; waiting: {e}")),
                },
            }
        }
        tokio::time::sleep(backoff.next_wait()).await;
    }
}

fn say_once(said: &mut String, message: String) {
    if *said != message {
        tracing::error!("{message}");
        *said = message;
    }
}
