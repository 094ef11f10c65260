//! Unit tests of the volume archive: order, links, special files, unreadable files.

use super::*;
use std::os::unix::fs::symlink;

fn entries(tar: &[u8]) -> Vec<(String, EntryType, u64)> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
                e.size(),
            )
        })
        .collect()
}

#[test]
fn archives_files_links_and_folders_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    fs::create_dir_all(root.join("b/empty")).unwrap();
    fs::write(root.join("a.txt"), b"hello").unwrap();
    fs::hard_link(root.join("a.txt"), root.join("b/hard")).unwrap();
    symlink("../a.txt", root.join("b/soft")).unwrap();
    let (tar, outcome) = write_volume_tar(root, Vec::new()).unwrap();
    let names: Vec<_> = entries(&tar)
        .into_iter()
        .map(|(n, t, s)| format!("{n} {t:?} {s}"))
        .collect();
    assert_eq!(
        names,
        [
            ".",
            "a.txt Regular 5",
            "b",
            "b/empty",
            "b/hard Link 0",
            "b/soft Symlink 0"
        ]
        .map(|s| if s.contains(' ') {
            s.to_string()
        } else {
            format!("{s} Directory 0")
        })
    );
    assert!(outcome.warnings.is_empty());
    assert_eq!(
        (
            outcome.stats.files,
            outcome.stats.hard_links,
            outcome.stats.symlinks
        ),
        (1, 1, 1)
    );
}

#[test]
fn special_files_are_skipped_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let (_, outcome) = write_volume_tar(tmp.path(), Vec::new()).unwrap();
    assert_eq!(outcome.warnings.len(), 1);
    assert_eq!(outcome.warnings[0].kind, WarningKind::SkippedSpecialFile);
}

fn archiver() -> Archiver<Vec<u8>> {
    Archiver {
        builder: tar::Builder::new(Vec::new()),
        outcome: VolumeOutcome::default(),
        links: HashMap::new(),
        buffer: vec![0; COPY_BUFFER],
    }
}

#[test]
fn a_hard_link_whose_first_path_failed_is_stored_as_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("b"), b"hello").unwrap();
    fs::hard_link(tmp.path().join("b"), tmp.path().join("c")).unwrap();
    let meta = fs::symlink_metadata(tmp.path().join("b")).unwrap();
    let mut a = archiver();
    // the inode's first path fails to open (here: gone); the next one is stored in full
    a.append_file(&tmp.path().join("a"), Path::new("a"), &meta)
        .unwrap();
    a.append_file(&tmp.path().join("b"), Path::new("b"), &meta)
        .unwrap();
    a.append_file(&tmp.path().join("c"), Path::new("c"), &meta)
        .unwrap();
    let warnings: Vec<_> = a.outcome.warnings.iter().map(|w| &w.path).collect();
    assert_eq!(warnings, ["a"]);
    let tar = a.builder.into_inner().unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let found: Vec<_> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let link = e.link_name().unwrap().map(|l| l.display().to_string());
            (e.path().unwrap().display().to_string(), e.size(), link)
        })
        .collect();
    assert_eq!(
        found,
        [
            ("b".into(), 5, None),
            ("c".into(), 0, Some("b".to_string()))
        ]
    );
}

#[test]
fn a_read_error_after_open_keeps_the_archive_valid_and_says_so() {
    // a sysfs attribute that opens, claims 4096 bytes, and fails every read (EINVAL)
    let sysfs = Path::new("/sys/class/net/lo/speed");
    let meta = fs::symlink_metadata(sysfs).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("after"), b"after").unwrap();
    fs::hard_link(tmp.path().join("after"), tmp.path().join("other")).unwrap();
    let mut a = archiver();
    a.append_file(sysfs, Path::new("speed"), &meta).unwrap();
    // a later hard link to a path whose read failed is warned about too
    let after = fs::symlink_metadata(tmp.path().join("after")).unwrap();
    a.links
        .insert((after.dev(), after.ino()), ("speed".into(), false));
    a.append_file(&tmp.path().join("after"), Path::new("link"), &after)
        .unwrap();
    let w = &a.outcome.warnings;
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(
        (w[0].path.as_str(), w[0].kind),
        ("speed", WarningKind::Unreadable)
    );
    assert!(
        w[0].detail.contains("os error 22") && w[0].detail.contains("content incomplete"),
        "{}",
        w[0].detail
    );
    assert_eq!(
        (w[1].path.as_str(), w[1].kind),
        ("link", WarningKind::Unreadable)
    );
    let tar = a.builder.into_inner().unwrap();
    let found: Vec<_> = entries(&tar)
        .into_iter()
        .map(|(n, t, s)| format!("{n} {t:?} {s}"))
        .collect();
    assert_eq!(found, ["speed Regular 4096", "link Link 0"]);
}

#[test]
fn a_missing_root_is_an_error_naming_it() {
    let err = write_volume_tar(Path::new("/no/such/dir"), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("/no/such/dir"));
}
