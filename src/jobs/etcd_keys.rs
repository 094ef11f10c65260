//! The `etcd` job: the Deis keyspace (`etcd.prefix`, default `/deis`) exported through either
//! etcd API as one zstd-compressed JSON document, `etcd.json.zst`.
//!
//! Values are in the artifact (it must be restorable, and some are credentials) but never in
//! a log line, an error or the manifest. Keys a new cluster makes itself or that expire are
//! marked `ephemeral` so that restore can skip them.

use super::{Backup, Job, JobError, Run};
use crate::etcd::{EtcdClient, EtcdError, Listing, Node};
use crate::runtime::block_on;
use crate::store::JobKind;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;

/// The artifact of the `etcd` job.
pub const ETCD_ARTIFACT: &str = "etcd.json.zst";

/// Version of the export document.
pub const EXPORT_FORMAT: u32 = 1;

/// Why an etcd backup failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdJobError {
    #[error("cannot read the keyspace {prefix} from etcd")]
    Read {
        prefix: String,
        #[source]
        source: EtcdError,
    },
    #[error("cannot write the export of {prefix} to the destination")]
    Write {
        prefix: String,
        #[source]
        source: std::io::Error,
    },
}

/// The exported keyspace (the JSON inside `etcd.json.zst`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Export {
    pub format: u32,
    /// `v2` or `v3`: the API it was read through.
    pub api: String,
    pub prefix: String,
    /// The store index (v2) or revision (v3) the keys are from.
    pub index: u64,
    pub exported_at: DateTime<Utc>,
    pub keys: Vec<ExportedKey>,
}

/// One key of the export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedKey {
    pub key: String,
    /// The value as text, when it is UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value in base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
    /// Seconds it had left to live when exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    #[serde(default)]
    pub dir: bool,
    /// Made by a running cluster and short-lived (TTL'd keys, `PREFIX/services/`).
    #[serde(default)]
    pub ephemeral: bool,
}

impl ExportedKey {
    /// The value's bytes (`None` when the base64 is damaged).
    pub fn value_bytes(&self) -> Option<Vec<u8>> {
        match (&self.value, &self.value_base64) {
            (Some(text), _) => Some(text.clone().into_bytes()),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD.decode(b64).ok(),
            (None, None) => Some(Vec::new()),
        }
    }
}

/// Builds the export document from a listing (pure).
pub fn export_of(listing: Listing, api: &str, prefix: &str, now: DateTime<Utc>) -> Export {
    let services = format!("{}/services/", prefix.trim_end_matches('/'));
    let keys = listing
        .nodes
        .into_iter()
        .map(
            |Node {
                 key,
                 value,
                 ttl,
                 dir,
             }| {
                let ephemeral = ttl.is_some() || key.starts_with(&services);
                let (value, value_base64) = match String::from_utf8(value) {
                    Ok(text) if dir && text.is_empty() => (None, None),
                    Ok(text) => (Some(text), None),
                    Err(e) => (
                        None,
                        Some(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
                    ),
                };
                ExportedKey {
                    key,
                    value,
                    value_base64,
                    ttl,
                    dir,
                    ephemeral,
                }
            },
        )
        .collect();
    Export {
        format: EXPORT_FORMAT,
        api: api.into(),
        prefix: prefix.into(),
        index: listing.index,
        exported_at: now,
        keys,
    }
}

/// Exports the Deis keyspace (`etcd.prefix`).
pub struct EtcdJob;

impl Job for EtcdJob {
    fn kind(&self) -> JobKind {
        JobKind::Etcd
    }

    fn restore_step(&self) -> crate::restore::RestoreStep {
        crate::restore::steps::etcd
    }

    fn backup(&self, run: &mut Run<'_>) -> Result<Backup, JobError> {
        run_etcd(run)
    }
}

/// Exports the keyspace into the run's set.
fn run_etcd(run: &mut Run<'_>) -> Result<Backup, JobError> {
    let settings = run.settings;
    let dest = run.dest;
    let started_at = run.started_at;
    let prefix = settings.etcd.prefix.clone();
    tracing::info!(prefix = %prefix, destination = %dest.describe(), "etcd backup started.");

    let read_err = |source| EtcdJobError::Read {
        prefix: prefix.clone(),
        source,
    };
    let (api, listing) = block_on(async {
        let client = EtcdClient::connect_with(&settings.etcd, &settings.timeouts).await?;
        let listing = client.get_prefix(&prefix).await?;
        Ok::<_, EtcdError>((client.api(), listing))
    })
    .map_err(read_err)?;
    let export = export_of(listing, &api.to_string(), &prefix, started_at);
    let ephemeral = export.keys.iter().filter(|k| k.ephemeral).count();

    let mut compressed = run.start_artifact(ETCD_ARTIFACT)?;
    let write_err = |source| EtcdJobError::Write {
        prefix: prefix.clone(),
        source,
    };
    serde_json::to_writer(&mut compressed, &export)
        .map_err(std::io::Error::from)
        .and_then(|_| compressed.write_all(b"\n"))
        .map_err(write_err)?;
    let artifact = compressed
        .finish("json")
        .map_err(|source| JobError::Finish {
            artifact: ETCD_ARTIFACT,
            source,
        })?;

    let source = serde_json::json!({
        "kind": "etcd",
        "api": export.api,
        "prefix": prefix,
        "endpoints": settings.etcd.endpoints,
        "index": export.index,
    });
    let stats = serde_json::json!({ "keys": export.keys.len(), "ephemeral_keys": ephemeral });
    tracing::info!(
        keys = export.keys.len(),
        ephemeral,
        api = %export.api,
        bytes_written = artifact.size,
        "etcd export written."
    );
    Ok(Backup {
        source,
        artifacts: vec![artifact],
        warnings: Vec::new(),
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(key: &str, value: &[u8], ttl: Option<i64>, dir: bool) -> Node {
        Node {
            key: key.into(),
            value: value.to_vec(),
            ttl,
            dir,
        }
    }

    #[test]
    fn export_marks_ephemeral_keys_and_keeps_binary_values() {
        let listing = Listing {
            nodes: vec![
                node("/deis", b"", None, true),
                node("/deis/platform/domain", b"example.com", None, false),
                node("/deis/services/app/x", b"10.0.0.1:5000", None, false),
                node("/deis/router/hosts/a", b"1.2.3.4", Some(20), false),
                node("/deis/bin", b"\xff\x00", None, false),
            ],
            index: 42,
        };
        let export = export_of(listing, "v2", "/deis", Utc::now());
        let flags: Vec<_> = export.keys.iter().map(|k| (k.dir, k.ephemeral)).collect();
        assert_eq!(
            flags,
            [
                (true, false),
                (false, false),
                (false, true),
                (false, true),
                (false, false)
            ]
        );
        assert_eq!(export.keys[0].value, None);
        assert_eq!(export.keys[4].value, None);
        assert_eq!(export.keys[4].value_bytes().unwrap(), b"\xff\x00");
        let json = serde_json::to_string(&export).unwrap();
        let back: Export = serde_json::from_str(&json).unwrap();
        assert_eq!(back, export);
        assert_eq!(back.index, 42);
    }
}
