//! Where each effective configuration value came from (default, file, etcd, env, flag), and
//! the `config show` rendering that says so in a trailing comment.

use super::load::{config_env_vars, etcd_endpoints_from_env, ENV_PREFIX};
use super::{LoadOptions, Settings};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

/// The layer that set a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    /// The etcd key(s).
    Etcd(String),
    /// The environment variable.
    Env(String),
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Etcd(key) => write!(f, "etcd {key}"),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Flag => f.write_str("flag"),
        }
    }
}

/// The source of every dotted key (`schedule.volume`) of the effective configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources(BTreeMap<String, Source>);

impl Sources {
    /// Works out each key's source from the layers in `options` (highest layer wins).
    pub fn of(options: &LoadOptions) -> Self {
        let mut map = BTreeMap::new();
        let defaults = toml::Table::try_from(Settings::default()).unwrap_or_default();
        for key in dotted_keys(&defaults) {
            map.insert(key, Source::Default);
        }
        if let Some(path) = &options.file {
            let table: toml::Table = std::fs::read_to_string(path)
                .ok()
                .and_then(|t| toml::from_str(&t).ok())
                .unwrap_or_default();
            for key in dotted_keys(&table) {
                map.insert(key, Source::File(path.clone()));
            }
        }
        let env: HashMap<String, String> = options.env.iter().cloned().collect();
        if etcd_endpoints_from_env(&env).is_some() {
            let var = if env.contains_key("DEIS_BACKUP_ETCD") {
                "DEIS_BACKUP_ETCD"
            } else {
                "ETCD"
            };
            map.insert("etcd.endpoints".into(), Source::Env(var.into()));
        }
        if let Some(layer) = &options.etcd {
            for v in &layer.values {
                map.insert(v.key.clone(), Source::Etcd(v.etcd_key.clone()));
            }
        }
        for var in config_env_vars(&env).keys() {
            if let Some(key) = env_var_key(var) {
                map.insert(key, Source::Env(var.clone()));
            }
        }
        for (key, _) in &options.overrides {
            map.insert(key.to_string(), Source::Flag);
        }
        Sources(map)
    }

    /// The source of a dotted key (`etcd.endpoints[0]` counts as `etcd.endpoints`).
    pub fn get(&self, key: &str) -> Option<&Source> {
        let base = key.split('[').next().unwrap_or(key);
        self.0.get(base)
    }

    /// `config show`: the settings as TOML, secrets as `***`, each value with its source as a
    /// trailing comment (`# from etcd /deis/backup/schedule/volume`).
    pub fn render(&self, settings: &Settings) -> String {
        let table = match toml::Table::try_from(settings) {
            Ok(t) => t,
            Err(e) => return format!("# cannot render settings: {e}\n"),
        };
        let mut out = String::new();
        for (section, values) in &table {
            let toml::Value::Table(values) = values else {
                continue;
            };
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{section}]\n"));
            for (key, value) in values {
                let source = self
                    .get(&format!("{section}.{key}"))
                    .cloned()
                    .unwrap_or(Source::Default);
                out.push_str(&format!("{key} = {value}  # from {source}\n"));
            }
        }
        out
    }
}

/// `DEIS_BACKUP_RETENTION__KEEP_LAST` -> `retention.keep-last`.
fn env_var_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix(&format!("{ENV_PREFIX}_"))?;
    let (section, key) = rest.split_once("__")?;
    Some(format!(
        "{}.{}",
        section.to_ascii_lowercase(),
        key.to_ascii_lowercase().replace('_', "-")
    ))
}

fn dotted_keys(table: &toml::Table) -> Vec<String> {
    let mut keys = Vec::new();
    for (section, value) in table {
        if let toml::Value::Table(inner) = value {
            keys.extend(inner.keys().map(|k| format!("{section}.{k}")));
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::map_etcd_keys;
    use std::io::Write;

    #[test]
    fn each_layer_is_named_and_the_highest_wins() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"[volume]\npath = \"/file\"\n[schedule]\nvolume = \"1 1 * * *\"\n")
            .unwrap();
        let layer = map_etcd_keys(
            "/deis",
            &[
                ("/deis/backup/schedule/volume".into(), b"2 2 * * *".to_vec()),
                (
                    "/deis/backup/destination/secretKey".into(),
                    b"hunter2".to_vec(),
                ),
                ("/deis/backup/compression/level".into(), b"4".to_vec()),
            ],
        )
        .unwrap();
        let options = LoadOptions {
            file: Some(f.path().into()),
            env: vec![
                ("DEIS_BACKUP_COMPRESSION__LEVEL".into(), "5".into()),
                ("ETCD".into(), "127.0.0.1:4001".into()),
            ],
            overrides: vec![("volume.path", "/flag".into())],
            etcd: Some(layer),
        };
        let sources = Sources::of(&options);
        let source = |k: &str| sources.get(k).unwrap().to_string();
        assert_eq!(
            source("schedule.volume"),
            "etcd /deis/backup/schedule/volume"
        );
        assert_eq!(
            source("compression.level"),
            "env DEIS_BACKUP_COMPRESSION__LEVEL"
        );
        assert_eq!(source("volume.path"), "flag");
        assert_eq!(source("etcd.endpoints[0]"), "env ETCD");
        assert_eq!(source("retention.keep-last"), "default");

        let settings = crate::config::load(&options).unwrap();
        let shown = sources.render(&settings);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("secret-key = \"***\"  # from etcd /deis/backup/destination/secretKey"),
            "{shown}"
        );
        assert!(
            shown.contains("volume = \"2 2 * * *\"  # from etcd"),
            "{shown}"
        );
        let parsed: toml::Table = toml::from_str(&shown).unwrap();
        assert_eq!(parsed["compression"]["level"].as_integer(), Some(5));
    }

    #[test]
    fn env_vars_name_their_key() {
        assert_eq!(
            env_var_key("DEIS_BACKUP_RETENTION__KEEP_LAST").as_deref(),
            Some("retention.keep-last")
        );
        assert_eq!(env_var_key("DEIS_BACKUP_X"), None);
    }
}
