//! The settings model: every key of the configuration file, its default, and its validation.
//!
//! Layers (lowest first): built-in defaults < `--config FILE` (TOML) < etcd ([`EtcdLayer`]) <
//! `DEIS_BACKUP_*` environment < command-line flags. See [`load`].

mod destination_url;
mod duration;
mod etcd_source;
mod load;
mod secret;
mod size;
mod sources;
mod validate;

pub use destination_url::DestinationUrl;
pub use duration::ConfigDuration;
pub use etcd_source::{
    etcd_key_of, is_config_key, map_etcd_keys, EtcdKeyProblem, EtcdLayer, EtcdValue,
    DEIS_BUCKET_KEYS, DEIS_GATEWAY_KEYS,
};
pub use load::{etcd_endpoints, load, load_unvalidated, ConfigError, LoadOptions, ENV_PREFIX};
pub use secret::{is_secret_key, Secret, REDACTED};
pub use size::ConfigSize;
pub use sources::{Source, Sources};
pub use validate::{validate, Problem};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The whole effective configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Settings {
    pub etcd: EtcdSettings,
    pub destination: DestinationSettings,
    pub gateway: GatewaySettings,
    pub volume: VolumeSettings,
    pub database: DatabaseSettings,
    pub schedule: ScheduleSettings,
    pub retention: RetentionSettings,
    pub compression: CompressionSettings,
    pub metrics: MetricsSettings,
    pub deadline: DeadlineSettings,
    pub timeouts: TimeoutSettings,
    pub daemon: DaemonSettings,
    pub log: LogSettings,
    pub restore: RestoreSettings,
}

/// Which etcd keys API to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EtcdApi {
    V2,
    V3,
    #[default]
    Auto,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct EtcdSettings {
    /// Empty means: no etcd, run on file/environment configuration alone.
    pub endpoints: Vec<String>,
    pub api: EtcdApi,
    /// The Deis keyspace: configuration is read from `PREFIX/backup/...` and the Deis keys
    /// under it, and the `etcd` job exports everything under it.
    pub prefix: String,
}

impl Default for EtcdSettings {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            api: EtcdApi::Auto,
            prefix: "/deis".into(),
        }
    }
}

/// Where backup sets are written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct DestinationSettings {
    /// `file:///path` (relative paths allowed: `file://./backups`) or `s3://bucket/prefix`.
    pub url: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key: Option<Secret>,
    pub secret_key: Option<Secret>,
    /// S3 only: gateway objects up to this size reach their address with one server-side
    /// CopyObject; larger ones with a multipart copy (UploadPartCopy ranges of this size).
    /// S3 allows 5 MiB to 5 GiB; lowered in tests to exercise the multipart copy.
    pub copy_limit: ConfigSize,
}

/// S3's largest CopyObject and largest part: the default and the ceiling of `copy-limit`.
pub const MAX_COPY_LIMIT: u64 = 5 << 30;
/// S3's smallest part (except the last): the floor of `copy-limit`.
pub const MIN_COPY_LIMIT: u64 = 5 << 20;

impl Default for DestinationSettings {
    fn default() -> Self {
        Self {
            url: "file:///var/backups/deis".into(),
            endpoint: None,
            region: None,
            access_key: None,
            secret_key: None,
            copy_limit: ConfigSize::bytes(MAX_COPY_LIMIT),
        }
    }
}

/// How S3 requests to the store-gateway are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Signature {
    V2,
    V4,
    #[default]
    Auto,
}

/// The Deis store-gateway (Ceph radosgw) that the `gateway` job reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct GatewaySettings {
    pub endpoint: Option<String>,
    pub access_key: Option<Secret>,
    pub secret_key: Option<Secret>,
    pub signature: Signature,
    pub buckets: Vec<String>,
    pub concurrency: u32,
}

impl Default for GatewaySettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            access_key: None,
            secret_key: None,
            signature: Signature::Auto,
            buckets: vec!["db_wal".into(), "registry".into()],
            concurrency: 16,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct VolumeSettings {
    /// The CephFS store volume of a Deis v1 host.
    pub path: PathBuf,
    /// Run the volume job only where `path` is a mount point (the fleet unit sets it: a host
    /// without the store volume mounted would back up an empty folder).
    pub require_mount: bool,
    /// Threads opening and reading files ahead of the archive writer (0: none, every file is
    /// read on the writer's thread). On CephFS each open is a round trip, so a few overlap.
    pub read_ahead: u32,
}

impl Default for VolumeSettings {
    fn default() -> Self {
        Self {
            path: PathBuf::from("/var/lib/deis/store"),
            require_mount: false,
            read_ahead: 4,
        }
    }
}

/// How the database job reaches PostgreSQL: commands exec'd in a container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct DatabaseSettings {
    /// The container running PostgreSQL (Deis v1: `deis-database`).
    pub container: String,
    /// The PostgreSQL superuser (an OS user in the container with peer authentication).
    pub user: String,
    /// How commands run as `user`: through `sudo -u USER` (as Deis documents) or with the
    /// exec's own user option.
    pub exec_mode: ExecMode,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            container: "deis-database".into(),
            user: "postgres".into(),
            exec_mode: ExecMode::Sudo,
        }
    }
}

/// How a command inside the database container runs as the database user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    /// `sudo -u USER COMMAND`, run by the container's default user (needs sudo in the image).
    #[default]
    Sudo,
    /// `COMMAND` with the exec's user set to USER (no sudo needed).
    User,
}

/// What `restore` works on besides the backup sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RestoreSettings {
    /// The container running the Deis controller (Deis v1: `deis-controller`), in which
    /// `restore finish` makes the controller re-publish its state to etcd.
    pub controller_container: String,
}

impl Default for RestoreSettings {
    fn default() -> Self {
        Self {
            controller_container: "deis-controller".into(),
        }
    }
}

/// Cron schedules, in UTC. `""`, `off` or `disabled` disables a job (`deisctl config ... set`
/// refuses empty values, so Deis operators write `off`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct ScheduleSettings {
    pub gateway: String,
    pub volume: String,
    pub database: String,
    pub etcd: String,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        Self {
            gateway: "0 * * * *".into(),
            volume: "30 3 * * *".into(),
            database: "0 */3 * * *".into(),
            etcd: "*/15 * * * *".into(),
        }
    }
}

/// How many complete sets of each job to keep (applied by `prune`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RetentionSettings {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    /// Gateway objects younger than this are never deleted, referenced or not: a running
    /// gateway job may have written them and not yet referenced them in its snapshot.
    pub object_grace: ConfigDuration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            keep_last: 3,
            keep_hourly: 0,
            keep_daily: 7,
            keep_weekly: 4,
            keep_monthly: 6,
            object_grace: ConfigDuration::secs(24 * 3600),
        }
    }
}

/// How long one run of each job may take before it is cancelled as a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct DeadlineSettings {
    pub gateway: ConfigDuration,
    pub volume: ConfigDuration,
    pub database: ConfigDuration,
    pub etcd: ConfigDuration,
}

impl Default for DeadlineSettings {
    fn default() -> Self {
        Self {
            gateway: ConfigDuration::secs(6 * 3600),
            volume: ConfigDuration::secs(2 * 3600),
            database: ConfigDuration::secs(2 * 3600),
            etcd: ConfigDuration::secs(2 * 3600),
        }
    }
}

/// Deadlines of single network operations, so that a service that accepts a connection and
/// never answers fails the run instead of hanging it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct TimeoutSettings {
    /// Establishing a TCP (or TLS) connection to any service.
    pub connect: ConfigDuration,
    /// One request and its answer (S3 and etcd calls, Docker API calls), streamed bodies
    /// excepted: those fail when no byte moves for `idle`.
    pub request: ConfigDuration,
    /// A streamed body (S3 object, upload part) that moves no byte for this long is dead.
    pub idle: ConfigDuration,
    /// The database dump may be silent this long (e.g. waiting on a lock) before it fails.
    pub database_idle: ConfigDuration,
}

impl Default for TimeoutSettings {
    fn default() -> Self {
        Self {
            connect: ConfigDuration::secs(10),
            request: ConfigDuration::secs(120),
            idle: ConfigDuration::secs(60),
            database_idle: ConfigDuration::secs(15 * 60),
        }
    }
}

/// The daemon's own behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct DaemonSettings {
    /// On SIGTERM, how long runs in progress may go on before they are cancelled. The fleet
    /// unit's stop timeout is longer than this.
    pub shutdown_grace: ConfigDuration,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        Self {
            shutdown_grace: ConfigDuration::secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct CompressionSettings {
    /// zstd level, 1 (fastest) to 19.
    pub level: i32,
}

impl Default for CompressionSettings {
    fn default() -> Self {
        Self { level: 3 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct MetricsSettings {
    pub listen: String,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:9179".into(),
        }
    }
}

impl ScheduleSettings {
    /// The schedule of the job named `job` (`""` for a name that is no job).
    pub fn of(&self, job: &str) -> &str {
        match job {
            "gateway" => &self.gateway,
            "volume" => &self.volume,
            "database" => &self.database,
            "etcd" => &self.etcd,
            _ => "",
        }
    }
}

/// Whether a schedule value disables its job: empty, `off` or `disabled` (any case).
pub fn schedule_is_off(cron: &str) -> bool {
    let cron = cron.trim();
    cron.is_empty() || cron.eq_ignore_ascii_case("off") || cron.eq_ignore_ascii_case("disabled")
}

/// How the process logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct LogSettings {
    /// `text` (for people) or `json` (one object a line, for journald and log shippers).
    pub format: LogFormat,
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl DeadlineSettings {
    /// The run deadline of the job named `job` (the longest for a name that is no job).
    pub fn of(&self, job: &str) -> ConfigDuration {
        match job {
            "volume" => self.volume,
            "database" => self.database,
            "etcd" => self.etcd,
            _ => self.gateway,
        }
    }
}

impl Settings {
    /// The parsed destination URL. Valid settings (see [`validate`]) always parse.
    pub fn destination_url(&self) -> Result<DestinationUrl, String> {
        DestinationUrl::parse(&self.destination.url)
    }

    /// The effective configuration as TOML, every secret shown as `***`.
    pub fn to_redacted_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}
