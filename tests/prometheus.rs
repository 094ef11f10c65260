//! Real Prometheus tooling: the alert rules in deploy/prometheus/ pass `promtool check rules`
//! and their unit tests (`promtool test rules`), and what `/metrics` serves passes
//! `promtool check metrics` with every metric of the design's contract present.

use std::io::Write;
use std::process::{Command, Stdio};

const RULES: &str = "deploy/prometheus/deis-backup.rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/deis-backup.rules.test.yml";

fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: install Debian's prometheus (tests/testbed/install-deps.sh)");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn alert_rules_are_valid_and_their_unit_tests_pass() {
    let (ok, out) = promtool(&["check", "rules", RULES], None);
    assert!(ok && out.contains("6 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", RULE_TESTS], None);
    assert!(ok && out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_metrics_page_passes_promtool_and_has_every_contract_metric() {
    let m = deis_backup::metrics::metrics();
    // touch every labelled family once so that it is exposed
    m.runs.with_label_values(&["volume", "success"]).inc();
    m.last_success.with_label_values(&["volume"]).set(1);
    m.last_run.with_label_values(&["volume"]).set(1);
    m.running.with_label_values(&["volume"]).set(0);
    m.duration.with_label_values(&["volume"]).observe(1.5);
    m.schedule_interval
        .with_label_values(&["volume"])
        .set(86400);
    m.bytes_read.with_label_values(&["volume"]).inc_by(10);
    m.bytes_written.with_label_values(&["volume"]).inc_by(5);
    m.artifact_bytes.with_label_values(&["volume"]).set(5);
    m.gateway_objects
        .with_label_values(&["db_wal", "copied"])
        .inc();
    m.retention_deleted
        .with_label_values(&["volume", "set"])
        .inc();
    m.run_deadline.with_label_values(&["volume"]).set(7200);
    m.run_started.with_label_values(&["volume"]).set(1);
    m.last_run_partial.with_label_values(&["volume"]).set(0);
    m.files_unreadable.inc_by(0);
    m.own("volume");
    let page = m.render();
    for name in [
        "deis_backup_runs_total",
        "deis_backup_last_success_timestamp_seconds",
        "deis_backup_last_run_timestamp_seconds",
        "deis_backup_duration_seconds",
        "deis_backup_running",
        "deis_backup_bytes_read_total",
        "deis_backup_bytes_written_total",
        "deis_backup_artifact_bytes",
        "deis_backup_gateway_objects_total",
        "deis_backup_files_changed_during_read_total",
        "deis_backup_schedule_expected_interval_seconds",
        "deis_backup_job_owner",
        "deis_backup_config_reloads_total",
        "deis_backup_retention_deleted_total",
        "deis_backup_run_deadline_seconds",
        "deis_backup_run_started_timestamp_seconds",
        "deis_backup_last_run_partial",
        "deis_backup_files_unreadable_total",
    ] {
        assert!(
            page.contains(&format!("# TYPE {name} ")),
            "{name} missing:\n{page}"
        );
    }
    assert!(
        !page.contains("{job=") && page.contains("backup_job=\"volume\""),
        "the job label is backup_job, never job:\n{page}"
    );
    let (ok, out) = promtool(&["check", "metrics"], Some(&page));
    assert!(ok, "promtool check metrics:\n{out}\n{page}");
}
