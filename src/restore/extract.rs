//! Extracts a tar stream into a folder like `tar -xpf --same-owner`: every symlink is restored
//! verbatim, whatever it points at (a symlink is data), and safety comes from never following
//! one while writing: each folder on an entry's way is checked to be a real folder (lstat),
//! files are created with `O_NOFOLLOW`, and an entry that would go through a symlink is
//! refused. Also refused: absolute paths, `..`, hard links to anything but a regular file
//! restored in this run, device nodes. A refused entry writes nothing; the others are restored.

use super::safe_path::entry_path;
use serde::Serialize;
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tar::EntryType;

/// What an extraction did.
#[derive(Debug, Default, Serialize)]
pub struct ExtractReport {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub hard_links: u64,
    pub bytes: u64,
    /// Entries refused, with the reason.
    pub refused: Vec<(String, String)>,
    /// Set when owners could not be restored (not running as root).
    pub ownership_note: Option<String>,
}

struct DirMeta {
    path: PathBuf,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

/// Extracts `reader` (a plain tar stream) into `target`. With `dry_run`, only reads and checks.
pub fn extract_tar(reader: impl Read, target: &Path, dry_run: bool) -> io::Result<ExtractReport> {
    let mut report = ExtractReport::default();
    let mut dirs: Vec<DirMeta> = Vec::new();
    let mut restored: HashSet<PathBuf> = HashSet::new();
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw_path = entry.path()?.into_owned();
        let shown = raw_path.display().to_string();
        match plan_entry(&entry, &raw_path) {
            Err(reason) => {
                tracing::debug!(entry = %shown, "Refused archive entry: {reason}.");
                report.refused.push((shown, reason));
            }
            Ok(_) if dry_run => count(&mut report, entry.header().entry_type(), entry.size()),
            Ok(rel) => {
                let written = write_entry(
                    &mut entry,
                    target,
                    rel.as_deref(),
                    &mut dirs,
                    &mut restored,
                    &mut report,
                );
                if let Err(reason) = written {
                    tracing::debug!(entry = %shown, "Refused archive entry: {reason}.");
                    report.refused.push((shown, reason));
                }
            }
        }
    }
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    dirs.sort_by_key(|d| std::cmp::Reverse(d.path.components().count()));
    for dir in dirs {
        set_owner(&dir.path, dir.uid, dir.gid, &mut report, false);
        let _ = fs::set_permissions(&dir.path, fs::Permissions::from_mode(dir.mode));
        let _ = filetime::set_file_mtime(
            &dir.path,
            filetime::FileTime::from_unix_time(dir.mtime as i64, 0),
        );
    }
    Ok(report)
}

fn count(report: &mut ExtractReport, kind: EntryType, size: u64) {
    match kind {
        EntryType::Directory => report.directories += 1,
        EntryType::Symlink => report.symlinks += 1,
        EntryType::Link => report.hard_links += 1,
        _ => {
            report.files += 1;
            report.bytes += size;
        }
    }
}

/// The entry's relative path when it is acceptable, whatever the state of the target.
fn plan_entry<R: Read>(entry: &tar::Entry<R>, raw_path: &Path) -> Result<Option<PathBuf>, String> {
    let rel = entry_path(raw_path)?;
    let kind = entry.header().entry_type();
    match kind {
        EntryType::Regular | EntryType::Continuous | EntryType::Directory => {}
        EntryType::Symlink | EntryType::Link => {
            let link = entry
                .link_name()
                .map_err(|e| format!("unreadable link target: {e}"))?
                .ok_or("link without a target")?;
            if kind == EntryType::Link {
                entry_path(&link)
                    .map_err(|e| format!("hard link target {}: {e}", link.display()))?;
            }
        }
        EntryType::Char | EntryType::Block => return Err("device node".into()),
        EntryType::Fifo => return Err("FIFO".into()),
        other => return Err(format!("unsupported entry type {other:?}")),
    }
    if rel.is_none() && kind != EntryType::Directory {
        return Err("entry replaces the target folder itself".into());
    }
    Ok(rel)
}

fn write_entry<R: Read>(
    entry: &mut tar::Entry<R>,
    target: &Path,
    rel: Option<&Path>,
    dirs: &mut Vec<DirMeta>,
    restored: &mut HashSet<PathBuf>,
    report: &mut ExtractReport,
) -> Result<(), String> {
    let header = entry.header();
    let kind = header.entry_type();
    let mode = header.mode().map_err(|e| e.to_string())? & 0o7777;
    let uid = header.uid().map_err(|e| e.to_string())?;
    let gid = header.gid().map_err(|e| e.to_string())?;
    let mtime = header.mtime().map_err(|e| e.to_string())?;
    let Some(rel) = rel else {
        dirs.push(DirMeta {
            path: target.to_path_buf(),
            mode,
            uid,
            gid,
            mtime,
        });
        return Ok(());
    };
    let path = target.join(rel);
    prepare_parent(target, rel)?;
    if kind == EntryType::Directory {
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err("something that is not a folder is in the way".into()),
            Err(_) => fs::create_dir(&path).map_err(|e| format!("cannot create folder: {e}"))?,
        }
        dirs.push(DirMeta {
            path,
            mode,
            uid,
            gid,
            mtime,
        });
        report.directories += 1;
        return Ok(());
    }
    clear_the_way(&path)?;
    restored.remove(rel);
    let time = filetime::FileTime::from_unix_time(mtime as i64, 0);
    match kind {
        EntryType::Symlink => {
            let link = entry
                .link_name()
                .ok()
                .flatten()
                .ok_or("link without a target")?
                .into_owned();
            std::os::unix::fs::symlink(&link, &path)
                .map_err(|e| format!("cannot create symlink: {e}"))?;
            set_owner(&path, uid, gid, report, true);
            let _ = filetime::set_symlink_file_times(&path, time, time);
            report.symlinks += 1;
        }
        EntryType::Link => {
            let link = entry
                .link_name()
                .ok()
                .flatten()
                .ok_or("link without a target")?;
            let link_rel = entry_path(&link)?.ok_or("hard link to the target folder")?;
            if !restored.contains(&link_rel) {
                return Err(format!(
                    "hard link target {} is not a regular file restored by this archive",
                    link_rel.display()
                ));
            }
            let source = target.join(&link_rel);
            fs::hard_link(&source, &path).map_err(|e| format!("cannot create hard link: {e}"))?;
            report.hard_links += 1;
        }
        _ => {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)
                .map_err(|e| format!("cannot create file: {e}"))?;
            report.bytes +=
                io::copy(entry, &mut file).map_err(|e| format!("cannot write file: {e}"))?;
            apply_file_metadata(&file, &path, mode, uid, gid, time, report);
            restored.insert(rel.to_path_buf());
            report.files += 1;
        }
    }
    Ok(())
}

fn apply_file_metadata(
    file: &File,
    path: &Path,
    mode: u32,
    uid: u64,
    gid: u64,
    time: filetime::FileTime,
    report: &mut ExtractReport,
) {
    if let Err(e) = std::os::unix::fs::fchown(file, Some(uid as u32), Some(gid as u32)) {
        note_ownership(report, path, e);
    }
    let _ = file.set_permissions(fs::Permissions::from_mode(mode));
    let _ = filetime::set_file_handle_times(file, Some(time), Some(time));
}

fn set_owner(path: &Path, uid: u64, gid: u64, report: &mut ExtractReport, is_symlink: bool) {
    let result = if is_symlink {
        std::os::unix::fs::lchown(path, Some(uid as u32), Some(gid as u32))
    } else {
        std::os::unix::fs::chown(path, Some(uid as u32), Some(gid as u32))
    };
    if let Err(e) = result {
        note_ownership(report, path, e);
    }
}

fn note_ownership(report: &mut ExtractReport, path: &Path, e: io::Error) {
    if report.ownership_note.is_none() {
        report.ownership_note = Some(format!(
            "owners not restored (first at {}: {e}); run as root to keep them",
            path.display()
        ));
    }
}

/// Creates the missing folders above `rel` and refuses when one of them is not a real folder
/// (a symlink placed by an earlier entry must never be written through).
fn prepare_parent(target: &Path, rel: &Path) -> Result<(), String> {
    let mut current = target.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for part in parent.components() {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!("its folder {} is a symlink", current.display()));
            }
            Ok(_) => return Err(format!("{} is not a folder", current.display())),
            Err(_) => fs::create_dir(&current)
                .map_err(|e| format!("cannot create {}: {e}", current.display()))?,
        }
    }
    Ok(())
}

/// Removes a file or symlink where the entry goes; a folder in the way is refused.
fn clear_the_way(path: &Path) -> Result<(), String> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err("a folder is in the way".into()),
        Ok(_) => {
            fs::remove_file(path).map_err(|e| format!("cannot replace the existing file: {e}"))
        }
        Err(_) => Ok(()),
    }
}
