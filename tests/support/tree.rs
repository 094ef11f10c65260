//! What a volume restore must give back about each path of a tree, read without following
//! links, so that two trees (a source and its restore) compare with one `assert_eq!`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One path: kind, mode, owner, mtime, and the file's bytes or the symlink's target. A
/// folder's size is left out: CephFS reports the bytes below it, a local disk its own blocks.
#[derive(Debug, PartialEq)]
pub struct TreeEntry {
    pub kind: &'static str,
    /// 0 for a symlink: its mode is always 0777 on Linux, and not restorable.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    /// File content, or symlink target.
    pub content: Vec<u8>,
}

/// Every path under `root` (the root itself as ""), by its path relative to `root`.
pub fn snapshot_tree(root: &Path) -> BTreeMap<String, TreeEntry> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(path) = todo.pop() {
        let meta = fs::symlink_metadata(&path).unwrap();
        let kind = meta.file_type();
        let (kind, content) = if kind.is_symlink() {
            let target = fs::read_link(&path).unwrap();
            ("symlink", target.into_os_string().into_encoded_bytes())
        } else if kind.is_dir() {
            todo.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            ("dir", Vec::new())
        } else {
            ("file", fs::read(&path).unwrap())
        };
        let mode = if kind == "symlink" {
            0
        } else {
            meta.mode() & 0o7777
        };
        out.insert(
            path.strip_prefix(root).unwrap().display().to_string(),
            TreeEntry {
                kind,
                mode,
                uid: meta.uid(),
                gid: meta.gid(),
                mtime: meta.mtime(),
                content,
            },
        );
    }
    out
}
