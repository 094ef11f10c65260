//! The manifest of a backup set: written last, it is what makes a set complete.

use super::{JobKind, RunId, SetRef};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Version of the manifest format written by this build.
pub const FORMAT_VERSION: u32 = 1;

/// The file name of the manifest inside a set's folder.
pub const MANIFEST_NAME: &str = "manifest.json";

/// Everything known about one complete backup set. Holds no secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub job: JobKind,
    pub run_id: RunId,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub host: String,
    pub tool: ToolInfo,
    /// What was backed up, e.g. `{"kind": "volume", "path": "/var/lib/deis/store"}`.
    pub source: serde_json::Value,
    pub artifacts: Vec<Artifact>,
    #[serde(default)]
    pub warnings: Vec<Warning>,
    /// Job-specific counters (files, bytes read, ...).
    #[serde(default)]
    pub stats: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

impl ToolInfo {
    pub fn this_build() -> Self {
        Self {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// One file of a set, as stored at the destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub name: String,
    /// Bytes stored (after compression).
    pub size: u64,
    /// sha256 of the stored bytes, hex.
    pub sha256: String,
    /// `zstd` or `none`.
    pub compression: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<i32>,
    /// Bytes before compression.
    pub uncompressed_size: u64,
    /// What the uncompressed bytes are: `tar`, `sql`, `json`.
    pub content: String,
}

/// Something the run noticed but that did not fail it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// Path (relative to the source) or object key the warning is about.
    pub path: String,
    pub kind: WarningKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// Size or mtime changed while the file was read; stored with its length at open.
    ChangedDuringRead,
    /// The file shrank while read; the missing tail is stored as zeros.
    TruncatedDuringRead,
    /// Listed, then gone before it could be read.
    Vanished,
    /// Could not be opened or read (permissions, I/O error).
    Unreadable,
    /// A socket, FIFO or device node: not something a backup can carry.
    SkippedSpecialFile,
}

/// A name that stays inside the folder it is joined to: no separator, not `.`/`..`, not
/// hidden (our temp files are), no NUL, not empty.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.len() <= 255
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        bytes.push(b'\n');
        bytes
    }

    /// Parses a manifest, refusing formats newer than this build understands.
    pub fn from_json(bytes: &[u8]) -> Result<Self, String> {
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        for artifact in &manifest.artifacts {
            if !is_plain_file_name(&artifact.name) {
                return Err(format!(
                    "artifact name {:?} is not a plain file name (a manifest may name only files of its own set)",
                    artifact.name
                ));
            }
        }
        if manifest.format_version > FORMAT_VERSION {
            return Err(format!(
                "manifest format {} is newer than this deis-backup understands ({FORMAT_VERSION})",
                manifest.format_version
            ));
        }
        Ok(manifest)
    }

    /// Total stored bytes of all artifacts.
    pub fn stored_bytes(&self) -> u64 {
        self.artifacts.iter().map(|a| a.size).sum()
    }

    pub fn artifact(&self, name: &str) -> Option<&Artifact> {
        self.artifacts.iter().find(|a| a.name == name)
    }

    /// The set this manifest completes.
    pub fn set_ref(&self) -> SetRef {
        SetRef {
            job: self.job,
            run_id: self.run_id.clone(),
        }
    }
}

impl Artifact {
    /// Compares what was read of the artifact with what the manifest records; the error says
    /// both.
    pub fn check_read(&self, size: u64, sha256: &str) -> Result<(), String> {
        if size == self.size && sha256 == self.sha256 {
            return Ok(());
        }
        Err(format!(
            "read {size} bytes with sha256 {sha256}, manifest says {} bytes with {}",
            self.size, self.sha256
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            job: JobKind::Volume,
            run_id: "20261125T034500Z-abcdef".parse().unwrap(),
            started_at: Utc::now(),
            finished_at: Utc::now(),
            host: "node-1".into(),
            tool: ToolInfo::this_build(),
            source: serde_json::json!({"kind": "volume", "path": "/var/lib/deis/store"}),
            artifacts: vec![Artifact {
                name: "store.tar.zst".into(),
                size: 10,
                sha256: "00".repeat(32),
                compression: "zstd".into(),
                compression_level: Some(3),
                uncompressed_size: 20,
                content: "tar".into(),
            }],
            warnings: vec![Warning {
                path: "logs/a.log".into(),
                kind: WarningKind::ChangedDuringRead,
                detail: "grew".into(),
            }],
            stats: Default::default(),
        }
    }

    #[test]
    fn manifest_round_trips_through_json() {
        let m = sample();
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
        assert!(String::from_utf8(m.to_json())
            .unwrap()
            .contains("\"changed_during_read\""));
    }

    #[test]
    fn a_manifest_naming_a_path_outside_its_set_is_refused() {
        for name in ["../../x", "/etc/passwd", "..", "a/b", ".hidden", ""] {
            let mut m = sample();
            m.artifacts[0].name = name.into();
            let e = Manifest::from_json(&m.to_json()).unwrap_err();
            assert!(e.contains("not a plain file name"), "{name}: {e}");
        }
    }

    #[test]
    fn truncated_or_future_manifests_are_refused() {
        let json = sample().to_json();
        assert!(Manifest::from_json(&json[..json.len() / 2]).is_err());
        let mut future = sample();
        future.format_version = FORMAT_VERSION + 1;
        assert!(Manifest::from_json(&future.to_json())
            .unwrap_err()
            .contains("newer"));
    }
}
