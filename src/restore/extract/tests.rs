//! Hostile archives and hostile targets, through `openat2` and through the per-component walk.

use super::beneath::{Beneath, Resolver};
use super::*;
use std::os::unix::fs::{symlink, MetadataExt};

const BOTH: [Resolver; 2] = [Resolver::Auto, Resolver::Walk];

/// A raw tar header whose name is written as is (builders refuse `..` and absolute names).
fn entry(tar: &mut Vec<u8>, name: &str, kind: EntryType, link: &str, data: &[u8]) {
    entry_with(tar, name, kind, link, data, 0o644, 1_600_000_000);
}

fn entry_with(
    tar: &mut Vec<u8>,
    name: &str,
    kind: EntryType,
    link: &str,
    data: &[u8],
    mode: u32,
    mtime: u64,
) {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_uid(1234);
    header.set_gid(2345);
    header.set_mtime(mtime);
    header.set_cksum();
    tar.extend_from_slice(header.as_bytes());
    tar.extend_from_slice(data);
    tar.resize(tar.len().next_multiple_of(512), 0);
}

/// `outside/` holding `target/` and a file `victim`, in a fresh temporary folder.
struct Scene {
    _tmp: tempfile::TempDir,
    outside: PathBuf,
    target: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        let target = outside.join("target");
        fs::create_dir_all(&target).unwrap();
        fs::write(outside.join("victim"), b"victim").unwrap();
        Self {
            _tmp: tmp,
            outside,
            target,
        }
    }

    fn extract(&self, mut tar: Vec<u8>, resolver: Resolver) -> ExtractReport {
        tar.extend_from_slice(&[0; 1024]);
        extract_with(&tar[..], &self.target, false, resolver).unwrap()
    }

    /// Nothing but `target` and an untouched `victim` next to the target.
    fn assert_nothing_outside(&self) {
        let mut names: Vec<_> = fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["target", "victim"]);
        assert_eq!(fs::read(self.outside.join("victim")).unwrap(), b"victim");
    }

    fn assert_link(&self, rel: &str, to: &str) {
        let read = fs::read_link(self.target.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(read, Path::new(to), "{rel} restored verbatim");
    }
}

fn reason<'r>(report: &'r ExtractReport, entry: &str) -> &'r str {
    report
        .refused
        .iter()
        .find(|(name, _)| name == entry)
        .map(|(_, why)| why.as_str())
        .unwrap_or_else(|| panic!("{entry} not refused: {:?}", report.refused))
}

#[test]
fn hostile_archives_are_refused_and_their_symlinks_restored_verbatim() {
    for resolver in BOTH {
        let scene = Scene::new();
        let outside = scene.outside.to_str().unwrap();
        let mut tar = Vec::new();
        entry(&mut tar, "good.txt", EntryType::Regular, "", b"good");
        // a chain lexical checks let through: y resolves to the target's parent
        entry(&mut tar, "x", EntryType::Symlink, ".", b"");
        entry(&mut tar, "y", EntryType::Symlink, "x/..", b"");
        entry(&mut tar, "y/victim", EntryType::Regular, "", b"evil");
        entry(&mut tar, "y/escape", EntryType::Regular, "", b"evil");
        entry(
            &mut tar,
            "y/new/deeper.txt",
            EntryType::Regular,
            "",
            b"evil",
        );
        // a symlink, then a file of the same name: the file replaces the link, not its target
        entry(&mut tar, "replaced", EntryType::Symlink, "../victim", b"");
        entry(&mut tar, "replaced", EntryType::Regular, "", b"plain");
        // hard links: to a symlink (refused), to a regular file restored here (made)
        entry(&mut tar, "ok-link", EntryType::Symlink, "good.txt", b"");
        entry(&mut tar, "hard-to-link", EntryType::Link, "ok-link", b"");
        entry(&mut tar, "hard-to-good", EntryType::Link, "good.txt", b"");
        entry(&mut tar, "good.txt", EntryType::Link, "good.txt", b"");
        // an absolute symlink, then a file, a folder and a folder entry through it
        entry(&mut tar, "abs-link", EntryType::Symlink, outside, b"");
        entry(&mut tar, "abs-link/victim", EntryType::Regular, "", b"evil");
        entry(
            &mut tar,
            "abs-link/made/file",
            EntryType::Regular,
            "",
            b"evil",
        );
        entry(&mut tar, "abs-link/", EntryType::Directory, "", b"");
        entry(&mut tar, "abs-link/dir/", EntryType::Directory, "", b"");
        let report = scene.extract(tar, resolver);

        for refused in ["y/victim", "y/escape", "y/new/deeper.txt"] {
            assert!(
                reason(&report, refused).contains("its folder y is a symlink"),
                "{resolver:?} {refused}: {:?}",
                report.refused
            );
        }
        for refused in ["abs-link/victim", "abs-link/made/file", "abs-link/dir/"] {
            assert!(
                reason(&report, refused).contains("its folder abs-link is a symlink"),
                "{resolver:?} {refused}: {:?}",
                report.refused
            );
        }
        assert!(reason(&report, "abs-link/").contains("not a folder"));
        assert!(reason(&report, "hard-to-link").contains("not a regular file restored"));
        assert_eq!(reason(&report, "good.txt"), "hard link to itself");
        assert_eq!(report.refused.len(), 9, "{:?}", report.refused);

        scene.assert_nothing_outside();
        for (link, to) in [
            ("x", "."),
            ("y", "x/.."),
            ("ok-link", "good.txt"),
            ("abs-link", outside),
        ] {
            scene.assert_link(link, to);
        }
        let target = &scene.target;
        assert_eq!(fs::read(target.join("replaced")).unwrap(), b"plain");
        assert!(!fs::symlink_metadata(target.join("replaced"))
            .unwrap()
            .is_symlink());
        let (good, hard) = (
            fs::metadata(target.join("good.txt")).unwrap(),
            fs::metadata(target.join("hard-to-good")).unwrap(),
        );
        assert_eq!(good.ino(), hard.ino(), "{resolver:?}: hard link made");
        assert_eq!(fs::read(target.join("good.txt")).unwrap(), b"good");
        assert_eq!(
            (report.files, report.symlinks, report.hard_links),
            (2, 5, 1)
        );
    }
}

#[test]
fn symlinks_already_in_the_target_are_replaced_or_refused_never_followed() {
    for resolver in BOTH {
        let scene = Scene::new();
        let target = &scene.target;
        symlink(&scene.outside, target.join("pre-dir")).unwrap();
        symlink(scene.outside.join("victim"), target.join("pre-file")).unwrap();
        fs::create_dir(target.join("real")).unwrap();
        symlink("..", target.join("real/up")).unwrap();
        let mut tar = Vec::new();
        entry(&mut tar, "pre-file", EntryType::Regular, "", b"mine");
        entry(&mut tar, "pre-dir/victim", EntryType::Regular, "", b"evil");
        entry(&mut tar, "pre-dir/", EntryType::Directory, "", b"");
        entry(
            &mut tar,
            "real/up/up/victim",
            EntryType::Regular,
            "",
            b"evil",
        );
        entry(&mut tar, "real/up", EntryType::Symlink, "elsewhere", b"");
        let report = scene.extract(tar, resolver);

        assert!(reason(&report, "pre-dir/victim").contains("its folder pre-dir is a symlink"));
        assert!(reason(&report, "pre-dir/").contains("not a folder"));
        assert!(reason(&report, "real/up/up/victim").contains("its folder real/up is a symlink"));
        assert_eq!(
            report.refused.len(),
            3,
            "{resolver:?}: {:?}",
            report.refused
        );
        scene.assert_nothing_outside();
        assert_eq!(fs::read(target.join("pre-file")).unwrap(), b"mine");
        scene.assert_link("pre-dir", scene.outside.to_str().unwrap());
        scene.assert_link("real/up", "elsewhere");
    }
}

#[test]
fn folders_get_their_metadata_last_and_missing_folders_are_made() {
    for resolver in BOTH {
        let scene = Scene::new();
        let mut tar = Vec::new();
        entry_with(
            &mut tar,
            "./",
            EntryType::Directory,
            "",
            b"",
            0o750,
            1_500_000_000,
        );
        entry_with(
            &mut tar,
            "ro/",
            EntryType::Directory,
            "",
            b"",
            0o555,
            1_400_000_000,
        );
        entry_with(
            &mut tar,
            "ro/sub/",
            EntryType::Directory,
            "",
            b"",
            0o500,
            1_300_000_000,
        );
        entry_with(
            &mut tar,
            "ro/sub/f",
            EntryType::Regular,
            "",
            b"f",
            0o640,
            1_200_000_000,
        );
        entry(&mut tar, "ro/link", EntryType::Symlink, "sub/f", b"");
        entry(&mut tar, "implicit/a/b.txt", EntryType::Regular, "", b"b");
        let report = scene.extract(tar, resolver);
        assert!(report.refused.is_empty(), "{:?}", report.refused);

        let target = &scene.target;
        let meta = |rel: &str| fs::symlink_metadata(target.join(rel)).unwrap();
        for (rel, mode, mtime) in [
            ("", 0o750, 1_500_000_000),
            ("ro", 0o555, 1_400_000_000),
            ("ro/sub", 0o500, 1_300_000_000),
            ("ro/sub/f", 0o640, 1_200_000_000),
        ] {
            let m = meta(rel);
            assert_eq!(m.mode() & 0o7777, mode, "{resolver:?} mode of {rel:?}");
            assert_eq!(m.mtime(), mtime, "{resolver:?} mtime of {rel:?}");
        }
        assert_eq!(meta("ro/link").mtime(), 1_600_000_000);
        assert_eq!(fs::read(target.join("implicit/a/b.txt")).unwrap(), b"b");
        if unsafe { libc::geteuid() } == 0 {
            for rel in ["", "ro", "ro/sub/f", "ro/link"] {
                assert_eq!(
                    (meta(rel).uid(), meta(rel).gid()),
                    (1234, 2345),
                    "owner of {rel:?}"
                );
            }
            assert!(report.ownership_note.is_none());
        } else {
            assert!(report.ownership_note.is_some());
        }
    }
}

#[test]
fn openat2_is_used_where_the_kernel_has_it_and_the_walk_when_told() {
    let scene = Scene::new();
    fs::create_dir_all(scene.target.join("a/b")).unwrap();
    let mut auto = Beneath::open(&scene.target, Resolver::Auto).unwrap();
    auto.folder(Path::new("a/b")).unwrap();
    assert!(
        auto.uses_openat2(),
        "openat2 (Linux >= 5.6) was refused: an old kernel or a seccomp filter hides it here"
    );
    let mut walk = Beneath::open(&scene.target, Resolver::Walk).unwrap();
    walk.folder(Path::new("a/b")).unwrap();
    assert!(!walk.uses_openat2());
}

#[test]
fn a_dry_run_writes_nothing() {
    let scene = Scene::new();
    let mut tar = Vec::new();
    entry(&mut tar, "d/", EntryType::Directory, "", b"");
    entry(&mut tar, "d/f", EntryType::Regular, "", b"data");
    entry(&mut tar, "l", EntryType::Symlink, "d/f", b"");
    entry(&mut tar, "h", EntryType::Link, "d/f", b"");
    entry(&mut tar, "../evil", EntryType::Regular, "", b"evil");
    tar.extend_from_slice(&[0; 1024]);
    let missing = scene.target.join("missing");
    let report = extract_tar(&tar[..], &missing, true).unwrap();
    assert_eq!(
        (
            report.directories,
            report.files,
            report.bytes,
            report.symlinks,
            report.hard_links
        ),
        (1, 1, 4, 1, 1)
    );
    assert_eq!(report.refused.len(), 1);
    assert!(!missing.exists());
}
