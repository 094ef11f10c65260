//! Whether this daemon can run a job on this host: the database job where the local Docker
//! engine runs `database.container`; the volume job where `volume.path` is there (and is a
//! mount point when `volume.require-mount`); the gateway and etcd jobs anywhere. A daemon
//! campaigns for a job's lease only while it is eligible, and checks again before each run.

use crate::config::Settings;
use crate::docker::DockerClient;
use crate::error_chain::error_chain;
use crate::store::JobKind;
use std::path::Path;

/// `Ok` when this host can run `job` now; otherwise why not (one line, for the log).
pub async fn check(job: JobKind, settings: &Settings) -> Result<(), String> {
    match job {
        JobKind::Database => {
            let container = &settings.database.container;
            DockerClient::from_env()
                .with_timeouts(&settings.timeouts)
                .running_container(container)
                .await
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "the local Docker engine runs no container {container}: {}",
                        error_chain(&e)
                    )
                })
        }
        JobKind::Volume => volume(&settings.volume.path, settings.volume.require_mount),
        JobKind::Gateway | JobKind::Etcd => Ok(()),
    }
}

/// The volume job's rule: the folder exists, and is a mount point when that is required.
fn volume(path: &Path, require_mount: bool) -> Result<(), String> {
    if !path.is_dir() {
        return Err(format!(
            "volume.path {} is not a folder here",
            path.display()
        ));
    }
    if require_mount && !is_mount_point(path) {
        return Err(format!(
            "volume.path {} is not a mount point here (volume.require-mount is set)",
            path.display()
        ));
    }
    Ok(())
}

/// Whether `path` is a mount point of this process's mount namespace (`/proc/self/mountinfo`,
/// so that bind mounts count, which share their device with the folder above them).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else {
        return false;
    };
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    mounts
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|mount_point| Path::new(&unescape(mount_point)) == path)
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_a_mount_point_and_a_plain_folder_is_not() {
        assert!(is_mount_point(Path::new("/")));
        assert!(is_mount_point(Path::new("/proc")));
        let tmp = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(tmp.path()));
        assert!(volume(tmp.path(), false).is_ok());
        let e = volume(tmp.path(), true).unwrap_err();
        assert!(
            e.contains("not a mount point") && e.contains("require-mount"),
            "{e}"
        );
        let e = volume(&tmp.path().join("missing"), false).unwrap_err();
        assert!(e.contains("not a folder"), "{e}");
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/mnt/with\040space"), "/mnt/with space");
        assert_eq!(unescape(r"/a\134b"), "/a\\b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
