//! Folder handles beneath the restore target, resolved without ever following a symlink:
//! `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it, a walk of
//! `openat(O_DIRECTORY | O_NOFOLLOW)` one component at a time otherwise. Entries are then
//! created relative to these handles, so nothing a symlink in the target points at (placed by
//! the archive or by anyone else, before or during the restore) is ever written.

use super::at;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// How folders are resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2` while the kernel offers it (Linux >= 5.6, not hidden by seccomp), else the walk.
    Auto,
    /// Always the per-component walk: what kernels without `openat2` get, forced by tests.
    #[cfg(test)]
    Walk,
}

/// The restore target, opened once, and the folder handles resolved beneath it.
pub struct Beneath {
    root: OwnedFd,
    use_openat2: bool,
    /// The last folder resolved for an entry: archives list a folder's entries together.
    last: Option<(PathBuf, OwnedFd)>,
}

impl Beneath {
    /// Opens `target` (the operator's path, which may itself go through symlinks) as the root
    /// of every later resolution.
    pub fn open(target: &Path, resolver: Resolver) -> io::Result<Self> {
        let root = File::options()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
            .open(target)?;
        Ok(Self {
            root: root.into(),
            use_openat2: resolver == Resolver::Auto,
            last: None,
        })
    }

    /// Whether `openat2` is in use (false once the kernel has refused it).
    pub fn uses_openat2(&self) -> bool {
        self.use_openat2
    }

    /// A handle on folder `rel` (the target itself when empty) to create entries in; missing
    /// folders on the way are created. Refused, with the reason, when a symlink or something
    /// that is not a folder is on the way.
    pub fn folder(&mut self, rel: &Path) -> Result<BorrowedFd<'_>, String> {
        if rel.as_os_str().is_empty() {
            return Ok(self.root.as_fd());
        }
        if self.last.as_ref().is_none_or(|(path, _)| path != rel) {
            let fd = self.resolve(rel, at::WALK, true)?;
            self.last = Some((rel.to_path_buf(), fd));
        }
        Ok(self.last.as_ref().expect("just resolved").1.as_fd())
    }

    /// A handle on the existing folder `rel`, never creating anything.
    pub fn existing_folder(&mut self, rel: &Path) -> Result<OwnedFd, String> {
        self.resolve(rel, at::WALK, false)
    }

    /// Folder `rel` itself (the target when empty) opened for setting its mode, owner and times.
    pub fn folder_for_metadata(&mut self, rel: &Path) -> Result<File, String> {
        self.resolve(rel, at::READ_FOLDER, false).map(File::from)
    }

    fn resolve(&mut self, rel: &Path, flags: libc::c_int, create: bool) -> Result<OwnedFd, String> {
        if rel.as_os_str().is_empty() {
            return at::open(self.root.as_fd(), OsStr::new("."), flags)
                .map_err(|e| format!("cannot open the target folder: {e}"));
        }
        if self.use_openat2 {
            match at::open_beneath(self.root.as_fd(), rel.as_os_str(), flags) {
                Ok(fd) => return Ok(fd),
                Err(e) if openat2_unavailable(&e) => {
                    tracing::debug!(
                        error = %e,
                        "openat2 is not available; resolving folders one component at a time."
                    );
                    self.use_openat2 = false;
                }
                // a missing folder, a symlink, a file: the walk creates the one or names the other
                Err(_) => {}
            }
        }
        self.walk(rel, flags, create)
    }

    /// Opens `rel` one component at a time with `O_NOFOLLOW`, each relative to the last.
    fn walk(&self, rel: &Path, flags: libc::c_int, create: bool) -> Result<OwnedFd, String> {
        let names: Vec<&OsStr> = rel
            .components()
            .map(|c| match c {
                Component::Normal(name) => Ok(name),
                _ => Err(format!("{} is not a plain relative path", rel.display())),
            })
            .collect::<Result<_, _>>()?;
        let mut current: Option<OwnedFd> = None;
        let mut shown = PathBuf::new();
        for (i, name) in names.iter().enumerate() {
            let dir = current.as_ref().map_or(self.root.as_fd(), |fd| fd.as_fd());
            let flags = if i + 1 == names.len() {
                flags
            } else {
                at::WALK
            };
            shown.push(name);
            let opened = match at::open(dir, name, flags) {
                Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {
                    match at::mkdir(dir, name, 0o777) {
                        Err(e) if e.raw_os_error() != Some(libc::EEXIST) => {
                            return Err(format!("cannot create folder {}: {e}", shown.display()))
                        }
                        _ => at::open(dir, name, flags),
                    }
                }
                other => other,
            };
            current = Some(opened.map_err(|e| not_a_folder(dir, name, &shown, e))?);
        }
        current.ok_or_else(|| "empty path".to_string())
    }
}

/// Why `name` in `dir` could not be opened as a folder, naming a symlink as such.
fn not_a_folder(dir: BorrowedFd<'_>, name: &OsStr, shown: &Path, e: io::Error) -> String {
    match at::kind_of(dir, name) {
        Ok(Some(at::Kind::Symlink)) => {
            format!(
                "its folder {} is a symlink (never followed)",
                shown.display()
            )
        }
        Ok(Some(at::Kind::Other)) => format!("{} is not a folder", shown.display()),
        _ => format!("cannot open folder {}: {e}", shown.display()),
    }
}

/// Whether `openat2` failed because this kernel (or a seccomp filter) does not offer it.
fn openat2_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EPERM | libc::E2BIG | libc::EINVAL)
    )
}
