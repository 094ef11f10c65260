//! Thin, safe wrappers over the `*at` system calls the restore writes with: each acts on one
//! name inside an open folder handle, and none follows a symlink at that name.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

/// Flags of every folder handle used to walk: a path-only handle that is never a symlink.
pub const WALK: libc::c_int = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// Flags of a folder handle whose mode, owner and times are set (`O_PATH` handles cannot be
/// used with `fchmod`).
pub const READ_FOLDER: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// What is at a name, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Folder,
    Symlink,
    Other,
}

fn c_string(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of a descriptor a call just returned.
fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: `fd` was returned open by the kernel to this call and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `openat(dir, name, flags)`; `flags` should hold `O_NOFOLLOW` (see [`WALK`], [`READ_FOLDER`]).
pub fn open(dir: BorrowedFd<'_>, name: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let name = c_string(name)?;
    // SAFETY: `name` is NUL-terminated and outlives the call; `dir` is an open descriptor.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, 0) };
    check(fd).map(owned)
}

/// `openat2(dir, path, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`: the kernel refuses any
/// symlink on the way (`ELOOP`) and any step out of `dir` (`EXDEV`), atomically. Fails with
/// `ENOSYS` before Linux 5.6 and, under some seccomp filters, with `EPERM`.
pub fn open_beneath(dir: BorrowedFd<'_>, path: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = c_string(path)?;
    // SAFETY: `open_how` is plain integers, for which all zeroes is valid (and means "none").
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
    // SAFETY: `path` is NUL-terminated and `how` a valid `open_how`; both outlive the call,
    // whose size argument is the size of `how`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    check(ret as libc::c_int).map(owned)
}

/// Creates the regular file `name` in `dir`, failing if anything (a symlink too) is there.
pub fn create_file(dir: BorrowedFd<'_>, name: &OsStr, mode: libc::mode_t) -> io::Result<File> {
    let name = c_string(name)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: as in `open`; `mode` is passed as the variadic argument O_CREAT needs.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags, mode as libc::c_uint) };
    check(fd).map(|fd| File::from(owned(fd)))
}

/// `mkdirat(dir, name, mode)`.
pub fn mkdir(dir: BorrowedFd<'_>, name: &OsStr, mode: libc::mode_t) -> io::Result<()> {
    let name = c_string(name)?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) }).map(drop)
}

/// `symlinkat(contents, dir, name)`: the symlink holds `contents` verbatim.
pub fn symlink(contents: &OsStr, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let (contents, name) = (c_string(contents)?, c_string(name)?);
    // SAFETY: both strings are NUL-terminated and outlive the call.
    check(unsafe { libc::symlinkat(contents.as_ptr(), dir.as_raw_fd(), name.as_ptr()) }).map(drop)
}

/// `linkat(from_dir, from, dir, name, 0)`: a hard link to `from` itself, never to what a
/// symlink there would point at.
pub fn hard_link(
    from_dir: BorrowedFd<'_>,
    from: &OsStr,
    dir: BorrowedFd<'_>,
    name: &OsStr,
) -> io::Result<()> {
    let (from, name) = (c_string(from)?, c_string(name)?);
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let ret = unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            0,
        )
    };
    check(ret).map(drop)
}

/// `unlinkat(dir, name, 0)`: removes a file or a symlink (never what it points at).
pub fn unlink(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let name = c_string(name)?;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
}

/// What is at `name` in `dir` (`fstatat` with `AT_SYMLINK_NOFOLLOW`), `None` when nothing is.
pub fn kind_of(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<Kind>> {
    let name = c_string(name)?;
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `name` is NUL-terminated; `stat` is writable memory of the right size.
    let ret = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            stat.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    match check(ret) {
        Ok(_) => {
            // SAFETY: fstatat succeeded, so it filled `stat`.
            let mode = unsafe { stat.assume_init() }.st_mode & libc::S_IFMT;
            Ok(Some(match mode {
                libc::S_IFDIR => Kind::Folder,
                libc::S_IFLNK => Kind::Symlink,
                _ => Kind::Other,
            }))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW)`: the owner of a symlink itself; `None`
/// leaves that id as it is.
pub fn chown_entry(
    dir: BorrowedFd<'_>,
    name: &OsStr,
    uid: Option<u32>,
    gid: Option<u32>,
) -> io::Result<()> {
    let name = c_string(name)?;
    let (uid, gid) = (uid.unwrap_or(u32::MAX), gid.unwrap_or(u32::MAX)); // -1: unchanged
                                                                         // SAFETY: `name` is NUL-terminated and outlives the call.
    let ret = unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(ret).map(drop)
}

/// `utimensat(dir, name, AT_SYMLINK_NOFOLLOW)`: sets access and modification time of a
/// symlink itself to `seconds`.
pub fn set_entry_times(dir: BorrowedFd<'_>, name: &OsStr, seconds: i64) -> io::Result<()> {
    let name = c_string(name)?;
    let time = libc::timespec {
        tv_sec: seconds as libc::time_t,
        tv_nsec: 0,
    };
    let times = [time, time];
    // SAFETY: `name` is NUL-terminated and `times` holds the two timespecs utimensat reads.
    let ret = unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    check(ret).map(drop)
}
