//! Unit tests of the local destination: listing, abandoning, sweeping, lock files.

use super::*;
use crate::store::{list_complete, RunId};

/// A fresh set of `job` (shared with the object store's tests).
pub(super) fn set(job: JobKind) -> SetRef {
    SetRef {
        job,
        run_id: RunId::new(chrono::Utc::now()),
    }
}

#[test]
fn a_set_is_listed_only_once_its_manifest_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = LocalDestination::new(tmp.path());
    let s = set(JobKind::Volume);
    let mut pending = dest.begin_set(&s).unwrap();
    let mut sink = pending.create_artifact("a.bin").unwrap();
    sink.write_all(b"hello").unwrap();
    assert_eq!(sink.finish().unwrap(), 5);
    assert_eq!(dest.list_sets(None).unwrap(), vec![s.clone()]);
    assert!(dest.read_manifest(&s).unwrap().is_none());
    // another process sweeping now must leave the live set alone
    assert!(dest.sweep_incomplete().unwrap().is_empty());
    pending.complete(b"{}").unwrap();
    assert_eq!(dest.read_manifest(&s).unwrap().unwrap(), b"{}");
    let mut data = String::new();
    dest.open_artifact(&s, "a.bin")
        .unwrap()
        .read_to_string(&mut data)
        .unwrap();
    assert_eq!(data, "hello");
    assert!(!dest.lock_path(&s).exists());
}

#[test]
fn an_abandoned_set_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = LocalDestination::new(tmp.path());
    let s = set(JobKind::Volume);
    let mut pending = dest.begin_set(&s).unwrap();
    let mut sink = pending.create_artifact("a.bin").unwrap();
    sink.write_all(b"partial").unwrap();
    drop(sink);
    drop(pending);
    assert!(dest.list_sets(None).unwrap().is_empty());
    assert_eq!(fs::read_dir(tmp.path().join("volume")).unwrap().count(), 0);
}

#[test]
fn sweep_removes_sets_whose_writer_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = LocalDestination::new(tmp.path());
    let s = set(JobKind::Volume);
    // what a killed writer leaves: a folder, a partial artifact, an unlocked lock file
    fs::create_dir_all(tmp.path().join(s.dir())).unwrap();
    fs::write(tmp.path().join(s.dir()).join(".x.partial"), b"junk").unwrap();
    fs::write(dest.lock_path(&s), b"").unwrap();
    assert_eq!(dest.sweep_incomplete().unwrap(), vec![s.to_string()]);
    assert!(!tmp.path().join(s.dir()).exists());
    assert!(!dest.lock_path(&s).exists());
}

#[test]
fn lock_files_are_born_locked_and_crashed_temporaries_are_swept_once_old() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = LocalDestination::new(tmp.path());
    let s = set(JobKind::Volume);
    let pending = dest.begin_set(&s).unwrap();
    assert!(dest.is_being_written(&s));
    assert!(matches!(
        dest.begin_set(&s).err(),
        Some(StoreError::SetExists(_))
    ));
    let job_dir = tmp.path().join("volume");
    let temp = |n: u32| job_dir.join(format!(".{}.in-progress.x-{n}.tmp", s.run_id));
    fs::write(temp(1), b"").unwrap();
    fs::write(temp(2), b"").unwrap();
    let old = filetime::FileTime::from_unix_time(chrono::Utc::now().timestamp() - 7200, 0);
    filetime::set_file_mtime(temp(1), old).unwrap();
    assert!(dest.sweep_incomplete().unwrap().is_empty());
    assert!(!temp(1).exists(), "an hour-old temporary lock is a crash's");
    assert!(
        temp(2).exists(),
        "a young one may be a writer's, not even opened"
    );
    assert!(dest.is_being_written(&s));
    drop(pending);
    assert!(!dest.lock_path(&s).exists());
    // lock files without a set folder: removed once old and free, young ones left alone
    let (young, aged) = (set(JobKind::Volume), set(JobKind::Volume));
    fs::write(dest.lock_path(&young), b"").unwrap();
    fs::write(dest.lock_path(&aged), b"").unwrap();
    filetime::set_file_mtime(dest.lock_path(&aged), old).unwrap();
    assert!(dest.sweep_incomplete().unwrap().is_empty());
    assert!(dest.lock_path(&young).exists());
    assert!(!dest.lock_path(&aged).exists());
}

#[test]
fn corrupt_manifests_are_reported_not_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = LocalDestination::new(tmp.path());
    let s = set(JobKind::Volume);
    dest.begin_set(&s).unwrap().complete(b"{ not json").unwrap();
    let listing = list_complete(&dest, None).unwrap();
    assert!(listing.complete.is_empty());
    assert_eq!(listing.unreadable.len(), 1);
    assert!(listing.unreadable[0].1.contains("corrupt"));
}
