//! Names inside an open folder: the walk lists, stats and opens each entry relative to its
//! folder's descriptor, as tar does. A path from the root makes the kernel check every folder
//! on the way again; on ceph-fuse that is a round trip to the fuse daemon per component.

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// What a folder listing says an entry is (`Unknown` when the file system does not tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Folder,
    File,
    Symlink,
    Special(&'static str),
    Unknown,
}

impl Kind {
    fn of(file_type: FileType) -> Self {
        match file_type {
            FileType::Directory => Kind::Folder,
            FileType::RegularFile => Kind::File,
            FileType::Symlink => Kind::Symlink,
            FileType::Socket => Kind::Special("socket"),
            FileType::Fifo => Kind::Special("FIFO"),
            FileType::CharacterDevice | FileType::BlockDevice => Kind::Special("device node"),
            FileType::Unknown => Kind::Unknown,
        }
    }

    /// The kind of what `meta` (not following symlinks) describes.
    pub(super) fn of_meta(meta: &Metadata) -> Self {
        use std::os::unix::fs::PermissionsExt;
        Self::of(FileType::from_raw_mode(meta.permissions().mode()))
    }
}

/// What a regular file's lstat says (enough for the walk: read-ahead size and hard links).
pub(super) struct FileStat {
    pub size: u64,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
}

/// Opens the folder at `path` (following symlinks: the volume path may be one).
pub(super) fn open_root(path: &Path) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(rustix::fs::open(path, flags, Mode::empty())?.into())
}

/// Opens the folder `name` in `dir` for listing, never following a symlink put there.
pub(super) fn open_folder(dir: &File, name: &OsStr) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?.into())
}

/// Opens the file `name` in `dir` for reading, never following a symlink put there and not
/// blocking on a FIFO put there.
pub(super) fn open_file(dir: &File, name: &OsStr) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?.into())
}

/// lstat of `name` in `dir`, as the metadata the tar headers are made from (a path-only
/// handle, then its fstat: only links, folders that cannot be listed and names whose kind the
/// listing did not give need this).
pub(super) fn metadata(dir: &File, name: &OsStr) -> io::Result<Metadata> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let handle: File = rustix::fs::openat(dir, name, flags, Mode::empty())?.into();
    handle.metadata()
}

/// lstat of the regular file `name` in `dir`: its size and identity.
pub(super) fn file_stat(dir: &File, name: &OsStr) -> io::Result<(Kind, FileStat)> {
    let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let kind = Kind::of(FileType::from_raw_mode(stat.st_mode));
    Ok((
        kind,
        FileStat {
            size: stat.st_size as u64,
            nlink: stat.st_nlink as u64,
            dev: stat.st_dev,
            ino: stat.st_ino,
        },
    ))
}

/// The target of the symlink `name` in `dir`.
pub(super) fn read_link(dir: &File, name: &OsStr) -> io::Result<PathBuf> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(PathBuf::from(OsString::from_vec(target.into_bytes())))
}

/// A folder's entries: names and what the listing says they are.
pub(super) type Entries = Vec<(OsString, Kind)>;

/// The entries of `dir` (without `.` and `..`), unsorted, and the error that ended the
/// listing early, if one did.
pub(super) fn list(dir: &File) -> io::Result<(Entries, Option<io::Error>)> {
    // a second descriptor of the same folder: the listing moves its offset, which `dir`'s
    // *at calls do not use
    let mut stream = Dir::new(dir.try_clone()?)?;
    let mut entries = Vec::new();
    for entry in &mut stream {
        match entry {
            Ok(entry) => {
                let name = entry.file_name().to_bytes();
                if name != b"." && name != b".." {
                    let name = OsStr::from_bytes(name).to_os_string();
                    entries.push((name, Kind::of(entry.file_type())));
                }
            }
            Err(e) => return Ok((entries, Some(e.into()))),
        }
    }
    Ok((entries, None))
}
