//! The volume job on CephFS, the file system of the Deis store-volume: the test bed's ceph-fuse
//! mount (TESTBED_CEPHFS_MOUNT) is backed up and restored onto local disk and back onto CephFS
//! with content, owners, modes, mtimes, symlinks and hard links intact; a file growing during
//! the backup is a warning; `volume.require-mount` accepts the mount point.

mod support;

use deis_backup::config::Settings;
use deis_backup::daemon::eligibility;
use deis_backup::runtime::block_on;
use deis_backup::store::JobKind;
use std::fs;
use std::os::unix::fs::{chown, lchown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::tree::snapshot_tree;
use support::*;

/// The test bed's CephFS mount point.
fn cephfs_mount() -> PathBuf {
    let mount = PathBuf::from(testbed("TESTBED_CEPHFS_MOUNT"));
    assert!(
        eligibility::is_mount_point(&mount),
        "{} is not mounted (see the test bed's cephfs.up.log)",
        mount.display()
    );
    mount
}

/// A fresh folder on the CephFS mount, removed again when dropped (the test bed's OSD keeps
/// its data in memory).
struct CephDir(PathBuf);

impl CephDir {
    fn new(label: &str) -> Self {
        let dir = cephfs_mount().join(unique(label));
        fs::create_dir(&dir).unwrap();
        CephDir(dir)
    }
}

impl Drop for CephDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A Deis-store-like tree: logs, nested folders with their own owners and modes, a setgid
/// folder, relative, absolute and dangling symlinks, a hard link, empty files and folders.
fn build_store(root: &Path) {
    write(
        &root.join("logs/deis-router.log"),
        b"GET / 200\n".repeat(5000).as_slice(),
    );
    write(
        &root.join("registry/blobs/ab/data"),
        &random_bytes(11, 5 << 20),
    );
    write(
        &root.join("registry/blobs/cd/data"),
        &random_bytes(12, 1 << 10),
    );
    write(&root.join("builder/cache/empty"), b"");
    write(
        &root.join("caf\u{e9}/\u{1f600} name with spaces"),
        b"unicode",
    );
    fs::create_dir_all(root.join("empty/nested/folder")).unwrap();
    fs::hard_link(
        root.join("registry/blobs/cd/data"),
        root.join("registry/hard-link"),
    )
    .unwrap();
    symlink("../blobs/ab/data", root.join("registry/blobs/latest")).unwrap();
    symlink("/var/lib/deis/store/logs", root.join("logs-absolute")).unwrap();
    symlink("no/such/target", root.join("dangling")).unwrap();

    let mode = |rel: &str, mode: u32| {
        fs::set_permissions(root.join(rel), fs::Permissions::from_mode(mode)).unwrap()
    };
    mode("logs/deis-router.log", 0o600);
    mode("registry/blobs/ab/data", 0o640);
    mode("registry", 0o2775);
    mode("empty/nested", 0o700);
    mode("builder/cache/empty", 0o444);
    chown(root.join("registry"), Some(1000), Some(1001)).unwrap();
    chown(root.join("registry/blobs/ab/data"), Some(1234), Some(5678)).unwrap();
    chown(root.join("empty/nested/folder"), Some(999), Some(998)).unwrap();
    lchown(root.join("logs-absolute"), Some(4321), Some(8765)).unwrap();

    // mtimes last, deepest first, so that making children does not move a folder's again
    let mut rels: Vec<String> = snapshot_tree(root).into_keys().collect();
    rels.sort_by_key(|rel| {
        std::cmp::Reverse(rel.matches('/').count() + usize::from(!rel.is_empty()))
    });
    for (i, rel) in rels.iter().enumerate() {
        let t = filetime::FileTime::from_unix_time(1_500_000_000 + i as i64 * 600, 0);
        filetime::set_symlink_file_times(root.join(rel), t, t).unwrap();
    }
}

fn restore_volume(url: &str, target: &Path) {
    run(&[
        "restore",
        "latest",
        "--only",
        "volume",
        "--volume-path",
        target.to_str().unwrap(),
        "--destination",
        url,
    ])
    .assert_ok();
}

#[test]
fn a_cephfs_tree_comes_back_the_same_on_local_disk_and_on_cephfs() {
    let store = CephDir::new("store");
    let source = store.0.join("store");
    build_store(&source);
    let before = snapshot_tree(&source);
    assert_eq!(before["registry"].mode, 0o2775, "CephFS keeps setgid");
    assert_eq!(
        before["registry/blobs/ab/data"].uid, 1234,
        "CephFS keeps owners"
    );
    assert_eq!(
        before["logs-absolute"].uid, 4321,
        "CephFS keeps symlink owners"
    );

    let tmp = tempfile::tempdir().unwrap();
    let url = file_url(&tmp.path().join("backups"));
    let backup = backup_volume(&source, &url);
    backup.assert_ok();
    let set = set_dirs(&tmp.path().join("backups"), "volume")
        .pop()
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(set.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["stats"]["files"], 5, "{manifest}");
    assert_eq!(manifest["stats"]["hard_links"], 1, "{manifest}");
    assert_eq!(
        manifest["warnings"].as_array().unwrap().len(),
        0,
        "{manifest}"
    );
    run(&["verify", "latest", "--destination", &url]).assert_ok();

    // onto local disk
    let local = tmp.path().join("restored");
    restore_volume(&url, &local);
    assert_eq!(snapshot_tree(&local), before);
    let (a, b) = (
        fs::metadata(local.join("registry/blobs/cd/data")).unwrap(),
        fs::metadata(local.join("registry/hard-link")).unwrap(),
    );
    assert_eq!(
        a.ino(),
        b.ino(),
        "hard link restored as a link on local disk"
    );

    // back onto CephFS, as a restore onto a new Deis cluster's store-volume does
    let on_ceph = store.0.join("restored");
    restore_volume(&url, &on_ceph);
    assert_eq!(snapshot_tree(&on_ceph), before);
    let (a, b) = (
        fs::metadata(on_ceph.join("registry/blobs/cd/data")).unwrap(),
        fs::metadata(on_ceph.join("registry/hard-link")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "hard link restored as a link on CephFS");
    assert_eq!(a.nlink(), 2);
}

#[test]
fn a_cephfs_file_growing_during_the_backup_is_a_warning_and_restores_a_prefix() {
    let store = CephDir::new("growing");
    let log = store.0.join("logs/growing.log");
    write(&log, &b"x".repeat(48 << 20));
    write(&store.0.join("other.txt"), b"steady");

    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
            let mut appended = 0usize;
            while !stop.load(Ordering::Relaxed) {
                f.write_all(&[b'y'; 4096]).unwrap();
                appended += 4096;
            }
            appended
        })
    };
    // the backup starts only once the file is seen growing on CephFS
    let start = fs::metadata(&log).unwrap().len();
    assert!(
        wait_until(10_000, || fs::metadata(&log).unwrap().len() > start),
        "the appender never moved the size"
    );

    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backups");
    let url = file_url(&dest);
    let backup = backup_volume(&store.0, &url);
    stop.store(true, Ordering::Relaxed);
    let appended = appender.join().unwrap();
    backup.assert_ok();
    assert!(appended > 0);

    let set = set_dirs(&dest, "volume").pop().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(set.join("manifest.json")).unwrap()).unwrap();
    let warnings = manifest["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w["path"] == "logs/growing.log" && w["kind"] == "changed_during_read"),
        "{warnings:?}\n{}",
        backup.all()
    );
    run(&["verify", "latest", "--destination", &url]).assert_ok();

    let target = tmp.path().join("restored");
    restore_volume(&url, &target);
    let restored = fs::read(target.join("logs/growing.log")).unwrap();
    let now = fs::read(&log).unwrap();
    assert!(
        restored.len() >= 48 << 20 && now.starts_with(&restored),
        "restored {} bytes, a consistent prefix of the {} there now",
        restored.len(),
        now.len()
    );
    assert_eq!(fs::read(target.join("other.txt")).unwrap(), b"steady");
}

#[test]
fn require_mount_accepts_the_cephfs_mount_point_and_refuses_a_folder_inside() {
    let mount = cephfs_mount();
    let inside = CephDir::new("not-a-mount");
    let settings_for = |path: &Path| {
        let mut settings = Settings::default();
        settings.volume.path = path.to_path_buf();
        settings.volume.require_mount = true;
        settings
    };

    block_on(eligibility::check(JobKind::Volume, &settings_for(&mount)))
        .expect("the CephFS mount point is eligible with volume.require-mount");
    let refused = block_on(eligibility::check(
        JobKind::Volume,
        &settings_for(&inside.0),
    ))
    .unwrap_err();
    assert!(
        refused.contains("not a mount point") && refused.contains("require-mount"),
        "{refused}"
    );

    // the mount point through a symlink is the same mount
    let tmp = tempfile::tempdir().unwrap();
    let link = tmp.path().join("store");
    symlink(&mount, &link).unwrap();
    block_on(eligibility::check(JobKind::Volume, &settings_for(&link)))
        .expect("a symlink to the mount point is eligible");
}
