//! Owner-only files and folders: backups hold a cluster's secrets, so everything the local
//! destination creates is `0600` (files) or `0700` (folders) whatever the process umask.
//!
//! The mode is given at creation (so the entry is never more open than that, even for an
//! instant) and then set again explicitly, because a umask can only remove bits: one that
//! removes the owner's own bits (`0277`) would otherwise leave files we cannot write.

use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every file the local destination writes.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every folder the local destination creates.
pub const DIR_MODE: u32 = 0o700;

/// Creates a new file (failing when `path` exists) readable and writable by its owner only.
pub fn create_new_file(path: &Path) -> io::Result<File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Creates one folder (failing when `path` exists) usable by its owner only.
pub fn create_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(DIR_MODE).create(path)?;
    fs::set_permissions(path, Permissions::from_mode(DIR_MODE))
}

/// Creates `path` and its missing parents, each owner-only; folders that exist already are
/// left as they are (the administrator may have chosen their modes).
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    match create_dir(path) {
        // another writer created it meanwhile (and sets its mode)
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn modes_are_owner_only_and_existing_folders_are_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), Permissions::from_mode(0o755)).unwrap();
        let deep = tmp.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        create_dir_all(&deep).unwrap();
        for dir in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&tmp.path().join(dir)), DIR_MODE, "{dir}");
        }
        assert_eq!(mode(tmp.path()), 0o755);
        let file = deep.join("f");
        create_new_file(&file).unwrap();
        assert_eq!(mode(&file), FILE_MODE);
        let again = create_new_file(&file).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            create_dir(&deep).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
    }
}
