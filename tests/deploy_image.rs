//! The container image and the fleet unit: the image built by `deploy/image/build.sh` (on the
//! local base of `deploy/image/base-image.sh`, with the debug binary) runs as the unit runs it
//! — the `docker run` and `docker stop` of `units/deis-backup.service`, parsed from the unit —
//! against the test bed's etcd and `deis-database` container, backs up the volume and the
//! database, serves `/metrics`, and exits 0 on `docker stop`. `systemd-analyze verify` accepts
//! the unit.
//!
//! Needs the test bed and a Docker engine: run `bash tests/run.sh --test deploy_image`.

mod etcd_support;
mod support;

use etcd_support::complete_sets;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{file_url, sample, scrape, testbed, unique, wait_until, write};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The unit file as systemd reads it: continuation lines joined, comments dropped.
fn unit_lines() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("units/deis-backup.service")).unwrap();
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if current.is_empty() && (line.starts_with('#') || line.starts_with(';')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    lines
}

/// Every value of `key=` in the unit, in order.
fn unit_values(key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    unit_lines()
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

/// A command line of the unit, split into words, `${VAR}` replaced from `vars` (the unit's
/// `Environment=` lines and what `/etc/environment` would give); only plain words allowed.
fn unit_command(key: &str, vars: &HashMap<String, String>) -> Vec<String> {
    let values = unit_values(key);
    assert_eq!(values.len(), 1, "the unit has one {key}=: {values:?}");
    let line = &values[0];
    assert!(
        !line.contains('"') && !line.contains('\''),
        "{key} must be plain words (the test runs it as the unit would): {line}"
    );
    line.split_whitespace()
        .map(|word| substitute(word, vars))
        .collect()
}

/// One word with `${VAR}` replaced from `vars`, as systemd does; no other `$` allowed.
fn substitute(word: &str, vars: &HashMap<String, String>) -> String {
    let mut word = word.to_string();
    for (name, value) in vars {
        word = word.replace(&format!("${{{name}}}"), value);
    }
    assert!(!word.contains('$'), "unknown variable in the unit: {word}");
    word
}

/// The unit's `ExecStartPre=/bin/sh -c "SCRIPT"` scripts as sh gets them (`${VAR}` replaced
/// from `vars`), with the container name `deis-backup` replaced by `name`.
fn unit_pre_scripts(vars: &HashMap<String, String>, name: &str) -> Vec<String> {
    unit_values("ExecStartPre")
        .iter()
        .map(|line| {
            let script = line
                .strip_prefix("/bin/sh -c \"")
                .and_then(|s| s.strip_suffix('"'))
                .unwrap_or_else(|| panic!("ExecStartPre is /bin/sh -c \"...\": {line}"));
            script
                .split_whitespace()
                .map(|word| match substitute(word, vars) {
                    w if w == "deis-backup" => name.to_string(),
                    w => w,
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The unit's `Environment=NAME=VALUE` settings, plus the host's address from /etc/environment.
fn unit_vars() -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = unit_values("Environment")
        .iter()
        .filter_map(|v| v.split_once('=').map(|(k, v)| (k.into(), v.into())))
        .collect();
    vars.insert("COREOS_PRIVATE_IPV4".into(), "127.0.0.1".into());
    vars
}

/// Runs a command to completion within `secs`, failing the test with its output otherwise.
fn run_bounded(cmd: &mut Command, secs: u64) -> String {
    let what = format!("{cmd:?}");
    let out_path = std::env::temp_dir().join(unique("deploy-image-cmd"));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let done = wait_until(secs * 1000, || matches!(child.try_wait(), Ok(Some(_))));
    if !done {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    assert!(
        done && status.success(),
        "{what} failed ({status:?}, finished: {done}):\n{output}"
    );
    output
}

fn docker(args: &[&str]) -> Command {
    let mut cmd = Command::new("docker");
    cmd.args(args);
    cmd
}

/// Builds the image from the debug binary on the local base; gives its name.
fn build_image(repository: &str) -> String {
    let base = run_bounded(
        Command::new("bash").arg(repo().join("deploy/image/base-image.sh")),
        900,
    );
    let base = base.lines().last().unwrap_or_default().trim().to_string();
    assert!(base.contains(':'), "base-image.sh printed no image: {base}");
    let out = run_bounded(
        Command::new("bash")
            .arg(repo().join("deploy/image/build.sh"))
            .args(["--binary", env!("CARGO_BIN_EXE_deis-backup")])
            .args(["--base", &base, "--name", repository]),
        600,
    );
    let image = format!("{repository}:{}", env!("CARGO_PKG_VERSION"));
    assert!(
        out.contains(&image),
        "build.sh did not build {image}:\n{out}"
    );
    image
}

/// The daemon's container and its images: removed whatever happens.
struct Guard {
    container: String,
    repository: String,
    client: Option<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = docker(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        quiet(&["rm", "-f", &self.container]);
        if let Some(mut client) = self.client.take() {
            let _ = client.kill();
            let _ = client.wait();
        }
        let version = format!("{}:{}", self.repository, env!("CARGO_PKG_VERSION"));
        let latest = format!("{}:latest", self.repository);
        quiet(&["rmi", &version, &latest]);
    }
}

/// Replaces the one word equal to `from` (asserting it is there) by `to`.
fn replace_word(words: &mut [String], from: &str, to: &str) {
    let at = words.iter().position(|w| w == from);
    let at = at.unwrap_or_else(|| panic!("the unit's command has no '{from}': {words:?}"));
    words[at] = to.to_string();
}

#[test]
fn the_image_runs_as_the_unit_runs_it_backs_up_and_stops_cleanly() {
    let vars = unit_vars();
    let unit_image = format!("deis-backup:{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        vars.get("BACKUP_IMAGE"),
        Some(&unit_image),
        "the unit runs the image of this version"
    );
    let mut run = unit_command("ExecStart", &vars);
    let mut stop = unit_command("ExecStop", &vars);
    assert_eq!(
        &run[..4],
        ["/usr/bin/docker", "run", "--name", "deis-backup"]
    );
    assert_eq!(
        &stop[..],
        ["/usr/bin/docker", "stop", "-t", "95", "deis-backup"]
    );
    assert_eq!(run.last().map(String::as_str), Some("run"), "{run:?}");
    for word in [
        "--rm",
        "--net=host",
        "/var/run/docker.sock:/var/run/docker.sock",
    ] {
        assert!(run.iter().any(|w| w == word), "no {word} in {run:?}");
    }

    // the test's stand-ins: a unique container and image, the test bed's etcd, a temp volume
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let dest = tmp.path().join("backups");
    write(
        &store.join("apps/registry.json"),
        b"{\"the\":\"store volume\"}",
    );
    std::fs::create_dir_all(&dest).unwrap();
    let name = unique("deis-backup-test");
    let repository = unique("deis-backup-test").to_lowercase();
    let mut guard = Guard {
        container: name.clone(),
        repository: repository.clone(),
        client: None,
    };
    let image = build_image(&repository);

    // the unit's ExecStartPre: the image is there (no pull, which would fail here: no
    // registry), and a stale container of the same name is removed
    run_bounded(&mut docker(&["create", "--name", &name, &image]), 60);
    let mut pre_vars = vars.clone();
    pre_vars.insert("BACKUP_IMAGE".into(), image.clone());
    let scripts = unit_pre_scripts(&pre_vars, &name);
    assert_eq!(
        scripts.len(),
        2,
        "pull-if-missing and stale removal: {scripts:?}"
    );
    for script in &scripts {
        run_bounded(Command::new("/bin/sh").args(["-c", script]), 60);
    }
    let stale = docker(&["inspect", &name]).output().unwrap();
    assert!(
        !stale.status.success(),
        "ExecStartPre left the stale container"
    );
    let etcd = format!("DEIS_BACKUP_ETCD={}", etcd_support::endpoint());
    replace_word(&mut run, "deis-backup", &name);
    replace_word(&mut stop, "deis-backup", &name);
    replace_word(&mut run, &unit_image, &image);
    replace_word(&mut run, "DEIS_BACKUP_ETCD=127.0.0.1:4001", &etcd);
    let volume = format!("{}:/var/lib/deis/store:ro", store.display());
    replace_word(
        &mut run,
        "/var/lib/deis/store:/var/lib/deis/store:ro",
        &volume,
    );
    for word in [
        "DEIS_BACKUP_VOLUME__REQUIRE_MOUNT=true",
        "DEIS_BACKUP_LOG__FORMAT=json",
    ] {
        assert!(run.iter().any(|w| w == word), "no {word} in {run:?}");
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let prefix = etcd_support::unique_prefix("deploy-image");
    let test_env = [
        format!("DEIS_BACKUP_ETCD__PREFIX={prefix}"),
        format!("DEIS_BACKUP_DESTINATION__URL={}", file_url(&dest)),
        format!(
            "DEIS_BACKUP_DATABASE__CONTAINER={}",
            testbed("TESTBED_DB_CONTAINER")
        ),
        "DEIS_BACKUP_SCHEDULE__VOLUME=off".into(),
        "DEIS_BACKUP_SCHEDULE__DATABASE=off".into(),
        "DEIS_BACKUP_SCHEDULE__GATEWAY=off".into(),
        "DEIS_BACKUP_SCHEDULE__ETCD=off".into(),
        "DEIS_BACKUP_RETENTION__KEEP_LAST=1000".into(),
        format!("DEIS_BACKUP_METRICS__LISTEN=127.0.0.1:{port}"),
    ];
    let mut extra = vec!["-v".to_string(), format!("{0}:{0}", dest.display())];
    for value in test_env {
        extra.extend(["-e".to_string(), value]);
    }
    let image_at = run.iter().position(|w| *w == image).unwrap();
    run.splice(image_at..image_at, extra);

    // the daemon runs in the foreground of `docker run`, as under systemd
    let log_path = tmp.path().join("daemon.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let client = Command::new(&run[0])
        .args(&run[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("docker run");
    guard.client = Some(client);
    let daemon_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    for job in ["volume", "database"] {
        let owner = format!("deis_backup_job_owner{{backup_job=\"{job}\"}}");
        assert!(
            wait_until(60_000, || sample(&scrape(port), &owner) == Some(1.0)),
            "no {owner} 1 on /metrics:\n{}\nlog:\n{}",
            scrape(port),
            daemon_log()
        );
    }
    // the jobs have no schedule: triggered, as an operator would with deisctl
    let etcd = etcd_support::client(
        &etcd_support::endpoint(),
        deis_backup::config::EtcdApi::Auto,
    );
    etcd_support::put(
        &etcd,
        &[
            (&format!("{prefix}/backup/trigger/volume"), "now"),
            (&format!("{prefix}/backup/trigger/database"), "now"),
        ],
    );
    assert!(
        wait_until(120_000, || complete_sets(&dest, "volume") >= 1
            && complete_sets(&dest, "database") >= 1),
        "no volume and database sets at {}:\n{}",
        dest.display(),
        daemon_log()
    );
    // the unit logs JSON: every line parses, and a run's lines carry its job
    let text = daemon_log();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON line: {line}");
    }
    assert!(text.contains("\"backup_job\":\"database\""), "{text}");

    // the unit's ExecStop: SIGTERM to PID 1, which drains and exits 0 well within -t 95
    let started = Instant::now();
    run_bounded(Command::new(&stop[0]).args(&stop[1..]), 110);
    let client = guard.client.as_mut().unwrap();
    assert!(
        wait_until(10_000, || matches!(client.try_wait(), Ok(Some(_)))),
        "docker run did not return after docker stop"
    );
    let status = client.wait().unwrap();
    let took = started.elapsed();
    eprintln!("docker stop took {took:?}");
    assert_eq!(status.code(), Some(0), "exit status:\n{}", daemon_log());
    assert!(took < Duration::from_secs(95), "stop took {took:?}");
    assert!(daemon_log().contains("Daemon stopped."), "{}", daemon_log());
    guard.client = None;
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let unit: &Path = &repo().join("units/deis-backup.service");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(unit)
        .output()
        .expect("systemd-analyze (package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify reports bad values as warnings with status 0: any line about our unit fails
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("deis-backup.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {:?}\n{stderr}",
        out.status
    );
}
