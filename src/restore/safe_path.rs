//! Pure checks that keep archive entry paths inside the restore target (symlink targets are
//! data: they are restored verbatim and never followed, see `extract`).

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
}
