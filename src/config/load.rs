//! Layering of the configuration sources (defaults < file < `ETCD` < `DEIS_BACKUP_*` < flags).

use super::etcd_source::{EtcdKeyProblem, EtcdLayer};
use super::secret::is_secret_key;
use super::{validate, Problem, Settings};
use config::{Case, Config, Environment, File, FileFormat};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Prefix of the environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "DEIS_BACKUP";

/// Variables with the prefix that are not configuration keys.
const RESERVED_ENV: [&str; 3] = ["DEIS_BACKUP_ETCD", "DEIS_BACKUP_CONFIG", "DEIS_BACKUP_LOG"];

/// What to load the configuration from.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config FILE`.
    pub file: Option<PathBuf>,
    /// A snapshot of the process environment (tests pass their own).
    pub env: Vec<(String, String)>,
    /// Values given as flags, by dotted key (`destination.url`); they win over everything.
    pub overrides: Vec<(&'static str, config::Value)>,
    /// What was read from etcd (see [`super::map_etcd_keys`]); between the file and the
    /// environment.
    pub etcd: Option<EtcdLayer>,
}

impl LoadOptions {
    /// Options that read the real process environment.
    pub fn from_process_env(
        file: Option<PathBuf>,
        overrides: Vec<(&'static str, config::Value)>,
    ) -> Self {
        Self {
            file,
            env: std::env::vars().collect(),
            overrides,
            etcd: None,
        }
    }
}

/// Why no configuration could be made. Messages never quote a secret value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid configuration in etcd:\n  {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  "))]
    Etcd(Vec<EtcdKeyProblem>),
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("cannot combine the configuration layers: {0}")]
    Merge(String),
    #[error("invalid configuration:\n  {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  "))]
    Invalid(Vec<Problem>),
}

/// Loads and validates the configuration.
pub fn load(options: &LoadOptions) -> Result<Settings, ConfigError> {
    let settings = load_unvalidated(options)?;
    let problems = validate(&settings);
    if problems.is_empty() {
        Ok(settings)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// Loads the configuration layers without checking the values (for `config show`).
pub fn load_unvalidated(options: &LoadOptions) -> Result<Settings, ConfigError> {
    let defaults =
        Config::try_from(&Settings::default()).map_err(|e| ConfigError::Merge(e.to_string()))?;
    let mut builder = Config::builder().add_source(defaults);

    if let Some(path) = &options.file {
        let text = read_file_strictly(path)?;
        builder = builder.add_source(File::from_str(&text, FileFormat::Toml));
    }
    let env: HashMap<String, String> = options.env.iter().cloned().collect();
    if let Some(endpoints) = etcd_endpoints_from_env(&env) {
        let table = toml::toml! { [etcd] endpoints = endpoints };
        builder = builder.add_source(File::from_str(&table.to_string(), FileFormat::Toml));
    }
    if let Some(layer) = &options.etcd {
        let table = layer.to_table().to_string();
        builder = builder.add_source(File::from_str(&table, FileFormat::Toml));
    }
    let config_env = config_env_vars(&env);
    for (var, value) in &config_env {
        check_env_var(var, value)?;
    }
    builder = builder.add_source(environment_source(config_env));
    for (key, value) in &options.overrides {
        builder = builder
            .set_override(*key, value.clone())
            .map_err(|e| ConfigError::Merge(e.to_string()))?;
    }
    let merged = builder
        .build()
        .map_err(|e| ConfigError::Merge(e.to_string()))?;
    merged
        .try_deserialize::<Settings>()
        .map_err(|e| ConfigError::Merge(e.to_string()))
}

/// Reads the file and parses it on its own first, so that an unknown key or a wrong type is
/// reported with the file's name and line.
fn read_file_strictly(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    if let Err(e) = toml::from_str::<Settings>(&text) {
        let (line_no, line) = e
            .span()
            .map(|span| {
                let line_no = text[..span.start].matches('\n').count() + 1;
                (line_no, text.lines().nth(line_no - 1).unwrap_or(""))
            })
            .unwrap_or((0, ""));
        let key = line.split('=').next().unwrap_or("").trim();
        let message = if is_secret_key(key) {
            format!("key {key} has a value of the wrong kind (not shown: it is a secret); expected a string")
        } else {
            e.message().to_string()
        };
        let at = if line_no > 0 {
            format!(", line {line_no}")
        } else {
            String::new()
        };
        return Err(ConfigError::File {
            path: PathBuf::from(format!("{}{at}", path.display())),
            message,
        });
    }
    Ok(text)
}

/// `ETCD` or `DEIS_BACKUP_ETCD` (`host:port` as Deis sets it, or URLs, comma-separated).
pub(super) fn etcd_endpoints_from_env(env: &HashMap<String, String>) -> Option<Vec<String>> {
    let raw = env.get("DEIS_BACKUP_ETCD").or_else(|| env.get("ETCD"))?;
    let endpoints = etcd_endpoints(raw);
    (!endpoints.is_empty()).then_some(endpoints)
}

/// etcd endpoints from a comma-separated list of URLs or `host:port` (as Deis sets `ETCD`),
/// the latter taken as `http://host:port`.
pub fn etcd_endpoints(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.contains("://") {
                s.to_string()
            } else {
                format!("http://{s}")
            }
        })
        .collect()
}

pub(super) fn config_env_vars(env: &HashMap<String, String>) -> HashMap<String, String> {
    env.iter()
        .filter(|(k, _)| {
            k.starts_with(&format!("{ENV_PREFIX}_")) && !RESERVED_ENV.contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn environment_source(vars: HashMap<String, String>) -> Environment {
    Environment::with_prefix(ENV_PREFIX)
        .prefix_separator("_")
        .separator("__")
        .convert_case(Case::Kebab)
        .try_parsing(true)
        .list_separator(",")
        .with_list_parse_key("gateway.buckets")
        .with_list_parse_key("etcd.endpoints")
        .source(Some(vars.into_iter().collect()))
}

/// Checks one variable on its own so that an unknown key or a bad value names the variable.
fn check_env_var(var: &str, value: &str) -> Result<(), ConfigError> {
    let single = HashMap::from([(var.to_string(), value.to_string())]);
    let result = Config::builder()
        .add_source(
            Config::try_from(&Settings::default())
                .map_err(|e| ConfigError::Merge(e.to_string()))?,
        )
        .add_source(environment_source(single))
        .build()
        .and_then(|c| c.try_deserialize::<Settings>());
    match result {
        Ok(_) => Ok(()),
        Err(_) if is_secret_key(var) => Err(ConfigError::Env {
            var: var.into(),
            message: "value of the wrong kind (not shown: it is a secret); expected a string".into(),
        }),
        Err(e) => Err(ConfigError::Env {
            var: var.into(),
            message: format!("{e} (variables look like DEIS_BACKUP_DESTINATION__URL: section and key joined by __)"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn layers_apply_in_order() {
        let f = file("[destination]\nurl = \"file:///from-file\"\n[compression]\nlevel = 5\n[volume]\npath = \"/file\"\n");
        let options = LoadOptions {
            file: Some(f.path().into()),
            env: env(&[
                ("DEIS_BACKUP_COMPRESSION__LEVEL", "7"),
                ("DEIS_BACKUP_VOLUME__PATH", "/env"),
            ]),
            overrides: vec![("volume.path", "/flag".into())],
            etcd: None,
        };
        let s = load(&options).unwrap();
        assert_eq!(s.destination.url, "file:///from-file");
        assert_eq!(s.compression.level, 7);
        assert_eq!(s.volume.path, PathBuf::from("/flag"));
    }

    #[test]
    fn kebab_keys_and_lists_come_from_the_environment() {
        let options = LoadOptions {
            env: env(&[
                ("DEIS_BACKUP_DESTINATION__ACCESS_KEY", "AKIA"),
                ("DEIS_BACKUP_GATEWAY__BUCKETS", "db_wal,registry,extra"),
                ("DEIS_BACKUP_RETENTION__KEEP_LAST", "9"),
                ("DEIS_BACKUP_RESTORE__CONTROLLER_CONTAINER", "ctl-1"),
                ("ETCD", "10.0.0.1:4001"),
            ]),
            ..Default::default()
        };
        let s = load(&options).unwrap();
        assert_eq!(s.destination.access_key.unwrap().expose(), "AKIA");
        assert_eq!(s.gateway.buckets, ["db_wal", "registry", "extra"]);
        assert_eq!(s.retention.keep_last, 9);
        assert_eq!(s.restore.controller_container, "ctl-1");
        assert_eq!(s.etcd.endpoints, ["http://10.0.0.1:4001"]);
    }

    #[test]
    fn unknown_file_key_names_key_file_and_line() {
        let f = file("[destination]\nurl = \"file:///x\"\nbucket = \"oops\"\n");
        let err = load(&LoadOptions {
            file: Some(f.path().into()),
            ..Default::default()
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bucket"), "{text}");
        assert!(text.contains(&f.path().display().to_string()), "{text}");
        assert!(text.contains("line 3"), "{text}");
    }

    #[test]
    fn wrong_type_of_secret_is_reported_without_the_value() {
        let f = file("[destination]\nsecret-key = 98765\n");
        let err = load(&LoadOptions {
            file: Some(f.path().into()),
            ..Default::default()
        })
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("secret-key") && !text.contains("98765"),
            "{text}"
        );
    }

    #[test]
    fn unknown_env_var_is_named() {
        let options = LoadOptions {
            env: env(&[("DEIS_BACKUP_DESTINATION__BUKET", "x")]),
            ..Default::default()
        };
        let text = load(&options).unwrap_err().to_string();
        assert!(text.contains("DEIS_BACKUP_DESTINATION__BUKET"), "{text}");
    }

    #[test]
    fn bad_values_are_all_reported() {
        let options = LoadOptions {
            env: env(&[
                ("DEIS_BACKUP_SCHEDULE__VOLUME", "bad cron"),
                ("DEIS_BACKUP_DESTINATION__URL", "ftp://x"),
            ]),
            ..Default::default()
        };
        match load(&options).unwrap_err() {
            ConfigError::Invalid(problems) => {
                let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
                assert_eq!(keys, ["destination.url", "schedule.volume"]);
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn negative_retention_is_rejected() {
        let options = LoadOptions {
            env: env(&[("DEIS_BACKUP_RETENTION__KEEP_DAILY", "-1")]),
            ..Default::default()
        };
        let text = load(&options).unwrap_err().to_string();
        assert!(text.contains("DEIS_BACKUP_RETENTION__KEEP_DAILY"), "{text}");
    }
}
