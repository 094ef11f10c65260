//! The catalog index (`<job>/index.json.zst`) at a local and at an S3 destination: listings
//! read only the manifests the index lacks; a missing, deleted, damaged or stale index is
//! rebuilt from the manifests, and a set whose manifest is gone is never listed even when the
//! index names it. `list` prints the same whatever state the index is in. The S3 half needs
//! the test bed (`bash tests/run.sh --test catalog_index`).

mod support;

use deis_backup::runtime::block_on;
use deis_backup::store::{
    find_set, list_complete, open_destination, Destination, JobKind, ListedManifest, Manifest,
    PendingSet, RunId, SetRef, SetSelector, StoreError, ToolInfo, FORMAT_VERSION, INDEX_NAME,
    MANIFEST_NAME,
};
use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use support::*;

/// `inner`, counting the manifests read and the indexes written (the test hook).
struct Counting<'a> {
    inner: &'a dyn Destination,
    manifest_reads: AtomicUsize,
    index_writes: AtomicUsize,
}

impl<'a> Counting<'a> {
    fn new(inner: &'a dyn Destination) -> Self {
        Self {
            inner,
            manifest_reads: AtomicUsize::new(0),
            index_writes: AtomicUsize::new(0),
        }
    }

    /// Lists every complete set; returns their names and (manifests read, indexes written).
    fn list(&self) -> (Vec<String>, (usize, usize)) {
        self.manifest_reads.store(0, Ordering::SeqCst);
        self.index_writes.store(0, Ordering::SeqCst);
        let listing = list_complete(self, None).unwrap();
        let names = listing
            .complete
            .iter()
            .map(|m| m.set_ref().to_string())
            .collect();
        let counts = (
            self.manifest_reads.load(Ordering::SeqCst),
            self.index_writes.load(Ordering::SeqCst),
        );
        (names, counts)
    }
}

impl Destination for Counting<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn sweep_incomplete(&self) -> Result<Vec<String>, StoreError> {
        self.inner.sweep_incomplete()
    }
    fn begin_set(&self, set: &SetRef) -> Result<Box<dyn PendingSet>, StoreError> {
        self.inner.begin_set(set)
    }
    fn list_sets(&self, job: Option<JobKind>) -> Result<Vec<SetRef>, StoreError> {
        self.inner.list_sets(job)
    }
    fn read_manifest(&self, set: &SetRef) -> Result<Option<Vec<u8>>, StoreError> {
        self.manifest_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_manifest(set)
    }
    fn list_manifests(&self, job: JobKind) -> Result<Vec<ListedManifest>, StoreError> {
        self.inner.list_manifests(job)
    }
    fn read_index(&self, job: JobKind) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.read_index(job)
    }
    fn write_index(&self, job: JobKind, bytes: &[u8]) -> Result<(), StoreError> {
        self.index_writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write_index(job, bytes)
    }
    fn open_artifact(&self, set: &SetRef, name: &str) -> Result<Box<dyn Read + Send>, StoreError> {
        self.inner.open_artifact(set, name)
    }
    fn delete_set(&self, set: &SetRef) -> Result<(), StoreError> {
        self.inner.delete_set(set)
    }
}

/// Direct access to the destination's files or keys, behind the catalog's back.
trait Backdoor {
    fn index(&self, job: JobKind) -> Option<Vec<u8>>;
    fn put(&self, path: &str, bytes: &[u8]);
    fn delete(&self, path: &str);
}

struct LocalBackdoor(PathBuf);

impl Backdoor for LocalBackdoor {
    fn index(&self, job: JobKind) -> Option<Vec<u8>> {
        fs::read(self.0.join(job.as_str()).join(INDEX_NAME)).ok()
    }
    fn put(&self, path: &str, bytes: &[u8]) {
        fs::write(self.0.join(path), bytes).unwrap();
    }
    fn delete(&self, path: &str) {
        fs::remove_file(self.0.join(path)).unwrap();
    }
}

struct S3Backdoor {
    bucket: String,
    prefix: String,
}

impl Backdoor for S3Backdoor {
    fn index(&self, job: JobKind) -> Option<Vec<u8>> {
        let key = format!("{}/{job}/{INDEX_NAME}", self.prefix);
        block_on(async {
            let out = dest_client()
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
                .ok()?;
            Some(out.body.collect().await.unwrap().to_vec())
        })
    }
    fn put(&self, path: &str, bytes: &[u8]) {
        let key = format!("{}/{path}", self.prefix);
        block_on(
            dest_client()
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(bytes.to_vec().into())
                .send(),
        )
        .unwrap();
    }
    fn delete(&self, path: &str) {
        let key = format!("{}/{path}", self.prefix);
        block_on(
            dest_client()
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send(),
        )
        .unwrap();
    }
}

fn manifest(set: &SetRef, host: &str) -> Vec<u8> {
    let at = set.run_id.started();
    Manifest {
        format_version: FORMAT_VERSION,
        job: set.job,
        run_id: set.run_id.clone(),
        started_at: at,
        finished_at: at,
        host: host.into(),
        tool: ToolInfo::this_build(),
        source: serde_json::json!({"kind": "test"}),
        artifacts: Vec::new(),
        warnings: Vec::new(),
        stats: serde_json::Map::new(),
    }
    .to_json()
}

/// Completes a set of `job` started `minutes` after a fixed time, through the Destination API
/// (which, like a crash between manifest and index, does not touch the index).
fn complete_set(dest: &dyn Destination, job: JobKind, minutes: i64) -> SetRef {
    let started = chrono::DateTime::parse_from_rfc3339("2026-11-25T03:00:00Z")
        .unwrap()
        .to_utc()
        + chrono::Duration::minutes(minutes);
    let set = SetRef {
        job,
        run_id: RunId::new(started),
    };
    let pending = dest.begin_set(&set).unwrap();
    pending.complete(&manifest(&set, "node-1")).unwrap();
    set
}

/// Runs `deis-backup list --json` with `env` (the destination) and returns stdout, stderr.
fn cli_list(env: &[(&str, String)]) -> (String, String) {
    let mut cmd = cli();
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out: Run = cmd
        .args(["list", "--json"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
        .into();
    out.assert_ok();
    (out.stdout, out.stderr)
}

/// The whole story, the same at any destination.
fn scenario(dest: &dyn Destination, door: &dyn Backdoor, env: &[(&str, String)], n: usize) {
    let dest = Counting::new(dest);
    let etcd: Vec<SetRef> = (0..n as i64)
        .map(|i| complete_set(&dest, JobKind::Etcd, i))
        .collect();
    let volume = complete_set(&dest, JobKind::Volume, 0);

    // no index yet: every manifest is read once, and each job gets its index
    let cold = std::time::Instant::now();
    let (all, counts) = dest.list();
    let cold = cold.elapsed();
    assert_eq!(all.len(), n + 1);
    assert_eq!(
        counts,
        (n + 1, 2),
        "missing index: read everything, write both"
    );
    assert!(door.index(JobKind::Etcd).is_some() && door.index(JobKind::Volume).is_some());
    assert!(door.index(JobKind::Gateway).is_none(), "no sets, no index");
    // then none at all
    let warm = std::time::Instant::now();
    assert_eq!(dest.list(), (all.clone(), (0, 0)), "up-to-date index");
    eprintln!(
        "list of {} sets at {}: {} manifest reads in {cold:?} without the index, 0 in {:?} with it",
        n + 1,
        dest.describe(),
        n + 1,
        warm.elapsed()
    );
    let (printed, _) = cli_list(env);
    let listing = list_complete(&dest, None).unwrap();
    assert_eq!(
        find_set(&listing, &SetSelector::Latest, Some(JobKind::Etcd)).map(|m| m.set_ref()),
        etcd.last().cloned()
    );

    // deleted index: rebuilt from the etcd manifests only, list unchanged
    door.delete(&format!("etcd/{INDEX_NAME}"));
    assert_eq!(dest.list(), (all.clone(), (n, 1)), "deleted index");
    assert_eq!(dest.list(), (all.clone(), (0, 0)));

    // damaged index: ignored with a warning, rebuilt, `list` prints the same
    door.put(&format!("volume/{INDEX_NAME}"), b"{\"not\": \"an index\"");
    let (again, warnings) = cli_list(env);
    assert_eq!(
        again, printed,
        "list --json is the same with a damaged index"
    );
    assert!(
        warnings.contains("catalog index is damaged"),
        "a warning says so: {warnings}"
    );
    assert_eq!(dest.list(), (all.clone(), (0, 0)), "rebuilt by that list");

    // stale index: a set completed behind its back is read and added
    let planted = complete_set(&dest, JobKind::Etcd, n as i64 + 1);
    let (with_planted, counts) = dest.list();
    assert_eq!(counts, (1, 1), "stale index: only the new manifest is read");
    assert_eq!(with_planted.last(), Some(&planted.to_string()));
    assert_eq!(with_planted.len(), n + 2);

    // a set whose manifest is gone is never listed, though the index names it
    let before = door.index(JobKind::Etcd).unwrap();
    door.delete(&format!("{}/{MANIFEST_NAME}", etcd[0].dir()));
    let (names, counts) = dest.list();
    assert!(!names.contains(&etcd[0].to_string()), "{names:?}");
    assert_eq!(names.len(), n + 1);
    assert_eq!(counts, (0, 1), "dropped from the index without any read");
    // ...even when a racing writer puts back an index naming it
    door.put(&format!("etcd/{INDEX_NAME}"), &before);
    let (names, counts) = dest.list();
    assert!(!names.contains(&etcd[0].to_string()), "{names:?}");
    assert_eq!(counts, (0, 1));
    let latest = list_complete(&dest, Some(JobKind::Etcd)).unwrap();
    assert_eq!(
        find_set(&latest, &SetSelector::Latest, None).map(|m| m.set_ref()),
        Some(planted.clone())
    );

    // a rewritten manifest is read again (its size and tag changed)
    door.put(
        &format!("{}/{MANIFEST_NAME}", volume.dir()),
        &manifest(&volume, "node-22"),
    );
    let (_, counts) = dest.list();
    assert_eq!(
        counts,
        (1, 1),
        "the rewritten manifest is read, the index updated"
    );
    let listing = list_complete(&dest, Some(JobKind::Volume)).unwrap();
    assert_eq!(listing.complete[0].host, "node-22");
}

#[test]
fn a_local_index_is_rebuilt_from_the_manifests_and_never_lists_a_deleted_set() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("dest");
    let dest = deis_backup::store::LocalDestination::new(&root);
    let env = [("DEIS_BACKUP_DESTINATION__URL", file_url(&root))];
    scenario(&dest, &LocalBackdoor(root.clone()), &env, 200);
}

#[test]
fn an_s3_index_is_rebuilt_from_the_manifests_and_never_lists_a_deleted_set() {
    let bucket = testbed("TESTBED_DEST_BUCKET");
    let prefix = unique("catalog");
    let env = [
        (
            "DEIS_BACKUP_DESTINATION__URL",
            format!("s3://{bucket}/{prefix}"),
        ),
        (
            "DEIS_BACKUP_DESTINATION__ENDPOINT",
            testbed("TESTBED_S3_ENDPOINT"),
        ),
        (
            "DEIS_BACKUP_DESTINATION__ACCESS_KEY",
            testbed("TESTBED_DEST_ACCESS_KEY"),
        ),
        (
            "DEIS_BACKUP_DESTINATION__SECRET_KEY",
            testbed("TESTBED_DEST_SECRET_KEY"),
        ),
    ];
    let settings = deis_backup::config::Settings {
        destination: deis_backup::config::DestinationSettings {
            url: format!("s3://{bucket}/{prefix}"),
            endpoint: Some(testbed("TESTBED_S3_ENDPOINT")),
            region: None,
            access_key: Some(deis_backup::config::Secret::new(testbed(
                "TESTBED_DEST_ACCESS_KEY",
            ))),
            secret_key: Some(deis_backup::config::Secret::new(testbed(
                "TESTBED_DEST_SECRET_KEY",
            ))),
            ..deis_backup::config::DestinationSettings::default()
        },
        ..deis_backup::config::Settings::default()
    };
    let dest = open_destination(&settings).unwrap();
    let door = S3Backdoor {
        bucket: bucket.clone(),
        prefix: prefix.clone(),
    };
    scenario(dest.as_ref(), &door, &env, 30);
    for key in keys_under(&bucket, &prefix) {
        door.delete(key.strip_prefix(&format!("{prefix}/")).unwrap());
    }
}
