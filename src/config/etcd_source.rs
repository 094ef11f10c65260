//! Configuration from etcd: our keys under `PREFIX/backup/` (camelCase twins of the TOML keys)
//! and Deis's own keys (gateway credentials and address, bucket names), mapped to config keys.
//!
//! Pure: takes the keys and values read from etcd, gives an [`EtcdLayer`] for the loader.

use super::secret::REDACTED;
use std::fmt;

/// Keys under `PREFIX/backup/` that are not configuration (daemon state), so never warned about.
const STATE_KEYS: [&str; 4] = ["leader", "leader/", "trigger/", "status/"];

/// Etcd keys of Deis itself that feed the configuration, relative to the prefix.
pub const DEIS_GATEWAY_KEYS: [&str; 4] = [
    "store/gateway/accessKey",
    "store/gateway/secretKey",
    "store/gateway/host",
    "store/gateway/port",
];
/// Deis's bucket-name keys, relative to the prefix, in the order their buckets are listed.
pub const DEIS_BUCKET_KEYS: [&str; 2] = ["database/bucketName", "registry/bucketName"];

/// The store-gateway's port when `store/gateway/port` is not set (Deis v1's default).
const GATEWAY_PORT: &str = "8888";

#[derive(Clone, Copy)]
enum Kind {
    Text,
    /// Empty means unset.
    OptionalText,
    Secret,
    Count,
    Level,
    List,
    Choice(&'static [&'static str]),
    /// `"90s"`, `"6h"`, or seconds.
    Duration,
    /// `"5GiB"`, `"64MiB"`, or bytes.
    Size,
    /// `true` or `false`.
    Flag,
}

/// Every configuration key that etcd may set, with the kind of its value.
const KEYS: [(&str, Kind); 40] = [
    ("destination.url", Kind::Text),
    ("destination.endpoint", Kind::OptionalText),
    ("destination.region", Kind::OptionalText),
    ("destination.access-key", Kind::Secret),
    ("destination.secret-key", Kind::Secret),
    ("destination.copy-limit", Kind::Size),
    ("gateway.endpoint", Kind::OptionalText),
    ("gateway.access-key", Kind::Secret),
    ("gateway.secret-key", Kind::Secret),
    ("gateway.signature", Kind::Choice(&["v2", "v4", "auto"])),
    ("gateway.buckets", Kind::List),
    ("gateway.concurrency", Kind::Count),
    ("volume.path", Kind::Text),
    ("volume.require-mount", Kind::Flag),
    ("volume.read-ahead", Kind::Count),
    ("database.container", Kind::Text),
    ("database.user", Kind::Text),
    ("database.exec-mode", Kind::Choice(&["sudo", "user"])),
    ("schedule.gateway", Kind::Text),
    ("schedule.volume", Kind::Text),
    ("schedule.database", Kind::Text),
    ("schedule.etcd", Kind::Text),
    ("retention.keep-last", Kind::Count),
    ("retention.keep-hourly", Kind::Count),
    ("retention.keep-daily", Kind::Count),
    ("retention.keep-weekly", Kind::Count),
    ("retention.keep-monthly", Kind::Count),
    ("retention.object-grace", Kind::Duration),
    ("compression.level", Kind::Level),
    ("deadline.gateway", Kind::Duration),
    ("deadline.volume", Kind::Duration),
    ("deadline.database", Kind::Duration),
    ("deadline.etcd", Kind::Duration),
    ("timeouts.connect", Kind::Duration),
    ("timeouts.request", Kind::Duration),
    ("timeouts.idle", Kind::Duration),
    ("timeouts.database-idle", Kind::Duration),
    ("daemon.shutdown-grace", Kind::Duration),
    ("log.format", Kind::Choice(&["text", "json"])),
    ("restore.controller-container", Kind::Text),
];

/// One configuration value that came from etcd.
#[derive(Clone, PartialEq)]
pub struct EtcdValue {
    /// Dotted configuration key, e.g. `schedule.volume`.
    pub key: String,
    /// The etcd key it came from, e.g. `/deis/backup/schedule/volume`.
    pub etcd_key: String,
    /// The value (a secret's real value: never print it; `Debug` does not).
    pub value: toml::Value,
    /// Whether the value is a credential.
    pub secret: bool,
}

impl fmt::Debug for EtcdValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.secret {
            REDACTED.to_string()
        } else {
            self.value.to_string()
        };
        write!(f, "{} = {value} (from {})", self.key, self.etcd_key)
    }
}

/// The etcd layer of the configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EtcdLayer {
    pub values: Vec<EtcdValue>,
    /// Things to warn about (unknown keys under `PREFIX/backup/`), each naming the etcd key.
    pub warnings: Vec<String>,
}

/// A value in etcd that cannot be used. Never quotes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("etcd key {etcd_key} ({key}): {message}")]
pub struct EtcdKeyProblem {
    pub etcd_key: String,
    pub key: String,
    pub message: String,
}

impl EtcdLayer {
    /// The layer as a TOML table the loader can merge.
    pub fn to_table(&self) -> toml::Table {
        let mut root = toml::Table::new();
        for v in &self.values {
            let (section, key) = v.key.split_once('.').expect("dotted keys");
            let table = root
                .entry(section)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if let toml::Value::Table(t) = table {
                t.insert(key.to_string(), v.value.clone());
            }
        }
        root
    }

    /// The value set for a dotted key, if any.
    pub fn get(&self, key: &str) -> Option<&EtcdValue> {
        self.values.iter().find(|v| v.key == key)
    }

    /// Dotted keys whose value differs between two layers (set, changed or removed).
    pub fn changed_keys(&self, other: &EtcdLayer) -> Vec<String> {
        let mut keys: Vec<String> = self
            .values
            .iter()
            .chain(other.values.iter())
            .map(|v| v.key.clone())
            .filter(|k| self.get(k).map(|v| &v.value) != other.get(k).map(|v| &v.value))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }
}

/// `access-key` -> `accessKey`.
pub fn camel_case(kebab: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in kebab.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The etcd twin of a dotted key: `destination.access-key` -> `PREFIX/backup/destination/accessKey`.
pub fn etcd_key_of(prefix: &str, key: &str) -> String {
    let (section, name) = key.split_once('.').unwrap_or((key, ""));
    format!(
        "{}/backup/{section}/{}",
        prefix.trim_end_matches('/'),
        camel_case(name)
    )
}

/// Whether a change of this etcd key can change the configuration (the daemon's watch filter).
pub fn is_config_key(prefix: &str, key: &str) -> bool {
    let Some(rel) = relative(prefix, key) else {
        return false;
    };
    (rel.starts_with("backup/") && !is_state_key(&rel["backup/".len()..]))
        || DEIS_GATEWAY_KEYS.contains(&rel)
        || DEIS_BUCKET_KEYS.contains(&rel)
}

fn relative<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(prefix.trim_end_matches('/'))?
        .strip_prefix('/')
}

fn is_state_key(rel: &str) -> bool {
    STATE_KEYS
        .iter()
        .any(|s| rel == s.trim_end_matches('/') || (s.ends_with('/') && rel.starts_with(s)))
}

/// Maps etcd keys (full keys with their raw values; directories left out) to configuration.
/// Our `backup/...` keys win over the Deis keys they overlap.
pub fn map_etcd_keys(
    prefix: &str,
    nodes: &[(String, Vec<u8>)],
) -> Result<EtcdLayer, Vec<EtcdKeyProblem>> {
    let mut layer = EtcdLayer::default();
    let mut problems = Vec::new();
    let deis = |rel: &str| {
        let full = format!("{}/{rel}", prefix.trim_end_matches('/'));
        nodes
            .iter()
            .find(|(k, _)| *k == full)
            .map(|(k, v)| (k.clone(), v))
    };
    for (etcd_key, raw) in nodes {
        let Some(rel) = relative(prefix, etcd_key) else {
            continue;
        };
        let Some(name) = rel.strip_prefix("backup/") else {
            continue;
        };
        if is_state_key(name) {
            continue;
        }
        let Some((key, kind)) = KEYS
            .iter()
            .find(|(k, _)| etcd_key_of(prefix, k) == *etcd_key)
        else {
            layer.warnings.push(format!(
                "etcd key {etcd_key} is not a configuration key and is ignored (keys look like {})",
                etcd_key_of(prefix, "schedule.volume")
            ));
            continue;
        };
        match convert(*kind, raw) {
            Ok(Some(value)) => layer.values.push(EtcdValue {
                key: key.to_string(),
                etcd_key: etcd_key.clone(),
                value,
                secret: matches!(kind, Kind::Secret),
            }),
            Ok(None) => {}
            Err(message) => problems.push(EtcdKeyProblem {
                etcd_key: etcd_key.clone(),
                key: key.to_string(),
                message,
            }),
        }
    }

    // Deis's own keys, where ours do not say otherwise.
    let mut from_deis = |key: &str, kind: Kind, found: Option<(String, &Vec<u8>)>| {
        let Some((etcd_key, raw)) = found else { return };
        if layer.get(key).is_some() {
            return;
        }
        match convert(kind, raw) {
            Ok(Some(value)) => layer.values.push(EtcdValue {
                key: key.into(),
                etcd_key,
                value,
                secret: matches!(kind, Kind::Secret),
            }),
            Ok(None) => {}
            Err(message) => problems.push(EtcdKeyProblem {
                etcd_key,
                key: key.into(),
                message,
            }),
        }
    };
    from_deis(
        "gateway.access-key",
        Kind::Secret,
        deis("store/gateway/accessKey"),
    );
    from_deis(
        "gateway.secret-key",
        Kind::Secret,
        deis("store/gateway/secretKey"),
    );
    if let Some((host_key, host)) = deis("store/gateway/host") {
        let port = deis("store/gateway/port")
            .map(|(_, p)| String::from_utf8_lossy(p).trim().to_string())
            .unwrap_or_else(|| GATEWAY_PORT.into());
        let host = String::from_utf8_lossy(host).trim().to_string();
        let url = format!("http://{host}:{port}").into_bytes();
        from_deis(
            "gateway.endpoint",
            Kind::OptionalText,
            Some((host_key, &url)),
        );
    }
    let buckets: Vec<(String, String)> = DEIS_BUCKET_KEYS
        .iter()
        .filter_map(|rel| deis(rel))
        .map(|(k, v)| (k, String::from_utf8_lossy(v).trim().to_string()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if !buckets.is_empty() && layer.get("gateway.buckets").is_none() {
        layer.values.push(EtcdValue {
            key: "gateway.buckets".into(),
            etcd_key: buckets
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(" + "),
            value: toml::Value::Array(buckets.into_iter().map(|(_, v)| v.into()).collect()),
            secret: false,
        });
    }
    if problems.is_empty() {
        Ok(layer)
    } else {
        Err(problems)
    }
}

/// One raw value as its configuration kind; `None` when it means "unset".
fn convert(kind: Kind, raw: &[u8]) -> Result<Option<toml::Value>, String> {
    let text = std::str::from_utf8(raw).map_err(|_| {
        "the value is not UTF-8 text (not shown); expected text as etcdctl set writes it"
            .to_string()
    })?;
    if let Kind::Secret = kind {
        return Ok((!text.is_empty()).then(|| text.into()));
    }
    let text = text.trim();
    let wrong = |expected: &str| format!("{text:?} is not {expected}");
    Ok(Some(match kind {
        Kind::Text => text.into(),
        Kind::OptionalText if text.is_empty() => return Ok(None),
        Kind::OptionalText => text.into(),
        Kind::Secret => unreachable!("handled above"),
        Kind::Count => {
            let n: u32 = text
                .parse()
                .map_err(|_| wrong("a count; expected a whole number from 0 to 4294967295"))?;
            toml::Value::Integer(n.into())
        }
        Kind::Level => {
            let n: i32 = text
                .parse()
                .map_err(|_| wrong("a number; expected a whole number such as 3"))?;
            toml::Value::Integer(n.into())
        }
        Kind::List => toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| s.into())
                .collect(),
        ),
        Kind::Flag => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => toml::Value::Boolean(true),
            "false" | "no" | "off" | "0" => toml::Value::Boolean(false),
            _ => return Err(wrong("true or false")),
        },
        Kind::Duration => {
            let d = super::ConfigDuration::parse(text)?;
            toml::Value::String(d.to_string())
        }
        Kind::Size => {
            let size = super::ConfigSize::parse(text)?;
            toml::Value::String(size.to_string())
        }
        Kind::Choice(choices) => {
            if !choices.contains(&text) {
                return Err(wrong(&format!(
                    "allowed; expected one of {}",
                    choices.join(", ")
                )));
            }
            text.into()
        }
    }))
}

#[cfg(test)]
#[path = "etcd_source_tests.rs"]
mod tests;
