//! `restore finish` through the binary against a real Docker engine and the test bed's etcd:
//! the controller stand-in (tests/testbed/controller-image.sh) in both variants, one whose
//! manage.py has `load_db_state_to_etcd` (Deis 1.11 and later) and one that has only
//! `shell`; each writes its Keys, Apps and Domains into etcd over the v2 API when saved, as
//! Deis's models do. Every stand-in writes under a prefix of its own and carries the test
//! bed's label, so `database-down.sh` removes what a failed test leaves.
//!
//! Needs the test bed: run `bash tests/run.sh` (it sets TESTBED_CONTROLLER_IMAGE,
//! TESTBED_DB_LABEL and TESTBED_ETCD_ENDPOINT). Without it these tests fail; they never skip.

mod etcd_support;
mod support;

use deis_backup::config::EtcdApi;
use deis_backup::etcd::Node;
use deis_backup::runtime::block_on;
use std::process::Stdio;
use support::*;

const ALICE_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 alice@laptop";
const BOB_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBob bob@desk";

/// The controller's database: two users' keys, an app with processes and one without, and a
/// domain.
fn state() -> String {
    serde_json::json!({
        "keys": [
            {"owner": "alice", "id": "alice@laptop", "public": ALICE_KEY},
            {"owner": "bob", "id": "bob@desk", "public": BOB_KEY},
        ],
        "apps": [
            {"id": "blog", "owner": "alice", "structure": {"web": 2, "worker": 1}},
            {"id": "quiet", "owner": "bob", "structure": {}},
        ],
        "domains": [{"app": "blog", "domain": "blog.example.com"}],
    })
    .to_string()
}

/// A running controller stand-in, removed on drop.
struct StandIn {
    name: String,
    /// The keyspace it writes to, standing in for `/deis`.
    prefix: String,
}

impl StandIn {
    /// Starts the stand-in of Deis `version` writing to `etcd` (`host:port`).
    fn start(version: &str, etcd: &str) -> Self {
        let name = unique("deis-controller-test");
        let prefix = etcd_support::unique_prefix("finish");
        let image = testbed("TESTBED_CONTROLLER_IMAGE");
        let label = testbed("TESTBED_DB_LABEL");
        let env = [
            format!("ETCD={etcd}"),
            format!("DEIS_ETCD_PREFIX={prefix}"),
            format!("CONTROLLER_DEIS_VERSION={version}"),
            format!("CONTROLLER_STATE={}", state()),
        ];
        let mut args = vec!["run", "-d", "--name", &name, "--label", &label];
        args.extend(["--network", "host"]);
        for e in &env {
            args.extend(["-e", e.as_str()]);
        }
        args.push(&image);
        docker(&args).assert_ok();
        let stand_in = StandIn { name, prefix };
        let up = wait_until(30_000, || {
            docker(&["exec", &stand_in.name, "true"]).code == 0
        });
        assert!(up, "the stand-in {} did not start", stand_in.name);
        stand_in
    }

    /// A stand-in with the test bed's etcd.
    fn with_testbed_etcd(version: &str) -> Self {
        let endpoint = etcd_support::endpoint();
        Self::start(version, endpoint.trim_start_matches("http://"))
    }

    /// Every key and directory it wrote, read back over the v2 API.
    fn written(&self) -> Vec<Node> {
        let client = etcd_support::client(&etcd_support::endpoint(), EtcdApi::V2);
        block_on(client.get_prefix(&self.prefix))
            .expect("read etcd")
            .nodes
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        docker(&["rm", "-f", "-v", &self.name]);
    }
}

/// `restore finish` against the test bed's etcd, with more arguments.
fn finish(extra: &[&str], env: &[(&str, &str)]) -> Run {
    let endpoint = etcd_support::endpoint();
    let mut cmd = cli();
    cmd.args(["restore", "finish", "--etcd", &endpoint])
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .output()
        .expect("run deis-backup")
        .into()
}

#[track_caller]
fn assert_has(out: &Run, needle: &str) {
    assert!(
        out.all().contains(needle),
        "{needle:?} missing from:\n{}",
        out.all()
    );
}

/// The keys a re-publishing controller writes: each user's key under its fingerprint, each
/// app's services directory, each domain naming its app.
#[track_caller]
fn assert_republished(stand_in: &StandIn) {
    let nodes = stand_in.written();
    let p = &stand_in.prefix;
    let value = |key: &str| {
        nodes
            .iter()
            .find(|n| n.key == key && !n.dir)
            .map(|n| String::from_utf8_lossy(&n.value).into_owned())
    };
    assert_eq!(
        value(&format!("{p}/domains/blog.example.com")).as_deref(),
        Some("blog"),
        "{nodes:?}"
    );
    for (owner, public) in [("alice", ALICE_KEY), ("bob", BOB_KEY)] {
        let under = format!("{p}/builder/users/{owner}/");
        let keys: Vec<&Node> = nodes
            .iter()
            .filter(|n| n.key.starts_with(&under) && !n.dir)
            .collect();
        assert_eq!(keys.len(), 1, "{owner}: {nodes:?}");
        assert_eq!(keys[0].value, public.as_bytes());
        let fingerprint = &keys[0].key[under.len()..];
        assert_eq!(fingerprint.split(':').count(), 16, "{fingerprint}");
    }
    for app in ["blog", "quiet"] {
        let dir = format!("{p}/services/{app}");
        assert!(
            nodes.iter().any(|n| n.key == dir && n.dir),
            "{dir} missing: {nodes:?}"
        );
    }
}

#[track_caller]
fn assert_scale_lines(out: &Run) {
    assert_has(out, "deis scale web=0 worker=0 -a blog\n");
    assert_has(out, "deis scale web=2 worker=1 -a blog\n");
    assert!(!out.stdout.contains("-a quiet"), "{}", out.all());
}

#[test]
fn a_controller_with_load_db_state_to_etcd_republishes_through_it() {
    let stand_in = StandIn::with_testbed_etcd("1.13");
    assert!(stand_in.written().is_empty());
    let out = finish(&["--container", &stand_in.name], &[]);
    out.assert_ok();
    assert_has(&out, &format!("controller container: {}", stand_in.name));
    assert_has(
        &out,
        "path: load_db_state_to_etcd (./manage.py load_db_state_to_etcd)",
    );
    assert_has(
        &out,
        "re-published to etcd: 2 key(s), 2 app(s), 1 domain(s)",
    );
    assert!(!out.stdout.contains("saved "), "{}", out.all());
    assert_scale_lines(&out);
    assert_republished(&stand_in);

    // running it again is harmless: the same keys, the directories left as they are
    finish(&["--container", &stand_in.name], &[]).assert_ok();
    assert_republished(&stand_in);
}

#[test]
fn a_controller_without_it_saves_every_key_app_and_domain_from_its_shell() {
    let stand_in = StandIn::with_testbed_etcd("1.10");
    // the container's name comes from the configuration in etcd this time
    let client = etcd_support::client(&etcd_support::endpoint(), EtcdApi::V2);
    let setting = format!("{}/backup/restore/controllerContainer", stand_in.prefix);
    etcd_support::put(&client, &[(&setting, &stand_in.name)]);
    let out = finish(&[], &[("DEIS_BACKUP_ETCD__PREFIX", &stand_in.prefix)]);
    out.assert_ok();
    assert_has(&out, &format!("controller container: {}", stand_in.name));
    assert_has(&out, "path: shell (./manage.py shell saving every Key, App and Domain; this controller has no load_db_state_to_etcd)");
    assert_has(&out, "saved 2 key(s), 2 app(s), 1 domain(s)");
    assert_has(
        &out,
        "re-published to etcd: 2 key(s), 2 app(s), 1 domain(s)",
    );
    assert_scale_lines(&out);
    assert_republished(&stand_in);
}

#[test]
fn a_dry_run_asks_and_counts_and_writes_no_key() {
    for (version, path) in [("1.13", "load_db_state_to_etcd"), ("1.10", "shell")] {
        let stand_in = StandIn::with_testbed_etcd(version);
        let out = finish(&["--container", &stand_in.name, "--dry-run"], &[]);
        out.assert_ok();
        assert_has(&out, &format!("path: {path} ("));
        let command = if path == "shell" {
            "./manage.py shell --plain"
        } else {
            "./manage.py load_db_state_to_etcd"
        };
        assert_has(
            &out,
            &format!("dry run: would run `{command}` in /app; nothing was written"),
        );
        assert_has(
            &out,
            "the controller's database holds 2 key(s), 2 app(s), 1 domain(s)",
        );
        assert_scale_lines(&out);
        assert!(
            stand_in.written().is_empty(),
            "{version}: {:?}",
            stand_in.written()
        );
    }
}

#[test]
fn a_missing_or_stopped_controller_container_is_named() {
    let missing = unique("no-such-controller");
    let out = finish(&["--container", &missing], &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_has(
        &out,
        &format!("the controller container {missing} does not exist"),
    );
    assert_has(&out, "deisctl start platform");

    let stopped = unique("deis-controller-stopped");
    let label = testbed("TESTBED_DB_LABEL");
    let image = testbed("TESTBED_CONTROLLER_IMAGE");
    docker(&["create", "--name", &stopped, "--label", &label, &image]).assert_ok();
    let out = finish(&["--container", &stopped], &[]);
    docker(&["rm", "-f", "-v", &stopped]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_has(
        &out,
        &format!("the controller container {stopped} is not running"),
    );
}

#[test]
fn a_failing_manage_py_is_reported_with_its_stderr() {
    // nothing listens on port 1: every save fails as a controller without etcd would
    let failing = StandIn::start("1.13", "127.0.0.1:1");
    let out = finish(&["--container", &failing.name], &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_has(
        &out,
        &format!(
            "`./manage.py load_db_state_to_etcd` in the controller container {} failed with exit code 1",
            failing.name
        ),
    );
    assert_has(&out, "Connection refused");

    // the shell exits 0 after a statement raised: the missing result line gives it away
    let failing = StandIn::start("1.10", "127.0.0.1:1");
    let out = finish(&["--container", &failing.name], &[]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_has(
        &out,
        &format!(
            "`./manage.py shell --plain` in the controller container {} did not report its result",
            failing.name
        ),
    );
    assert_has(&out, "saving every Key, App, Domain object failed");
    assert_has(&out, "Connection refused");
}

#[test]
fn help_shows_finish_and_restore_sets_still_parse() {
    let help = run(&["restore", "finish", "--help"]);
    help.assert_ok();
    assert_has(&help, "load_db_state_to_etcd");
    assert_has(&help, "Example");
    let help = run(&["restore", "--help"]);
    help.assert_ok();
    assert_has(&help, "finish");
    // a set is still a set, and finish takes no restore options
    let empty = tempfile::tempdir().unwrap();
    let url = file_url(empty.path());
    let out = run(&[
        "restore",
        "latest",
        "--only",
        "volume",
        "--dry-run",
        "--destination",
        &url,
    ]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert_has(&out, "no complete volume backup set matches Latest");
    let out = run(&["restore", "finish", "--only", "volume"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert_has(&out, "--only");
}
