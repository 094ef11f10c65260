//! Volume job end to end through the binary: backup, list, verify, restore, and the metadata
//! a Deis store volume needs back (owners, modes, mtimes, symlinks, hard links, empty folders).

mod support;

use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use support::tree::snapshot_tree;
use support::*;

fn set_mtime(path: &Path, secs: i64) {
    let t = filetime::FileTime::from_unix_time(secs, 0);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

/// A small tree with every kind of entry a Deis store volume has.
fn build_tree(root: &Path) {
    write(
        &root.join("logs/osd.0.log"),
        b"log line\n".repeat(1000).as_slice(),
    );
    write(&root.join("data/big.bin"), &random_bytes(7, 3 << 20));
    write(&root.join("data/empty-file"), b"");
    write(
        &root.join(format!("deep/{}/file", "n".repeat(120))),
        b"long path",
    );
    write(&root.join("unicode/caf\u{e9} \u{1f600}.txt"), b"unicode");
    fs::create_dir_all(root.join("empty/dir")).unwrap();
    fs::hard_link(root.join("logs/osd.0.log"), root.join("data/hardlink")).unwrap();
    symlink("../logs/osd.0.log", root.join("data/relative-link")).unwrap();
    symlink("missing-target", root.join("data/dangling-link")).unwrap();
    fs::set_permissions(root.join("data/big.bin"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::set_permissions(
        root.join("logs/osd.0.log"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(root.join("empty"), fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(root.join("data/big.bin"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::lchown(root.join("data/relative-link"), Some(4321), Some(8765)).unwrap();
    std::os::unix::fs::chown(root.join("empty/dir"), Some(999), Some(998)).unwrap();
    // mtimes last, deepest first, so that creating children does not move them again
    let mut all: Vec<_> = snapshot_tree(root).into_keys().collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count() + usize::from(!p.is_empty())));
    for (i, rel) in all.iter().enumerate() {
        set_mtime(&root.join(rel), 1_600_000_000 + i as i64 * 3600);
    }
}

#[test]
fn backup_then_restore_gives_back_the_same_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, dest, target) = (
        tmp.path().join("store"),
        tmp.path().join("backups"),
        tmp.path().join("restored"),
    );
    build_tree(&source);
    let url = file_url(&dest);
    let src = source.to_str().unwrap();

    let backup = run(&[
        "backup",
        "volume",
        "--volume-path",
        src,
        "--destination",
        &url,
    ]);
    backup.assert_ok();
    assert!(
        backup.stdout.contains("volume/") && backup.stdout.contains("complete"),
        "{}",
        backup.all()
    );

    let list = run(&["list", "--json", "--destination", &url]);
    list.assert_ok();
    let sets: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(sets.as_array().unwrap().len(), 1, "{}", list.stdout);
    let set = sets[0]["set"].as_str().unwrap().to_string();

    run(&["verify", &set, "--destination", &url]).assert_ok();

    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(dest.join(&set).join("manifest.json")).unwrap()).unwrap();
    let artifact = &manifest["artifacts"][0];
    assert_eq!(artifact["name"], "store.tar.zst");
    assert_eq!(artifact["compression"], "zstd");
    assert_eq!(
        artifact["size"].as_u64().unwrap(),
        fs::metadata(dest.join(&set).join("store.tar.zst"))
            .unwrap()
            .len()
    );
    assert!(artifact["uncompressed_size"].as_u64().unwrap() > 3 << 20);
    assert_eq!(manifest["stats"]["files"], 5);
    assert_eq!(manifest["stats"]["hard_links"], 1);
    assert_eq!(manifest["warnings"].as_array().unwrap().len(), 0);

    let dry = run(&[
        "restore",
        &set,
        "--dry-run",
        "--volume-path",
        target.to_str().unwrap(),
        "--destination",
        &url,
    ]);
    dry.assert_ok();
    assert!(!target.exists(), "a dry run must not write");

    let tgt = target.to_str().unwrap();
    run(&[
        "restore",
        "latest",
        "--only",
        "volume",
        "--volume-path",
        tgt,
        "--destination",
        &url,
    ])
    .assert_ok();
    assert_eq!(snapshot_tree(&target), snapshot_tree(&source));
    let (a, b) = (
        fs::metadata(target.join("logs/osd.0.log")).unwrap(),
        fs::metadata(target.join("data/hardlink")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino(), "hard link restored as a link");

    let again = run(&[
        "restore",
        "latest",
        "--only",
        "volume",
        "--volume-path",
        tgt,
        "--destination",
        &url,
    ]);
    assert_eq!(again.code, 1);
    assert!(
        again.stderr.contains("not empty") && again.stderr.contains("--force"),
        "{}",
        again.all()
    );
    run(&[
        "restore",
        "latest",
        "--only",
        "volume",
        "--force",
        "--volume-path",
        tgt,
        "--destination",
        &url,
    ])
    .assert_ok();
    assert_eq!(snapshot_tree(&target), snapshot_tree(&source));
}

#[test]
fn a_file_growing_during_the_backup_is_a_warning_not_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, dest, target) = (
        tmp.path().join("store"),
        tmp.path().join("backups"),
        tmp.path().join("restored"),
    );
    let log = source.join("logs/growing.log");
    write(&log, &b"x".repeat(64 << 20));
    write(&source.join("other.txt"), b"steady");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let appender = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(&[b'y'; 4096]).unwrap();
            }
        })
    };
    let url = file_url(&dest);
    let backup = backup_volume(&source, &url);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    appender.join().unwrap();
    backup.assert_ok();

    let set = set_dirs(&dest, "volume").pop().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(set.join("manifest.json")).unwrap()).unwrap();
    let warnings = manifest["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w["path"] == "logs/growing.log" && w["kind"] == "changed_during_read"),
        "{warnings:?}"
    );
    assert!(
        backup.stdout.contains("logs/growing.log"),
        "{}",
        backup.all()
    );

    run(&["verify", "latest", "--destination", &url]).assert_ok();
    run(&[
        "restore",
        "latest",
        "--only",
        "volume",
        "--volume-path",
        target.to_str().unwrap(),
        "--destination",
        &url,
    ])
    .assert_ok();
    let restored = fs::read(target.join("logs/growing.log")).unwrap();
    let now = fs::read(&log).unwrap();
    assert!(
        restored.len() >= 64 << 20 && now.starts_with(&restored),
        "restored a consistent prefix"
    );
    assert_eq!(fs::read(target.join("other.txt")).unwrap(), b"steady");
}
