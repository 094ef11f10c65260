//! Pure checks that keep archive entries inside the restore target.

use std::path::{Component, Path, PathBuf};

/// The entry's path relative to the target, or why it is refused. `Ok(None)` is the target
/// itself (`.` or `./`).
pub fn entry_path(path: &Path) -> Result<Option<PathBuf>, String> {
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("path contains `..`".into()),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path".into()),
        }
    }
    Ok((!clean.as_os_str().is_empty()).then_some(clean))
}

/// Checks that a symlink at `entry` (relative to the target) pointing at `target` stays inside
/// the target folder, judged lexically.
pub fn symlink_target(entry: &Path, target: &Path) -> Result<(), String> {
    if target.is_absolute() {
        return Err(format!(
            "symlink to absolute path {} would point outside the target",
            target.display()
        ));
    }
    let mut depth = entry.components().count() as i64 - 1;
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return Err(format!(
                "symlink target {} leaves the target folder",
                target.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_stay_inside() {
        assert_eq!(
            entry_path(Path::new("./a/b")).unwrap(),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(entry_path(Path::new("./")).unwrap(), None);
        assert!(entry_path(Path::new("../x")).is_err());
        assert!(entry_path(Path::new("a/../../x")).is_err());
        assert!(entry_path(Path::new("/etc/passwd"))
            .unwrap_err()
            .contains("absolute"));
    }

    #[test]
    fn symlink_targets_must_not_escape() {
        assert!(symlink_target(Path::new("a/link"), Path::new("../b")).is_ok());
        assert!(symlink_target(Path::new("a/link"), Path::new("c/../../b")).is_ok());
        assert!(symlink_target(Path::new("a/link"), Path::new("../../b")).is_err());
        assert!(symlink_target(Path::new("link"), Path::new("/etc")).is_err());
        assert!(symlink_target(Path::new("link"), Path::new("..")).is_err());
    }
}
