//! Unit tests of the volume archive: order, links, special files, unreadable files.

use super::*;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

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
    let folder = File::open(tmp.path()).unwrap();
    let mut a = archiver();
    // the inode's first path fails to open (here: gone); the next one is stored in full
    a.append_file(&folder, OsStr::new("a"), Path::new("a"), Some(&meta), None)
        .unwrap();
    a.append_file(&folder, OsStr::new("b"), Path::new("b"), Some(&meta), None)
        .unwrap();
    a.append_file(&folder, OsStr::new("c"), Path::new("c"), Some(&meta), None)
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
    assert_eq!(meta.nlink(), 1);
    let sysfs_folder = File::open(sysfs.parent().unwrap()).unwrap();
    a.append_file(
        &sysfs_folder,
        OsStr::new("speed"),
        Path::new("speed"),
        None,
        None,
    )
    .unwrap();
    // a later hard link to a path whose read failed is warned about too
    let after = fs::symlink_metadata(tmp.path().join("after")).unwrap();
    a.links
        .insert((after.dev(), after.ino()), ("speed".into(), false));
    let folder = File::open(tmp.path()).unwrap();
    a.append_file(
        &folder,
        OsStr::new("after"),
        Path::new("link"),
        Some(&after),
        None,
    )
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

/// An archive sink that appends a line to each of `growing` on every write, so each of those
/// files grows between its open (before its header is written) and the end of its content.
struct GrowingOut {
    tar: Vec<u8>,
    growing: Vec<PathBuf>,
}

impl Write for GrowingOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for path in &self.growing {
            let mut f = fs::OpenOptions::new().append(true).open(path)?;
            f.write_all(b"appended while the archive was written\n")?;
        }
        self.tar.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn read_ahead_keeps_walk_order_and_the_growing_file_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let config = ReadAhead {
        threads: 4,
        budget: 32 << 10,
        small_file: 8 << 10,
        entries: 16,
    };
    let mut files = Vec::new();
    let mut large = Vec::new();
    for d in 0..8 {
        for f in 0..40 {
            let rel = PathBuf::from(format!("d{d}/sub{}/f{f:02}.log", f % 3));
            let abs = root.join(&rel);
            fs::create_dir_all(abs.parent().unwrap()).unwrap();
            // every 9th file is larger than `small_file`: opened ahead, streamed by the writer
            let lines = if f % 9 == 0 {
                400
            } else {
                1 + (d * 40 + f) % 60
            };
            let text: String = (0..lines).map(|i| format!("{rel:?} line {i}\n")).collect();
            fs::write(&abs, &text).unwrap();
            if f % 9 == 0 {
                large.push(abs.clone());
            }
            files.push((rel, text.len() as u64));
        }
    }
    // every file keeps growing on another thread while the archive is written
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (out, outcome) = std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (rel, _) in &files {
                    let mut f = fs::OpenOptions::new()
                        .append(true)
                        .open(root.join(rel))
                        .unwrap();
                    f.write_all(format!("{rel:?} appended\n").as_bytes())
                        .unwrap();
                }
            }
        });
        let out = GrowingOut {
            tar: Vec::new(),
            growing: large.clone(),
        };
        let written = write_volume_tar_with(root, out, config);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        written.unwrap()
    });

    // walk order: a folder, then its contents, names in order (Path's order by components)
    let mut expected: Vec<PathBuf> = files.iter().map(|(rel, _)| rel.clone()).collect();
    for (rel, _) in &files {
        expected.extend(
            rel.ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .map(Path::to_path_buf),
        );
    }
    expected.sort();
    expected.dedup();
    expected.insert(0, ".".into());
    let mut archive = tar::Archive::new(&out.tar[..]);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let rel = entry.path().unwrap().into_owned();
        if entry.header().entry_type() == EntryType::Regular {
            let mut stored = Vec::new();
            entry.read_to_end(&mut stored).unwrap();
            // the growing-file rule: the bytes present at open, never fewer than at the start
            let now = fs::read(root.join(&rel)).unwrap();
            let at_start = files.iter().find(|(r, _)| *r == rel).unwrap().1;
            assert!(stored.len() as u64 >= at_start, "{rel:?} lost bytes");
            assert_eq!(
                stored,
                now[..stored.len()],
                "{rel:?} is not a prefix of the file"
            );
        }
        names.push(rel);
    }
    assert_eq!(names, expected);
    assert_eq!(outcome.stats.files, files.len() as u64);

    // each large file grew between its open and the end of its content: warned, nothing else
    let w = &outcome.warnings;
    assert!(
        w.iter().all(|w| w.kind == WarningKind::ChangedDuringRead),
        "{w:?}"
    );
    for path in &large {
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        assert!(
            w.iter().any(|w| w.path == rel),
            "no warning for {rel}: {w:?}"
        );
    }
}

#[test]
fn read_ahead_off_writes_the_same_entries() {
    let tmp = tempfile::tempdir().unwrap();
    for i in 0..50 {
        let dir = tmp.path().join(format!("d{}", i % 4));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("f{i}")), vec![b'x'; i * 300]).unwrap();
    }
    let off = ReadAhead {
        threads: 0,
        ..ReadAhead::default()
    };
    let (with, _) = write_volume_tar(tmp.path(), Vec::new()).unwrap();
    let (without, _) = write_volume_tar_with(tmp.path(), Vec::new(), off).unwrap();
    // (not byte for byte: the headers carry atimes, which the first run's reads may move)
    assert_eq!(entries(&with), entries(&without));
    assert_eq!(entries(&with).len(), 55);
}

#[test]
fn a_closed_budget_refuses_waiters() {
    let budget = read_ahead::Budget::new(10);
    let held = budget.acquire(6).unwrap();
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| budget.acquire(6).is_none());
        budget.close();
        assert!(waiter.join().unwrap());
    });
    drop(held);
    assert!(budget.acquire(1).is_none());
}
