//! The daemon (`deis-backup run`): loads the configuration, schedules the jobs, follows etcd
//! changes live, serves metrics, and stops cleanly on SIGTERM/SIGINT.
//!
//! With etcd, daemons elect one leader ([`leader`]) and only the leader runs the jobs; without
//! etcd the one daemon runs them.

mod defaults;
pub mod eligibility;
pub mod leader;
mod ownership;
pub mod reload;
pub mod scheduler;
mod trigger;

use crate::config::{self, EtcdLayer, LoadOptions, Settings};
use crate::etcd::{read_config, EtcdClient};
use crate::metrics::{metrics, serve};
use crate::store::JobKind;
use crate::util::Backoff;
use ownership::{give_up_ownership, take_ownership};
use reload::{evaluate, Outcome};
use scheduler::Scheduler;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot listen for signals")]
    Signals(#[source] std::io::Error),
}

/// After the shutdown grace, how long cancelled runs get to unwind (abort their uploads)
/// before the daemon exits anyway; what they leave is swept at the next start. The fleet
/// unit's `TimeoutStopSec` is at least `daemon.shutdown-grace` + this + a margin.
pub const UNWIND: Duration = Duration::from_secs(30);

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(options: LoadOptions) -> Result<(), DaemonError> {
    crate::runtime::block_on(run_async(options))
}

async fn run_async(base: LoadOptions) -> Result<(), DaemonError> {
    let mut signals = crate::runtime::Termination::listen().map_err(DaemonError::Signals)?;
    let shutdown = async move { signals.next().await };
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
    // with etcd, each job is owned by the daemon holding its lease; without, this one owns all
    let all: BTreeSet<JobKind> = JobKind::ALL.into_iter().collect();
    let start_owned = if elected {
        BTreeSet::new()
    } else {
        all.clone()
    };
    let (owned_tx, mut owned_rx) = watch::channel(start_owned.clone());
    let mut owned = start_owned;

    // what a crash or kill -9 of an earlier run left: swept now, in the background (every run
    // sweeps again before it starts)
    let sweep = spawn_blocking_with(&settings, start_sweep);
    // an owner's gauges are seeded before the first scrape can see them
    if elected {
        give_up_ownership(&JobKind::ALL);
    } else {
        spawn_blocking_with(&settings, |s| take_ownership(s, &JobKind::ALL))
            .await
            .ok();
    }
    let metrics_task = serve_metrics(&settings.metrics.listen).await;
    let (fire_tx, mut fire_rx) = mpsc::channel::<JobKind>(16);
    let mut background = Vec::new();
    if elected {
        let publish = (base.clone(), etcd.clone(), settings.timeouts.clone());
        background.push(tokio::spawn(async move {
            defaults::publish(&publish.0, &publish.1, &publish.2).await
        }));
        for job in JobKind::ALL {
            background.push(tokio::spawn(leader::elect(
                job,
                rx.clone(),
                owned_tx.clone(),
            )));
        }
        background.push(tokio::spawn(trigger::watch_triggers(
            rx.clone(),
            owned_rx.clone(),
            fire_tx.clone(),
        )));
        background.push(tokio::spawn(reload::watch_etcd(
            base.clone(),
            etcd.clone(),
            layer,
            tx.clone(),
        )));
    }

    let mut scheduler = Scheduler::new();
    scheduler.apply(&settings, &owned, &rx);
    tracing::info!(etcd = %etcd.endpoints.join(","), "Daemon started.");
    let mut changes = rx.clone();
    let signal = loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    continue;
                }
                let new = changes.borrow_and_update().clone();
                scheduler.apply(&new, &owned, &rx);
            }
            changed = owned_rx.changed() => {
                if changed.is_err() {
                    continue;
                }
                let now_owned = owned_rx.borrow_and_update().clone();
                let current = rx.borrow().clone();
                let gained: Vec<JobKind> = now_owned.difference(&owned).copied().collect();
                let lost: Vec<JobKind> = owned.difference(&now_owned).copied().collect();
                if !gained.is_empty() {
                    let seed = gained.clone();
                    spawn_blocking_with(&current, move |s| take_ownership(s, &seed)).await.ok();
                }
                for &job in &lost {
                    // a daemon runs a job only while it holds its lease
                    scheduler.cancel_job(job, "this daemon lost the job's lease");
                    let running = scheduler.running_flag(job);
                    let still = owned_rx.clone();
                    tokio::spawn(async move {
                        while running.load(std::sync::atomic::Ordering::SeqCst) {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        if !still.borrow().contains(&job) {
                            give_up_ownership(&[job]);
                        }
                    });
                }
                owned = now_owned;
                scheduler.apply(&current, &owned, &rx);
            }
            Some(job) = fire_rx.recv() => {
                if !scheduler.trigger(job) {
                    tracing::warn!(backup_job = %job, "A trigger arrived for a job this daemon no longer owns.");
                }
            }
            signal = &mut shutdown => break signal,
        }
    };

    let grace = rx.borrow().daemon.shutdown_grace;
    tracing::info!(signal, grace = %grace, "Shutting down: no new runs start.");
    scheduler.stop();
    for task in &background {
        task.abort();
    }
    if !drain(&scheduler, grace.get()).await {
        let reason = format!("the daemon is stopping ({signal}) and its shutdown grace of {grace} (daemon.shutdown-grace) passed");
        tracing::warn!(jobs = ?scheduler.busy(), "Cancelling the runs still in progress: {reason}.");
        scheduler.cancel_runs(&reason);
        if !drain(&scheduler, UNWIND).await {
            tracing::error!(jobs = ?scheduler.busy(), "Runs did not unwind in time; exiting anyway. Their incomplete sets are swept at the next start.");
        }
    }
    sweep.abort();
    if elected {
        leader::resign(&etcd, &owned).await;
    }
    if let Some(m) = metrics_task {
        m.abort();
    }
    // the senders lived until here so that the loop above never saw a closed channel
    drop((tx, owned_tx, fire_tx));
    tracing::info!("Daemon stopped.");
    Ok(())
}

/// Waits until no run is in progress, at most `limit`; true when none is left.
async fn drain(scheduler: &Scheduler, limit: Duration) -> bool {
    let until = tokio::time::Instant::now() + limit;
    let mut logged = false;
    while !scheduler.busy().is_empty() {
        if tokio::time::Instant::now() >= until {
            return false;
        }
        if !logged {
            tracing::info!(jobs = ?scheduler.busy(), limit = ?limit, "Waiting for runs in progress to finish.");
            logged = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    true
}

/// Runs blocking `work` on the settings on a blocking thread.
fn spawn_blocking_with(
    settings: &Settings,
    work: impl FnOnce(&Settings) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let settings = settings.clone();
    tokio::task::spawn_blocking(move || work(&settings))
}

/// Sweeps what interrupted runs left at the destination (logged, never fatal).
fn start_sweep(settings: &Settings) {
    match crate::store::open_destination(settings) {
        Ok(dest) => crate::jobs::harness::sweep(dest.as_ref()),
        Err(e) => {
            tracing::warn!(error = %crate::error_chain::error_chain(&e), "Cannot sweep the destination at start; each run sweeps before it starts.")
        }
    }
}

/// Binds the metrics listener; without it the daemon runs on (an error says why).
async fn serve_metrics(listen: &str) -> Option<tokio::task::JoinHandle<()>> {
    match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => {
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(listen = %addr, "Serving metrics at /metrics.");
            Some(tokio::spawn(serve(listener)))
        }
        Err(error) => {
            tracing::error!(listen = %listen, %error, "Cannot serve metrics; the daemon runs without them. Check metrics.listen.");
            None
        }
    }
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
