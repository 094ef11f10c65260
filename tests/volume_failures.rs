//! Nothing lost, nothing half-done: interrupted runs, corrupt artifacts and manifests, a full
//! destination, hostile archives, and bad input each give a clear error and no false set.

mod support;

use deis_backup::jobs::CompressedArtifact;
use deis_backup::store::{
    Destination, JobKind, LocalDestination, Manifest, RunId, SetRef, ToolInfo, FORMAT_VERSION,
};
use std::fs;
use std::io::Write;
use std::path::Path;
use support::*;

#[test]
fn kill_9_mid_backup_leaves_no_set_and_the_next_run_sweeps_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, dest) = (tmp.path().join("store"), tmp.path().join("backups"));
    for i in 0..8 {
        write(
            &source.join(format!("f{i}.bin")),
            &random_bytes(i, 16 << 20),
        );
    }
    let url = file_url(&dest);
    let mut child = spawn(&[
        "backup",
        "volume",
        "--volume-path",
        source.to_str().unwrap(),
        "--destination",
        &url,
        "--compression-level",
        "19",
    ]);
    let partial_written = wait_until(60_000, || {
        set_dirs(&dest, "volume")
            .iter()
            .any(|d| fs::metadata(d.join(".store.tar.zst.partial")).is_ok_and(|m| m.len() > 0))
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(partial_written, "the backup never started writing");
    let leftovers = set_dirs(&dest, "volume");
    assert_eq!(
        leftovers.len(),
        1,
        "the killed run leaves its folder behind"
    );

    let list = run(&["list", "--json", "--destination", &url]);
    list.assert_ok();
    assert_eq!(
        list.stdout.trim(),
        "[]",
        "an interrupted set is never listed"
    );
    assert_ne!(run(&["verify", "latest", "--destination", &url]).code, 0);
    assert_ne!(
        run(&[
            "restore",
            "latest",
            "--only",
            "volume",
            "--dry-run",
            "--destination",
            &url
        ])
        .code,
        0
    );

    fs::remove_dir_all(&source).unwrap();
    write(&source.join("small.txt"), b"small");
    let next = backup_volume(&source, &url);
    next.assert_ok();
    assert!(
        next.stderr.contains("Removed an incomplete backup set"),
        "{}",
        next.all()
    );
    let remaining = set_dirs(&dest, "volume");
    assert_eq!(remaining.len(), 1);
    assert_ne!(remaining[0], leftovers[0], "the leftover was swept");
    assert!(remaining[0].join("manifest.json").exists());
    // beside the set, only the job's catalog index
    let stray: Vec<_> = fs::read_dir(dest.join("volume"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|name| name != deis_backup::store::INDEX_NAME)
        .collect();
    assert_eq!(stray.len(), 1, "no lock or partial files left: {stray:?}");
    assert!(dest
        .join("volume")
        .join(deis_backup::store::INDEX_NAME)
        .is_file());
}

#[test]
fn a_corrupted_artifact_fails_verify_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, dest) = (tmp.path().join("store"), tmp.path().join("backups"));
    write(&source.join("data.bin"), &random_bytes(3, 1 << 20));
    let url = file_url(&dest);
    backup_volume(&source, &url).assert_ok();
    let artifact = set_dirs(&dest, "volume")[0].join("store.tar.zst");
    let mut bytes = fs::read(&artifact).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&artifact, &bytes).unwrap();

    let verify = run(&["verify", "latest", "--destination", &url]);
    assert_eq!(verify.code, 1, "{}", verify.all());
    assert!(
        verify.stdout.contains("store.tar.zst: FAILED: sha256 is"),
        "{}",
        verify.all()
    );

    bytes.truncate(middle);
    fs::write(&artifact, &bytes).unwrap();
    let verify = run(&["verify", "latest", "--destination", &url]);
    assert_eq!(verify.code, 1);
    assert!(
        verify.stdout.contains("size is") && verify.stdout.contains("does not decode"),
        "{}",
        verify.all()
    );
}

#[test]
fn a_truncated_manifest_is_skipped_by_list_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, dest) = (tmp.path().join("store"), tmp.path().join("backups"));
    write(&source.join("a.txt"), b"a");
    let url = file_url(&dest);
    backup_volume(&source, &url).assert_ok();
    let set = set_dirs(&dest, "volume")[0].clone();
    let manifest = set.join("manifest.json");
    let text = fs::read(&manifest).unwrap();
    fs::write(&manifest, &text[..text.len() / 2]).unwrap();

    let list = run(&["list", "--destination", &url]);
    list.assert_ok();
    let name = set.file_name().unwrap().to_str().unwrap();
    assert!(
        list.stderr.contains(name) && list.stderr.contains("corrupt"),
        "{}",
        list.all()
    );
    assert!(!list.stdout.contains(name));
}

#[test]
fn a_full_destination_fails_the_run_and_leaves_no_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, dest) = (tmp.path().join("store"), tmp.path().join("full"));
    fs::create_dir_all(&dest).unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=1m",
            "tmpfs",
            dest.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "this test needs root to mount a 1 MiB tmpfs"
    );
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&dest);
    write(&source.join("data.bin"), &random_bytes(9, 4 << 20));

    let backup = backup_volume(&source, &file_url(&dest));
    assert_eq!(backup.code, 1, "{}", backup.all());
    assert!(
        backup.stderr.contains("No space left on device"),
        "{}",
        backup.all()
    );
    let left: Vec<_> = walk_files(&dest);
    assert!(left.is_empty(), "temporary files removed: {left:?}");
}

fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            out.extend(walk_files(&entry.path()));
        } else {
            out.push(entry.path().display().to_string());
        }
    }
    out
}

#[test]
fn bad_volume_path_and_unwritable_destination_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let url = file_url(&tmp.path().join("backups"));
    let missing = run(&[
        "backup",
        "volume",
        "--volume-path",
        "/no/such/store",
        "--destination",
        &url,
    ]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("/no/such/store"),
        "{}",
        missing.all()
    );
    assert!(set_dirs(&tmp.path().join("backups"), "volume").is_empty());

    let blocker = tmp.path().join("not-a-dir");
    fs::write(&blocker, b"file").unwrap();
    let dest = format!("file://{}/sub", blocker.display());
    let unwritable = backup_volume(tmp.path(), &dest);
    assert_eq!(unwritable.code, 1);
    assert!(
        unwritable.stderr.contains("not writable") && unwritable.stderr.contains("not-a-dir"),
        "{}",
        unwritable.all()
    );
}

/// A raw tar header whose name is written as is (builders refuse `..` and absolute names).
fn raw_entry(tar: &mut Vec<u8>, name: &str, kind: tar::EntryType, link: &str, data: &[u8]) {
    let mut header = tar::Header::new_gnu();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    header.set_entry_type(kind);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_600_000_000);
    header.set_cksum();
    tar.extend_from_slice(header.as_bytes());
    tar.extend_from_slice(data);
    tar.resize(tar.len().next_multiple_of(512), 0);
}

/// Writes a complete `volume` set holding `tar` as its archive, like a tampered backup would be.
fn plant_volume_set(dest: &Path, tar: &[u8]) {
    let store = LocalDestination::new(dest);
    let set = SetRef {
        job: JobKind::Volume,
        run_id: RunId::new(chrono::Utc::now()),
    };
    let mut pending = store.begin_set(&set).unwrap();
    let mut artifact = CompressedArtifact::new(
        "store.tar.zst",
        pending.create_artifact("store.tar.zst").unwrap(),
        3,
        deis_backup::util::Cancel::new(),
    )
    .unwrap();
    artifact.write_all(tar).unwrap();
    let artifact = artifact.finish("tar").unwrap();
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        job: JobKind::Volume,
        run_id: set.run_id.clone(),
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        host: "test".into(),
        tool: ToolInfo::this_build(),
        source: serde_json::json!({"kind": "volume"}),
        artifacts: vec![artifact],
        warnings: vec![],
        stats: Default::default(),
    };
    pending.complete(&manifest.to_json()).unwrap();
}

#[test]
fn hostile_archive_entries_are_refused_and_nothing_lands_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let (dest, outside, target) = (
        tmp.path().join("backups"),
        tmp.path().join("outside"),
        tmp.path().join("outside/target"),
    );
    fs::create_dir_all(&outside).unwrap();
    let absolute = tmp.path().join("absolute-evil.txt");
    let mut tar = Vec::new();
    raw_entry(&mut tar, "good.txt", tar::EntryType::Regular, "", b"good");
    raw_entry(
        &mut tar,
        "../evil.txt",
        tar::EntryType::Regular,
        "",
        b"evil",
    );
    raw_entry(
        &mut tar,
        "sub/../../evil2.txt",
        tar::EntryType::Regular,
        "",
        b"evil",
    );
    raw_entry(
        &mut tar,
        absolute.to_str().unwrap(),
        tar::EntryType::Regular,
        "",
        b"evil",
    );
    raw_entry(&mut tar, "escape", tar::EntryType::Symlink, "..", b"");
    raw_entry(
        &mut tar,
        "abs-link",
        tar::EntryType::Symlink,
        outside.to_str().unwrap(),
        b"",
    );
    raw_entry(
        &mut tar,
        "ok-link",
        tar::EntryType::Symlink,
        "good.txt",
        b"",
    );
    raw_entry(
        &mut tar,
        "ok-link/through.txt",
        tar::EntryType::Regular,
        "",
        b"evil",
    );
    raw_entry(
        &mut tar,
        "hard",
        tar::EntryType::Link,
        "../../etc/passwd",
        b"",
    );
    // a chain that lexical checks let through: y resolves outside, and is only data here
    raw_entry(&mut tar, "x", tar::EntryType::Symlink, ".", b"");
    raw_entry(&mut tar, "y", tar::EntryType::Symlink, "x/..", b"");
    raw_entry(
        &mut tar,
        "y/escape.txt",
        tar::EntryType::Regular,
        "",
        b"evil",
    );
    raw_entry(
        &mut tar,
        "abs-link/through.txt",
        tar::EntryType::Regular,
        "",
        b"evil",
    );
    raw_entry(
        &mut tar,
        "hard-to-link",
        tar::EntryType::Link,
        "ok-link",
        b"",
    );
    // a symlink, then a file of the same name: the file replaces the link, not its target
    raw_entry(
        &mut tar,
        "replaced",
        tar::EntryType::Symlink,
        "../outside-file",
        b"",
    );
    raw_entry(&mut tar, "replaced", tar::EntryType::Regular, "", b"plain");
    raw_entry(&mut tar, "dev-null", tar::EntryType::Char, "", b"");
    tar.extend_from_slice(&[0; 1024]);
    plant_volume_set(&dest, &tar);

    let restore = run(&[
        "restore",
        "latest",
        "--only",
        "volume",
        "--volume-path",
        target.to_str().unwrap(),
        "--destination",
        &file_url(&dest),
    ]);
    assert_eq!(restore.code, 1, "{}", restore.all());
    for refused in [
        "../evil.txt",
        "sub/../../evil2.txt",
        "ok-link/through.txt",
        "hard",
        "dev-null",
        "y/escape.txt",
        "abs-link/through.txt",
        "hard-to-link",
    ] {
        assert!(
            restore
                .stderr
                .contains(&format!("refused entry \"{refused}\"")),
            "{refused}: {}",
            restore.all()
        );
    }
    for (through, folder) in [("y/escape.txt", "y"), ("abs-link/through.txt", "abs-link")] {
        assert!(
            restore.stderr.contains(&format!(
                "refused entry \"{through}\": its folder {folder} is a symlink"
            )),
            "{through}: {}",
            restore.all()
        );
    }
    assert!(
        restore.stderr.contains(absolute.to_str().unwrap()),
        "{}",
        restore.all()
    );
    assert_eq!(
        fs::read(target.join("good.txt")).unwrap_or_else(|_| panic!("{}", restore.all())),
        b"good"
    );
    // every symlink is restored verbatim, whatever it points at
    for (link, to) in [
        ("ok-link", "good.txt"),
        ("escape", ".."),
        ("abs-link", outside.to_str().unwrap()),
        ("x", "."),
        ("y", "x/.."),
    ] {
        assert_eq!(
            fs::read_link(target.join(link)).unwrap_or_else(|e| panic!("{link}: {e}")),
            Path::new(to)
        );
    }
    assert_eq!(fs::read(target.join("replaced")).unwrap(), b"plain");
    let mut written: Vec<_> = fs::read_dir(&target)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    written.sort();
    assert_eq!(
        written,
        ["abs-link", "escape", "good.txt", "ok-link", "replaced", "x", "y"]
    );
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        1,
        "only the target itself in its parent"
    );
    assert!(
        !tmp.path().join("evil.txt").exists()
            && !tmp.path().join("evil2.txt").exists()
            && !absolute.exists()
    );
}

#[test]
fn restore_with_force_never_writes_through_symlinks_already_in_the_target() {
    let tmp = tempfile::tempdir().unwrap();
    let (source, dest, outside) = (
        tmp.path().join("store"),
        tmp.path().join("backups"),
        tmp.path().join("outside"),
    );
    let target = outside.join("target");
    write(&source.join("logs/osd.0.log"), b"log");
    write(&source.join("config"), b"mine");
    let url = file_url(&dest);
    backup_volume(&source, &url).assert_ok();
    // someone planted symlinks where the archive's folder and file go
    write(&outside.join("victim"), b"victim");
    fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("logs")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), target.join("config")).unwrap();

    let restore = run(&[
        "restore",
        "latest",
        "--only",
        "volume",
        "--force",
        "--volume-path",
        target.to_str().unwrap(),
        "--destination",
        &url,
    ]);
    assert_eq!(restore.code, 1, "{}", restore.all());
    assert!(
        restore
            .stderr
            .contains("refused entry \"logs\": something that is not a folder is in the way")
            && restore
                .stderr
                .contains("refused entry \"logs/osd.0.log\": its folder logs is a symlink"),
        "{}",
        restore.all()
    );
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"victim");
    assert!(!outside.join("osd.0.log").exists());
    assert_eq!(fs::read_link(target.join("logs")).unwrap(), outside);
    assert!(!fs::symlink_metadata(target.join("config"))
        .unwrap()
        .is_symlink());
    assert_eq!(fs::read(target.join("config")).unwrap(), b"mine");
}
