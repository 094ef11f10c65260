//! The local destination under concurrency and umasks: a sweep running in a loop never removes
//! a set that completes beside it, and everything it writes is owner-only (files 0600,
//! folders 0700) whatever the process umask. No services needed.

mod support;

use deis_backup::store::{
    list_complete, Destination, JobKind, LocalDestination, Manifest, RunId, SetRef, StoreError,
    ToolInfo, FORMAT_VERSION,
};
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::*;

fn manifest(set: &SetRef) -> Vec<u8> {
    let now = chrono::Utc::now();
    Manifest {
        format_version: FORMAT_VERSION,
        job: set.job,
        run_id: set.run_id.clone(),
        started_at: now,
        finished_at: now,
        host: "test".into(),
        tool: ToolInfo::this_build(),
        source: serde_json::json!({"kind": "test"}),
        artifacts: Vec::new(),
        warnings: Vec::new(),
        stats: serde_json::Map::new(),
    }
    .to_json()
}

/// Writes one tiny set through the Destination API (a fresh run id when one is taken).
fn complete_a_set(dest: &dyn Destination) -> SetRef {
    loop {
        let set = SetRef {
            job: JobKind::Volume,
            run_id: RunId::new(chrono::Utc::now()),
        };
        let mut pending = match dest.begin_set(&set) {
            Err(StoreError::SetExists(_)) => continue,
            other => other.unwrap(),
        };
        let mut sink = pending.create_artifact("a.bin").unwrap();
        sink.write_all(set.run_id.as_str().as_bytes()).unwrap();
        sink.finish().unwrap();
        pending.complete(&manifest(&set)).unwrap();
        return set;
    }
}

#[test]
fn a_sweep_in_a_loop_never_removes_a_set_that_completes_beside_it() {
    const SETS: usize = 1000;
    const SWEEPERS: usize = 3;
    let tmp = tempfile::tempdir().unwrap();
    let dest = Arc::new(LocalDestination::new(tmp.path().join("dest")));
    let done = Arc::new(AtomicBool::new(false));
    // several sweepers, as several processes sweeping at start would be
    let sweepers: Vec<_> = (0..SWEEPERS)
        .map(|_| {
            let (dest, done) = (dest.clone(), done.clone());
            std::thread::spawn(move || {
                let (mut sweeps, mut removed) = (0u64, Vec::new());
                while !done.load(Ordering::SeqCst) {
                    removed.extend(dest.sweep_incomplete().unwrap());
                    sweeps += 1;
                }
                (sweeps, removed)
            })
        })
        .collect();
    let completed: BTreeSet<String> = (0..SETS)
        .map(|_| complete_a_set(dest.as_ref()).to_string())
        .collect();
    done.store(true, Ordering::SeqCst);
    let (mut sweeps, mut removed) = (0, Vec::new());
    for sweeper in sweepers {
        let (n, gone) = sweeper.join().unwrap();
        sweeps += n;
        removed.extend(gone);
    }

    eprintln!("{sweeps} sweeps ({SWEEPERS} threads) beside {SETS} completing sets");
    assert!(sweeps >= 10, "the sweep ran only {sweeps} times");
    assert_eq!(removed, Vec::<String>::new(), "the sweep removed live sets");
    let listed: BTreeSet<String> = list_complete(dest.as_ref(), None)
        .unwrap()
        .complete
        .iter()
        .map(|m| m.set_ref().to_string())
        .collect();
    assert_eq!(completed.len(), SETS);
    assert_eq!(listed, completed, "every completed set is listed");
    // nothing else is left beside the sets and the catalog index the listing wrote: no lock
    // file, no temporary lock, no temporary index
    let job_dir = tmp.path().join("dest/volume");
    assert_eq!(fs::read_dir(&job_dir).unwrap().count(), SETS + 1);
    assert!(job_dir.join(deis_backup::store::INDEX_NAME).is_file());
}

/// Every path under `root` (itself included) whose mode is not owner-only.
fn open_paths(root: &Path) -> Vec<(PathBuf, String)> {
    let mut bad = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        let mode = meta.mode() & 0o7777;
        let want = if meta.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            0o700
        } else {
            0o600
        };
        if mode != want || meta.file_type().is_symlink() {
            bad.push((path, format!("{mode:o}")));
        }
    }
    bad
}

/// Sets the process umask (inherited by the binary the test runs), returning the old one.
fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask only swaps the process's file mode creation mask.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

#[test]
fn everything_the_local_destination_writes_is_owner_only_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    write(&source.join("a/b.txt"), b"secret");
    write(&source.join("c.bin"), &random_bytes(1, 100_000));
    for mask in [0o022, 0o000] {
        let previous = set_umask(mask);
        let root = tmp.path().join(format!("dest-{mask:o}"));
        let url = file_url(&root);
        let args = ["backup", "volume", "--volume-path"];
        run(&[
            &args[..],
            &[source.to_str().unwrap(), "--destination", &url],
        ]
        .concat())
        .assert_ok();

        // what only exists while a set is written: its lock, partial artifact, staged object
        let dest = LocalDestination::new(&root);
        let set = SetRef {
            job: JobKind::Gateway,
            run_id: RunId::new(chrono::Utc::now()),
        };
        let mut pending = dest.begin_set(&set).unwrap();
        let mut sink = pending.create_artifact("snapshot.json").unwrap();
        sink.write_all(b"{}").unwrap();
        let store = dest.objects().unwrap();
        let mut staged = store.stage_object(&set, 5).unwrap();
        staged.write_all(b"hello").unwrap();
        staged.flush().unwrap();
        let mut linked = store.stage_object(&set, 5).unwrap();
        linked.write_all(b"world").unwrap();
        linked.commit().unwrap();
        let files_now = count_files(&root);
        assert!(files_now >= 6, "lock, partials, objects: {files_now} files");
        assert_eq!(open_paths(&root), vec![], "umask {mask:o}, while writing");
        sink.finish().unwrap();
        drop(staged);
        pending.complete(&manifest(&set)).unwrap();
        // a listing writes the catalog indexes, under the same umask
        list_complete(&dest, None).unwrap();
        set_umask(previous);

        assert_eq!(
            open_paths(&root),
            vec![],
            "umask {mask:o}, complete and indexed"
        );
        let listed = list_complete(&dest, None).unwrap().complete.len();
        assert_eq!(listed, 2, "the volume set and the gateway set");
    }
}

fn count_files(root: &Path) -> usize {
    let mut count = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            count += 1;
        }
    }
    count
}
