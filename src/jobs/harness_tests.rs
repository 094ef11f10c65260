//! The harness around a job, with small jobs of our own on a local destination: results,
//! the manifest written last, the deadline, shutdown, and the metrics each outcome leaves.

use super::*;
use crate::config::{ConfigDuration, Settings};
use crate::store::{list_complete, LocalDestination, Warning};
use std::io::Write;

/// A job whose backup is a closure (and whose kind is `etcd`, so that tests of other jobs'
/// metrics never meet it).
struct TestJob<F>(F, ConfigDuration);

impl<F> Job for TestJob<F>
where
    F: Fn(&mut Run<'_>) -> Result<Backup, JobError> + Send + Sync,
{
    fn kind(&self) -> JobKind {
        JobKind::Etcd
    }
    fn schedule<'s>(&self, settings: &'s Settings) -> &'s str {
        &settings.schedule.etcd
    }
    fn deadline(&self, _: &Settings) -> ConfigDuration {
        self.1
    }
    fn backup(&self, run: &mut Run<'_>) -> Result<Backup, JobError> {
        (self.0)(run)
    }
    fn restore_step(&self) -> crate::restore::RestoreStep {
        crate::restore::steps::etcd
    }
}

fn write_one(run: &mut Run<'_>, warnings: Vec<Warning>) -> Result<Backup, JobError> {
    let mut artifact = run.start_artifact("data.zst")?;
    artifact.write_all(b"some bytes").unwrap();
    let artifact = artifact.finish("json").unwrap();
    Ok(Backup {
        source: serde_json::json!({"kind": "test"}),
        artifacts: vec![artifact],
        warnings,
        stats: serde_json::json!({"n": 1}),
    })
}

fn runs(result: &str) -> u64 {
    metrics().runs.with_label_values(&["etcd", result]).get()
}

/// The harness tests share the process-wide metrics: one test at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn a_kept_set_is_a_success_or_partial_and_counted() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let dest = LocalDestination::new(tmp.path());
    let settings = Settings::default();
    let hour = ConfigDuration::secs(3600);

    let before = runs("success");
    let ok = run_job(
        &TestJob(|r: &mut Run<'_>| write_one(r, vec![]), hour),
        &settings,
        &dest,
        &Cancel::new(),
    );
    assert_eq!(ok.result, RunResult::Success, "{:?}", ok.error);
    assert_eq!(runs("success"), before + 1);
    let manifest = ok.manifest.unwrap();
    assert_eq!(manifest.stats["n"], 1);
    assert_eq!(
        ok.finished_at, manifest.finished_at,
        "last_run == last_success"
    );

    let unreadable = Warning {
        path: "secret.key".into(),
        kind: WarningKind::Unreadable,
        detail: "cannot be opened: Permission denied".into(),
    };
    let before = runs("partial");
    let partial = run_job(
        &TestJob(
            move |r: &mut Run<'_>| write_one(r, vec![unreadable.clone()]),
            hour,
        ),
        &settings,
        &dest,
        &Cancel::new(),
    );
    assert_eq!(partial.result, RunResult::Partial);
    assert_eq!(runs("partial"), before + 1);
    assert_eq!(
        metrics()
            .last_run_partial
            .with_label_values(&["etcd"])
            .get(),
        1
    );
    assert_eq!(
        list_complete(&dest, None).unwrap().complete.len(),
        2,
        "a partial set is kept"
    );
}

#[test]
fn a_failed_or_cancelled_run_keeps_nothing_and_says_why() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let dest = LocalDestination::new(tmp.path());
    let settings = Settings::default();

    // writes until the harness cancels it at its 300 ms deadline
    let endless = |r: &mut Run<'_>| -> Result<Backup, JobError> {
        let mut artifact = r.start_artifact("data.zst")?;
        loop {
            artifact
                .write_all(&[7u8; 4096])
                .map_err(|e| JobError::Cancelled(e.to_string()))?;
        }
    };
    let before = runs("failure");
    let late = run_job(
        &TestJob(
            endless,
            ConfigDuration(std::time::Duration::from_millis(300)),
        ),
        &settings,
        &dest,
        &Cancel::new(),
    );
    assert_eq!(late.result, RunResult::Failure);
    let error = late.error.unwrap();
    assert!(
        error.contains("the run passed its deadline of 300ms (deadline.etcd)"),
        "{error}"
    );
    assert_eq!(runs("failure"), before + 1);

    // cancelled from outside (the daemon stopping)
    let shutdown = Cancel::new();
    shutdown.cancel("the daemon is stopping");
    let stopped = run_job(
        &TestJob(endless, ConfigDuration::secs(3600)),
        &settings,
        &dest,
        &shutdown,
    );
    assert!(stopped.error.unwrap().contains("the daemon is stopping"));

    // a job that returns without writing its set
    let nothing = run_job(
        &TestJob(
            |_: &mut Run<'_>| Ok(Backup::default()),
            ConfigDuration::secs(60),
        ),
        &settings,
        &dest,
        &Cancel::new(),
    );
    assert!(nothing
        .error
        .unwrap()
        .contains("without creating its backup set"));

    assert!(list_complete(&dest, None).unwrap().complete.is_empty());
    let leftovers: Vec<_> = walk(tmp.path());
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
