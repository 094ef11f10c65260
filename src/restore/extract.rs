//! Extracts a tar stream into a folder like `tar -xpf --same-owner`: every symlink is restored
//! verbatim, whatever it points at (a symlink is data), and safety comes from never following
//! one while writing: each entry is created relative to a handle on its folder that was opened
//! without following any symlink (see `beneath`), with `mkdirat`, `openat(O_CREAT | O_EXCL |
//! O_NOFOLLOW)`, `symlinkat` or `linkat`, so no check can go stale before its use. An entry
//! whose way goes through a symlink is refused. Also refused: absolute paths, `..`, hard links
//! to anything but a regular file restored in this run, device nodes. A refused entry writes
//! nothing; the others are restored. Folders get their mode, owner and times last, deepest first.

mod at;
mod beneath;
#[cfg(test)]
mod tests;

use super::safe_path::entry_path;
use beneath::{Beneath, Resolver};
use serde::Serialize;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
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
    /// Dry run: entries other than folders whose name the target already holds (a restore
    /// with `--force` replaces them).
    pub existing: u64,
    /// Entries refused, with the reason.
    pub refused: Vec<(String, String)>,
    /// Set when owners could not be restored (not running as root).
    pub ownership_note: Option<String>,
}

/// Mode, owner and mtime of a folder, applied once everything inside it is written.
struct FolderMeta {
    /// Relative to the target; empty for the target itself.
    rel: PathBuf,
    meta: Meta,
}

/// The metadata of an entry, from its tar header.
#[derive(Clone, Copy)]
struct Meta {
    mode: u32,
    /// `None` (left as it is) when the archive's id does not fit a `uid_t`.
    uid: Option<u32>,
    gid: Option<u32>,
    mtime: i64,
}

/// What the writing side keeps between entries.
struct Writer<'t> {
    target: &'t Path,
    beneath: Beneath,
    folders: Vec<FolderMeta>,
    /// Regular files written by this run: the only things a hard link may point at.
    restored: HashSet<PathBuf>,
}

/// Extracts `reader` (a plain tar stream) into `target`. With `dry_run`, only reads and checks.
pub fn extract_tar(reader: impl Read, target: &Path, dry_run: bool) -> io::Result<ExtractReport> {
    extract_with(reader, target, dry_run, Resolver::Auto)
}

fn extract_with(
    reader: impl Read,
    target: &Path,
    dry_run: bool,
    resolver: Resolver,
) -> io::Result<ExtractReport> {
    let mut report = ExtractReport::default();
    let mut writer = match dry_run {
        true => None,
        false => Some(Writer {
            target,
            beneath: Beneath::open(target, resolver).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open the restore target {}: {e}", target.display()),
                )
            })?,
            folders: Vec::new(),
            restored: HashSet::new(),
        }),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw_path = entry.path()?.into_owned();
        let shown = raw_path.display().to_string();
        let outcome = plan_entry(&entry, &raw_path).and_then(|rel| match writer.as_mut() {
            None => {
                let kind = entry.header().entry_type();
                count(&mut report, kind, entry.size());
                if let Some(rel) = rel.filter(|_| kind != EntryType::Directory) {
                    report.existing += u64::from(target.join(rel).symlink_metadata().is_ok());
                }
                Ok(())
            }
            Some(writer) => writer.write_entry(&mut entry, rel.as_deref(), &mut report),
        });
        if let Err(reason) = outcome {
            tracing::debug!(entry = %shown, "Refused archive entry: {reason}.");
            report.refused.push((shown, reason));
        }
    }
    io::copy(&mut archive.into_inner(), &mut io::sink())?;
    if let Some(writer) = writer {
        writer.finish_folders(&mut report);
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

fn header_meta(header: &tar::Header) -> Result<Meta, String> {
    let id = |value: io::Result<u64>| -> Result<Option<u32>, String> {
        Ok(u32::try_from(value.map_err(|e| e.to_string())?).ok())
    };
    Ok(Meta {
        mode: header.mode().map_err(|e| e.to_string())? & 0o7777,
        uid: id(header.uid())?,
        gid: id(header.gid())?,
        mtime: header.mtime().map_err(|e| e.to_string())? as i64,
    })
}

/// Splits a relative entry path into its folder (empty for the target) and its name.
fn split(rel: &Path) -> Result<(&Path, &OsStr), String> {
    let name = rel.file_name().ok_or("entry without a name")?;
    Ok((rel.parent().unwrap_or(Path::new("")), name))
}

impl Writer<'_> {
    fn write_entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        rel: Option<&Path>,
        report: &mut ExtractReport,
    ) -> Result<(), String> {
        let kind = entry.header().entry_type();
        let meta = header_meta(entry.header())?;
        let Some(rel) = rel else {
            self.folders.push(FolderMeta {
                rel: PathBuf::new(),
                meta,
            });
            return Ok(());
        };
        let (parent, name) = split(rel)?;
        if kind == EntryType::Directory {
            let dir = self.beneath.folder(parent)?;
            make_folder(dir, name)?;
            self.folders.push(FolderMeta {
                rel: rel.to_path_buf(),
                meta,
            });
            report.directories += 1;
            return Ok(());
        }
        let link = match kind {
            EntryType::Symlink | EntryType::Link => Some(
                entry
                    .link_name()
                    .ok()
                    .flatten()
                    .ok_or("link without a target")?
                    .into_owned(),
            ),
            _ => None,
        };
        // a hard link's source is resolved first: its handle must not borrow `beneath`
        let source = match (kind, &link) {
            (EntryType::Link, Some(link)) => Some(self.hard_link_source(link, rel)?),
            _ => None,
        };
        let dir = self.beneath.folder(parent)?;
        clear_the_way(dir, name)?;
        self.restored.remove(rel);
        let shown = self.target.join(rel);
        match (kind, link, source) {
            (EntryType::Symlink, Some(link), _) => {
                at::symlink(link.as_os_str(), dir, name)
                    .map_err(|e| format!("cannot create symlink: {e}"))?;
                if let Err(e) = at::chown_entry(dir, name, meta.uid, meta.gid) {
                    note_ownership(report, &shown, e);
                }
                let _ = at::set_entry_times(dir, name, meta.mtime);
                report.symlinks += 1;
            }
            (EntryType::Link, _, Some((from_dir, from))) => {
                at::hard_link(from_dir.as_fd(), &from, dir, name)
                    .map_err(|e| format!("cannot create hard link: {e}"))?;
                report.hard_links += 1;
            }
            _ => {
                let mut file = at::create_file(dir, name, 0o600)
                    .map_err(|e| format!("cannot create file: {e}"))?;
                report.bytes +=
                    io::copy(entry, &mut file).map_err(|e| format!("cannot write file: {e}"))?;
                apply_metadata(&file, &shown, meta, report);
                self.restored.insert(rel.to_path_buf());
                report.files += 1;
            }
        }
        Ok(())
    }

    /// The folder handle and name a hard link to `link` is made from, when `link` is a regular
    /// file restored by this run.
    fn hard_link_source(&mut self, link: &Path, rel: &Path) -> Result<(OwnedFd, OsString), String> {
        let link_rel = entry_path(link)?.ok_or("hard link to the target folder")?;
        if link_rel == rel {
            return Err("hard link to itself".into());
        }
        if !self.restored.contains(&link_rel) {
            return Err(format!(
                "hard link target {} is not a regular file restored by this archive",
                link_rel.display()
            ));
        }
        let (parent, name) = split(&link_rel)?;
        let dir = self.beneath.existing_folder(parent)?;
        Ok((dir, name.to_owned()))
    }

    /// Applies the folders' mode, owner and mtime, deepest first, so that writing into them is
    /// over and a read-only folder's mtime is not changed by its own children.
    fn finish_folders(mut self, report: &mut ExtractReport) {
        tracing::debug!(
            openat2 = self.beneath.uses_openat2(),
            "Entries written; applying folder metadata."
        );
        let mut folders = std::mem::take(&mut self.folders);
        folders.sort_by_key(|f| std::cmp::Reverse(f.rel.components().count()));
        for folder in folders {
            match self.beneath.folder_for_metadata(&folder.rel) {
                Ok(file) => {
                    apply_metadata(&file, &self.target.join(&folder.rel), folder.meta, report)
                }
                Err(reason) => tracing::debug!(
                    folder = %folder.rel.display(),
                    "Folder metadata not applied: {reason}."
                ),
            }
        }
    }
}

/// Creates folder `name` in `dir`, or accepts the folder already there.
fn make_folder(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), String> {
    match at::mkdir(dir, name, 0o700) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => match at::kind_of(dir, name) {
            Ok(Some(at::Kind::Folder)) => Ok(()),
            _ => Err("something that is not a folder is in the way".into()),
        },
        Err(e) => Err(format!("cannot create folder: {e}")),
    }
}

/// Removes a file or symlink where the entry goes (never what a symlink points at); a folder in
/// the way is refused.
fn clear_the_way(dir: BorrowedFd<'_>, name: &OsStr) -> Result<(), String> {
    match at::kind_of(dir, name) {
        Ok(Some(at::Kind::Folder)) => Err("a folder is in the way".into()),
        Ok(Some(_)) => {
            at::unlink(dir, name).map_err(|e| format!("cannot replace the existing entry: {e}"))
        }
        Ok(None) => Ok(()),
        Err(e) => Err(format!("cannot inspect what is there: {e}")),
    }
}

/// Owner, then mode (a change of owner clears set-id bits), then times, on an open handle.
fn apply_metadata(file: &File, path: &Path, meta: Meta, report: &mut ExtractReport) {
    if let Err(e) = std::os::unix::fs::fchown(file, meta.uid, meta.gid) {
        note_ownership(report, path, e);
    }
    let _ = file.set_permissions(fs::Permissions::from_mode(meta.mode));
    let time = filetime::FileTime::from_unix_time(meta.mtime, 0);
    let _ = filetime::set_file_handle_times(file, Some(time), Some(time));
}

fn note_ownership(report: &mut ExtractReport, path: &Path, e: io::Error) {
    if report.ownership_note.is_none() {
        report.ownership_note = Some(format!(
            "owners not restored (first at {}: {e}); run as root to keep them",
            path.display()
        ));
    }
}
