//! Log lines that fit their host: `--log-format json` gives one JSON object a line carrying the
//! run's job and set id; `RUST_LOG=trace` (every crate's debug output) never shows a secret,
//! whether the run talks to a local folder, radosgw (v2 and v4 signatures) or etcd (v2, v3).
//!
//! They read the `TESTBED_*` variables of `tests/testbed/up.sh`; run them with
//! `bash tests/run.sh --test log_format`.

mod etcd_support;
mod support;

use deis_backup::config::EtcdApi;
use deis_backup::runtime::block_on;
use std::process::{Command, Stdio};
use support::*;

/// Runs `cmd` with `RUST_LOG=trace` and JSON logs.
fn traced(mut cmd: Command, args: &[&str]) -> Run {
    cmd.env("RUST_LOG", "trace")
        .args(args)
        .args(["--log-format", "json"])
        .stdin(Stdio::null())
        .output()
        .expect("run deis-backup")
        .into()
}

/// Every stderr line as JSON (the test fails on the first line that is not).
fn json_lines(run: &Run) -> Vec<serde_json::Value> {
    run.stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect()
}

/// The run id that `backup` printed as `JOB/RUN-ID: complete ...`.
fn run_id(run: &Run, job: &str) -> String {
    let line = run
        .stdout
        .lines()
        .find(|l| l.starts_with(&format!("{job}/")) && l.contains(": complete"))
        .unwrap_or_else(|| panic!("no completed {job} set in:\n{}", run.all()));
    line[job.len() + 1..line.find(':').unwrap()].to_string()
}

/// Asserts that some JSON line's current span names `job` and the run id `id`.
fn assert_run_fields(lines: &[serde_json::Value], job: &str, id: &str) {
    let found = lines.iter().any(|l| {
        l["span"]["backup_job"] == job && l["span"]["set"] == id && l["level"].is_string()
    });
    assert!(
        found,
        "no log line of run {job}/{id} carries the run's span"
    );
}

/// Asserts that none of `secrets` appears in the run's output, and that the output does hold
/// other crates' trace lines (so the check has something to look at).
#[track_caller]
fn assert_no_secret(run: &Run, secrets: &[&str]) {
    let foreign = json_lines(run)
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| !t.starts_with("deis_backup"))
        })
        .count();
    assert!(
        foreign > 0,
        "no trace output of other crates:\n{}",
        run.stderr
    );
    let all = run.all();
    for secret in secrets {
        assert!(secret.len() >= 8, "a secret too short to test: {secret:?}");
        assert!(!all.contains(secret), "a secret appears in the output");
    }
}

#[test]
fn json_lines_of_a_local_run_carry_its_job_and_id() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("store");
    write(&src.join("a/file"), &random_bytes(1, 10_000));
    let dest = file_url(&tmp.path().join("backups"));
    let mut cmd = cli();
    cmd.args(["backup", "volume", "--volume-path"]).arg(&src);
    let run = traced(cmd, &["--destination", &dest]);
    run.assert_ok();
    let lines = json_lines(&run);
    assert!(!lines.is_empty(), "no log lines at trace level");
    assert!(!run.stderr.contains('\u{1b}'), "ANSI codes in JSON logs");
    assert_run_fields(&lines, "volume", &run_id(&run, "volume"));
    for line in &lines {
        assert!(line["timestamp"].is_string(), "no timestamp: {line}");
        assert!(line["fields"].is_object(), "no fields: {line}");
    }
}

#[test]
fn text_format_stays_and_bad_formats_or_filters_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = file_url(&tmp.path().join("backups"));
    let text = run(&["list", "--destination", &dest, "--log-format", "text"]);
    text.assert_ok();

    let xml = run(&["list", "--destination", &dest, "--log-format", "xml"]);
    assert_eq!(xml.code, 2, "{}", xml.all());
    assert!(xml.stderr.contains("xml"), "{}", xml.all());

    let bad_env = Run::from(
        cli()
            .args(["list", "--destination", &dest])
            .env("DEIS_BACKUP_LOG__FORMAT", "yaml")
            .output()
            .unwrap(),
    );
    assert_eq!(bad_env.code, 2, "{}", bad_env.all());
    assert!(bad_env.stderr.contains("DEIS_BACKUP_LOG__FORMAT"));

    let bad_filter = Run::from(
        cli()
            .args(["list", "--destination", &dest])
            .env("RUST_LOG", "info,hyper=loud")
            .output()
            .unwrap(),
    );
    assert_eq!(bad_filter.code, 2, "{}", bad_filter.all());
    assert!(
        bad_filter.stderr.contains("info,hyper=loud") && bad_filter.stderr.contains("RUST_LOG")
    );

    // the config file's [log] format applies when no flag or variable says otherwise
    let config = tmp.path().join("c.toml");
    std::fs::write(&config, "[log]\nformat = \"json\"\n").unwrap();
    let src = tmp.path().join("store");
    write(&src.join("f"), b"data");
    let mut cmd = cli();
    cmd.args(["backup", "volume", "--destination", &dest, "--config"])
        .arg(&config)
        .arg("--volume-path")
        .arg(&src);
    let from_file = Run::from(cmd.stdin(Stdio::null()).output().unwrap());
    from_file.assert_ok();
    let lines = json_lines(&from_file);
    assert_run_fields(&lines, "volume", &run_id(&from_file, "volume"));

    // an explicit --log-level beats RUST_LOG
    let quiet = Run::from(
        cli()
            .args(["backup", "volume", "--destination", &dest, "--volume-path"])
            .arg(&src)
            .args(["--log-level", "error", "--log-format", "json"])
            .env("RUST_LOG", "trace")
            .output()
            .unwrap(),
    );
    quiet.assert_ok();
    assert!(quiet.stderr.trim().is_empty(), "{}", quiet.stderr);
}

/// `deis-backup` with the gateway and the S3 destination configured through the environment.
fn s3_cli(source_bucket: &str, signature: &str, prefix: &str) -> Command {
    let mut cmd = cli();
    let dest = format!("s3://{}/{prefix}", testbed("TESTBED_DEST_BUCKET"));
    for (key, value) in [
        ("GATEWAY__ENDPOINT", testbed("TESTBED_S3_ENDPOINT")),
        ("GATEWAY__ACCESS_KEY", testbed("TESTBED_GATEWAY_ACCESS_KEY")),
        ("GATEWAY__SECRET_KEY", testbed("TESTBED_GATEWAY_SECRET_KEY")),
        ("GATEWAY__SIGNATURE", signature.to_string()),
        ("GATEWAY__BUCKETS", source_bucket.to_string()),
        ("DESTINATION__URL", dest),
        ("DESTINATION__ENDPOINT", testbed("TESTBED_S3_ENDPOINT")),
        (
            "DESTINATION__ACCESS_KEY",
            testbed("TESTBED_DEST_ACCESS_KEY"),
        ),
        (
            "DESTINATION__SECRET_KEY",
            testbed("TESTBED_DEST_SECRET_KEY"),
        ),
    ] {
        cmd.env(format!("DEIS_BACKUP_{key}"), value);
    }
    cmd
}

#[test]
fn trace_logs_of_s3_runs_show_no_secret() {
    // access keys included: the product treats them as secrets too (`config show` hides them)
    let secrets = [
        testbed("TESTBED_DEST_SECRET_KEY"),
        testbed("TESTBED_GATEWAY_SECRET_KEY"),
        testbed("TESTBED_DEST_ACCESS_KEY"),
        testbed("TESTBED_GATEWAY_ACCESS_KEY"),
    ];
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let source = format!("logs-{}", unique("src").to_lowercase().replace('_', "-"));
    let gateway = s3_client("TESTBED_GATEWAY_ACCESS_KEY", "TESTBED_GATEWAY_SECRET_KEY");
    block_on(gateway.create_bucket().bucket(&source).send()).expect("create source bucket");
    block_on(
        gateway
            .put_object()
            .bucket(&source)
            .key("obj")
            .body(random_bytes(2, 4096).into())
            .send(),
    )
    .expect("put source object");
    let prefix = unique("log-format");
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("store/f"), &random_bytes(3, 70_000));

    for signature in ["v2", "v4"] {
        // a filter that asks for the capped crates' trace output does not get it
        let mut cmd = s3_cli(&source, signature, &prefix);
        cmd.args([
            "--log-level",
            "trace,aws_smithy_runtime=trace,aws_sigv4=trace",
        ]);
        let gw = traced(cmd, &["backup", "gateway"]);
        gw.assert_ok();
        assert_no_secret(&gw, &secrets);
        assert_run_fields(&json_lines(&gw), "gateway", &run_id(&gw, "gateway"));
    }
    let mut cmd = s3_cli(&source, "auto", &prefix);
    cmd.arg("--volume-path").arg(tmp.path().join("store"));
    let vol = traced(cmd, &["backup", "volume"]);
    vol.assert_ok();
    assert_no_secret(&vol, &secrets);
    assert_run_fields(&json_lines(&vol), "volume", &run_id(&vol, "volume"));

    let dest = dest_client();
    let bucket = testbed("TESTBED_DEST_BUCKET");
    for key in keys_under(&bucket, &prefix) {
        block_on(dest.delete_object().bucket(&bucket).key(key).send()).unwrap();
    }
    block_on(gateway.delete_object().bucket(&source).key("obj").send()).unwrap();
    block_on(gateway.delete_bucket().bucket(&source).send()).unwrap();
}

#[test]
fn trace_logs_of_etcd_runs_show_no_exported_secret() {
    let url = etcd_support::endpoint();
    let secret = format!("etcd-held-secret-{}", unique("v"));
    for (api, flag) in [(EtcdApi::V2, "v2"), (EtcdApi::V3, "v3")] {
        let prefix = etcd_support::unique_prefix(&format!("logs-{flag}"));
        let client = etcd_support::client(&url, api);
        let key = format!("{prefix}/store/gateway/secretKey");
        etcd_support::put(&client, &[(&key, &secret)]);
        let tmp = tempfile::tempdir().unwrap();
        let dest = file_url(&tmp.path().join("backups"));
        let mut cmd = cli();
        cmd.env("DEIS_BACKUP_ETCD__PREFIX", &prefix);
        let run = traced(
            cmd,
            &[
                "backup",
                "etcd",
                "--destination",
                &dest,
                "--etcd",
                &url,
                "--etcd-api",
                flag,
            ],
        );
        run.assert_ok();
        assert_no_secret(&run, &[&secret]);
        assert_run_fields(&json_lines(&run), "etcd", &run_id(&run, "etcd"));
    }
}
