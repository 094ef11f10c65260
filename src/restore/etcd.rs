//! Restore of an `etcd` set: the exported keys written back into a (new) cluster's etcd,
//! except, by default, what a new cluster makes itself or what expires.
//!
//! Values are written but never printed: the plan lists keys only.

use crate::config::EtcdSettings;
use crate::etcd::{EtcdClient, EtcdError, Node};
use crate::io_util::HashingReader;
use crate::jobs::etcd_keys::{Export, ExportedKey, ETCD_ARTIFACT};
use crate::runtime::block_on;
use crate::store::{Destination, Manifest, SetRef, StoreError};
use std::collections::HashMap;

/// What `restore --only etcd` skips by default, and why (also shown by `restore --help`).
pub const SKIP_RULES: &str = "\
etcd restore skips by default (--include-all writes them too):
  keys with a TTL            published by running components; they would expire anyway
  PREFIX/services/           service registrations the new cluster's units publish themselves
  PREFIX/store/              the new store writes its own keys and gateway credentials
  PREFIX/database/initId     identifies the database cluster the new one creates
  PREFIX/platform/domain     the new cluster's domain, set by its operator
  PREFIX/backup/{leader,trigger,status}  deis-backup's own daemon state";

/// Why an etcd restore failed. Never quotes a value.
#[derive(Debug, thiserror::Error)]
pub enum EtcdRestoreError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("set {set} has no artifact {ETCD_ARTIFACT} in its manifest")]
    NotInManifest { set: SetRef },
    #[error("cannot read {ETCD_ARTIFACT} of {set}: {detail}")]
    Artifact { set: SetRef, detail: String },
    #[error(
        "{ETCD_ARTIFACT} of {set} does not match its manifest ({detail}); nothing was written"
    )]
    Corrupt { set: SetRef, detail: String },
    #[error("{ETCD_ARTIFACT} of {set} holds key {key:?}, outside its prefix {prefix}; nothing was written")]
    OutsidePrefix {
        set: SetRef,
        key: String,
        prefix: String,
    },
    #[error("cannot write key {key} to the target etcd ({written} keys were written before it)")]
    Write {
        key: String,
        written: usize,
        #[source]
        source: Box<EtcdError>,
    },
    #[error("cannot connect to the target etcd")]
    Connect(#[source] EtcdError),
    #[error("cannot read the target etcd's keys to compare them with the export")]
    ReadTarget(#[source] EtcdError),
    #[error("{ETCD_ARTIFACT} of {set} holds key {key} with a value that is not valid base64; nothing was written")]
    BadValue { set: SetRef, key: String },
}

/// Which keys would be written and which skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EtcdRestorePlan {
    /// Keys to write: absent at the target (all of them before [`compare_with_target`]).
    pub write: Vec<ExportedKey>,
    /// Key and the reason it is skipped.
    pub skip: Vec<(String, &'static str)>,
    /// Keys the target holds with the same value: left alone.
    pub identical: Vec<String>,
    /// Keys the target holds with another value: written only with `--force`.
    pub overwrite: Vec<ExportedKey>,
}

/// What a restore did (or, in a dry run, would do).
#[derive(Debug, Clone)]
pub struct EtcdRestoreReport {
    pub plan: EtcdRestorePlan,
    /// `v2` or `v3`: the target's API (`None` when no target was asked: a dry run without one).
    pub target_api: Option<String>,
    pub written: usize,
    pub dry_run: bool,
    /// Keys exist with other values and `--force` was not given: nothing was written.
    pub refused: bool,
}

/// What the operator asked of an etcd restore.
#[derive(Debug, Clone, Copy, Default)]
pub struct EtcdRestoreMode {
    /// Compare and report, write nothing.
    pub dry_run: bool,
    /// Also write the keys skipped by default.
    pub include_all: bool,
    /// Overwrite keys that hold other values.
    pub force: bool,
}

/// Why a key is not restored by default, or `None` to restore it (pure).
pub fn skip_reason(prefix: &str, key: &ExportedKey) -> Option<&'static str> {
    let root = prefix.trim_end_matches('/');
    let rel = key.key.strip_prefix(root).unwrap_or(&key.key);
    let rel = rel.trim_start_matches('/');
    let under = |dir: &str| rel == dir || rel.starts_with(&format!("{dir}/"));
    if key.ttl.is_some() {
        Some("has a TTL (published by a running component)")
    } else if under("services") {
        Some("service registration (published by the new cluster)")
    } else if under("store") {
        Some("store key (the new store writes its own)")
    } else if rel == "database/initId" {
        Some("database cluster identity (the new database makes its own)")
    } else if rel == "platform/domain" {
        Some("platform domain (set for the new cluster by its operator)")
    } else if under("backup/leader") || under("backup/trigger") || under("backup/status") {
        Some("deis-backup daemon state")
    } else if key.key == root || rel.is_empty() {
        Some("the keyspace root")
    } else {
        None
    }
}

/// Splits the export into keys to write and keys to skip (pure).
pub fn plan(export: &Export, include_all: bool) -> EtcdRestorePlan {
    let mut plan = EtcdRestorePlan::default();
    for key in &export.keys {
        match skip_reason(&export.prefix, key) {
            Some(reason) if !include_all || reason == "the keyspace root" => {
                plan.skip.push((key.key.clone(), reason))
            }
            _ => plan.write.push(key.clone()),
        }
    }
    plan
}

/// Sorts the plan's keys by what the target holds (`existing`: the target's keys under the
/// export's prefix): absent ones stay to write, equal ones are left alone, others are
/// overwrites (pure). A folder equals a folder; a folder and a value always differ.
pub fn compare_with_target(plan: &mut EtcdRestorePlan, existing: &[Node]) {
    let there: HashMap<&str, &Node> = existing.iter().map(|n| (n.key.as_str(), n)).collect();
    for key in std::mem::take(&mut plan.write) {
        match there.get(key.key.as_str()) {
            None => plan.write.push(key),
            Some(node) if node.dir && key.dir => plan.identical.push(key.key),
            Some(node)
                if !node.dir && !key.dir && key.value_bytes().as_ref() == Some(&node.value) =>
            {
                plan.identical.push(key.key)
            }
            Some(_) => plan.overwrite.push(key),
        }
    }
}

/// Up to `n` key names, for a message (values never).
pub fn some_keys(keys: &[ExportedKey], n: usize) -> String {
    let mut named: Vec<&str> = keys.iter().take(n).map(|k| k.key.as_str()).collect();
    if keys.len() > n {
        named.push("...");
    }
    named.join(", ")
}

/// The first key of `export` that is not the prefix or under it (pure).
pub fn outside_prefix(export: &Export) -> Option<&str> {
    let root = export.prefix.trim_end_matches('/');
    let under = format!("{root}/");
    export
        .keys
        .iter()
        .map(|k| k.key.as_str())
        .find(|k| *k != root && !k.starts_with(&under))
}

/// Reads and checks the export of a set (size and sha256 against the manifest).
pub fn read_export(
    dest: &dyn Destination,
    manifest: &Manifest,
) -> Result<Export, EtcdRestoreError> {
    let set = manifest.set_ref();
    let artifact = manifest
        .artifact(ETCD_ARTIFACT)
        .ok_or_else(|| EtcdRestoreError::NotInManifest { set: set.clone() })?;
    let mut hashing = HashingReader::new(dest.open_artifact(&set, ETCD_ARTIFACT)?);
    let bad = |detail: String| EtcdRestoreError::Artifact {
        set: set.clone(),
        detail,
    };
    let decoder = zstd::stream::read::Decoder::new(&mut hashing).map_err(|e| bad(e.to_string()))?;
    let export: Export = serde_json::from_reader(decoder).map_err(|e| {
        bad(format!(
            "not an etcd export (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let (size, sha256) = hashing.finish().map_err(|e| bad(e.to_string()))?;
    artifact
        .check_read(size, &sha256)
        .map_err(|detail| EtcdRestoreError::Corrupt { set, detail })?;
    Ok(export)
}

/// Restores an `etcd` set into the etcd of `target`. The target's keys are read and compared
/// first; keys holding other values make the step refuse (writing nothing) unless
/// `mode.force`. A dry run compares when a target is configured and writes nothing.
pub fn restore_etcd(
    dest: &dyn Destination,
    manifest: &Manifest,
    target: &EtcdSettings,
    mode: EtcdRestoreMode,
) -> Result<EtcdRestoreReport, EtcdRestoreError> {
    let export = read_export(dest, manifest)?;
    if let Some(key) = outside_prefix(&export) {
        return Err(EtcdRestoreError::OutsidePrefix {
            set: manifest.set_ref(),
            key: key.to_string(),
            prefix: export.prefix.clone(),
        });
    }
    let mut plan = plan(&export, mode.include_all);
    if let Some(key) = plan.write.iter().find(|k| k.value_bytes().is_none()) {
        return Err(EtcdRestoreError::BadValue {
            set: manifest.set_ref(),
            key: key.key.clone(),
        });
    }
    let mut report = EtcdRestoreReport {
        plan: EtcdRestorePlan::default(),
        target_api: None,
        written: 0,
        dry_run: mode.dry_run,
        refused: false,
    };
    if mode.dry_run && target.endpoints.is_empty() {
        report.plan = plan;
        return Ok(report);
    }
    block_on(async {
        let client = EtcdClient::connect(target)
            .await
            .map_err(EtcdRestoreError::Connect)?;
        report.target_api = Some(client.api().to_string());
        let existing = client
            .get_prefix(&export.prefix)
            .await
            .map_err(EtcdRestoreError::ReadTarget)?;
        compare_with_target(&mut plan, &existing.nodes);
        report.refused = !mode.force && !plan.overwrite.is_empty();
        if report.refused || mode.dry_run {
            return Ok(());
        }
        for key in plan.write.iter().chain(&plan.overwrite) {
            let result = if key.dir {
                client.make_dir(&key.key).await
            } else {
                let value = key.value_bytes().unwrap_or_default();
                client.put(&key.key, &value, key.ttl).await
            };
            result.map_err(|source| EtcdRestoreError::Write {
                key: key.key.clone(),
                written: report.written,
                source: Box::new(source),
            })?;
            report.written += 1;
        }
        Ok::<_, EtcdRestoreError>(())
    })?;
    report.plan = plan;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn key(k: &str, ttl: Option<i64>) -> ExportedKey {
        ExportedKey {
            key: k.into(),
            value: Some("v".into()),
            value_base64: None,
            ttl,
            dir: false,
            ephemeral: ttl.is_some(),
        }
    }

    #[test]
    fn a_key_outside_the_prefix_is_found() {
        let mut export = Export {
            format: 1,
            api: "v2".into(),
            prefix: "/deis".into(),
            index: 1,
            exported_at: Utc::now(),
            keys: vec![key("/deis", None), key("/deis/platform/domain", None)],
        };
        assert_eq!(outside_prefix(&export), None);
        export.keys.push(key("/_coreos.com/fleet/job/x", None));
        export.keys.push(key("/deisevil/x", None));
        assert_eq!(outside_prefix(&export), Some("/_coreos.com/fleet/job/x"));
    }

    #[test]
    fn default_plan_skips_what_a_new_cluster_makes_itself() {
        let export = Export {
            format: 1,
            api: "v2".into(),
            prefix: "/deis".into(),
            index: 1,
            exported_at: Utc::now(),
            keys: vec![
                key("/deis", None),
                key("/deis/controller/registrationMode", None),
                key("/deis/router/hosts/x", Some(30)),
                key("/deis/services/app/a", None),
                key("/deis/store/gateway/secretKey", None),
                key("/deis/database/initId", None),
                key("/deis/database/bucketName", None),
                key("/deis/platform/domain", None),
                key("/deis/platform/sshPrivateKey", None),
                key("/deis/backup/leader", None),
                key("/deis/backup/schedule/volume", None),
                key("/deis/storeroom", None),
            ],
        };
        let p = plan(&export, false);
        let written: Vec<_> = p.write.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(
            written,
            [
                "/deis/controller/registrationMode",
                "/deis/database/bucketName",
                "/deis/platform/sshPrivateKey",
                "/deis/backup/schedule/volume",
                "/deis/storeroom"
            ]
        );
        assert_eq!(p.skip.len(), 7);
        let all = plan(&export, true);
        assert_eq!(all.write.len(), 11, "everything but the root");
    }

    #[test]
    fn keys_are_compared_with_what_the_target_holds() {
        let mut dir = key("/deis/apps", None);
        dir.dir = true;
        dir.value = None;
        let mut plan = EtcdRestorePlan {
            write: vec![
                key("/deis/a", None),
                key("/deis/b", None),
                key("/deis/c", None),
                dir.clone(),
            ],
            ..Default::default()
        };
        let node = |k: &str, v: &[u8], dir: bool| Node {
            key: k.into(),
            value: v.to_vec(),
            ttl: None,
            dir,
        };
        let existing = [
            node("/deis/b", b"v", false),
            node("/deis/c", b"other", false),
            node("/deis/apps", b"", true),
            node("/deis/zzz", b"left alone", false),
        ];
        compare_with_target(&mut plan, &existing);
        let names = |keys: &[ExportedKey]| keys.iter().map(|k| k.key.clone()).collect::<Vec<_>>();
        assert_eq!(names(&plan.write), ["/deis/a"]);
        assert_eq!(plan.identical, ["/deis/b", "/deis/apps"]);
        assert_eq!(names(&plan.overwrite), ["/deis/c"]);
        assert_eq!(some_keys(&plan.overwrite, 0), "...");

        let mut dir_over_value = EtcdRestorePlan {
            write: vec![dir],
            ..Default::default()
        };
        compare_with_target(&mut dir_over_value, &[node("/deis/apps", b"x", false)]);
        assert_eq!(dir_over_value.overwrite.len(), 1);
    }
}
