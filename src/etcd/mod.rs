//! One etcd client over the v2 HTTP keys API (Deis v1's etcd2) and the v3 gRPC API.
//!
//! [`EtcdClient`] offers what the daemon and the jobs need: a recursive read of a prefix, a
//! watch of a prefix from an index, put/delete (restore), and the primitives of a leader
//! election ([`EtcdClient::acquire`] / [`EtcdClient::refresh`]). Values are bytes and never
//! appear in an [`EtcdError`]: etcd values can be credentials.

mod config_read;
mod v2;
mod v3;

use crate::config::{EtcdApi, EtcdSettings, TimeoutSettings};
use std::fmt;
use std::time::Duration;

pub use config_read::{config_prefixes, read_config, ConfigRead};
pub use v2::V2Client;
pub use v3::V3Client;

/// The most one etcd call (or connection) may take, whatever `timeouts` allow: etcd calls
/// are small, and the daemon's 15 s leader lease must be refreshed or given up in time.
pub const CALL_CAP: Duration = Duration::from_secs(5);

/// The connect and per-call deadlines of an etcd client: `timeouts`, capped at [`CALL_CAP`].
fn deadlines(timeouts: &TimeoutSettings) -> (Duration, Duration) {
    (
        timeouts.connect.get().min(CALL_CAP),
        timeouts.request.get().min(CALL_CAP),
    )
}

/// One key (or v2 directory) as read from etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The full key, e.g. `/deis/backup/schedule/volume`.
    pub key: String,
    /// The value's bytes (empty for a directory). May be a secret: never log it.
    pub value: Vec<u8>,
    /// Seconds left to live, for keys with a TTL (v2) or a lease (v3).
    pub ttl: Option<i64>,
    /// A v2 directory (v3 has none).
    pub dir: bool,
}

/// The keys under a prefix and the store index (v2 `X-Etcd-Index`, v3 revision) they are from.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub nodes: Vec<Node>,
    pub index: u64,
}

/// Which API a connected client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    V2,
    V3,
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Api::V2 => "v2",
            Api::V3 => "v3",
        })
    }
}

/// What a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// These keys were set, deleted or expired.
    Changed(Vec<String>),
    /// Events were lost (v2 "index cleared", v3 compaction): the prefix was read again and the
    /// watch continues from there; the caller should re-read whatever it derives from it.
    Resync,
}

/// Why an etcd operation failed. Names the endpoint(s) and the key, never a value.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("no etcd endpoint configured; set etcd.endpoints, --etcd URL or ETCD=host:port")]
    NoEndpoints,
    #[error("cannot reach etcd at {endpoints} to {action} {key} ({detail}); check that etcd runs and etcd.endpoints / ETCD")]
    Unreachable {
        endpoints: String,
        action: &'static str,
        key: String,
        detail: String,
    },
    #[error("etcd at {endpoint} refused to {action} {key}: {message} (etcd error code {code})")]
    Refused {
        endpoint: String,
        action: &'static str,
        key: String,
        code: i64,
        message: String,
    },
    #[error("etcd at {endpoint} gave an unexpected answer to {action} {key}: {detail}")]
    Protocol {
        endpoint: String,
        action: &'static str,
        key: String,
        detail: String,
    },
    #[error("etcd v3 at {endpoints}: cannot {action} {key}")]
    V3 {
        endpoints: String,
        action: &'static str,
        key: String,
        #[source]
        source: Box<etcd_client::Error>,
    },
    #[error("the watch of {prefix} at {endpoints} ended; it is restarted from the last index")]
    WatchEnded { endpoints: String, prefix: String },
}

/// A held election key: who holds it and how it stays alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: String,
    /// The holder's identity (not a secret).
    pub value: String,
    pub ttl_secs: i64,
    /// v3 lease id (0 for v2, where the key itself carries the TTL).
    pub id: i64,
}

/// A client speaking one of the two APIs, with fail-over across the configured endpoints.
#[derive(Clone)]
pub enum EtcdClient {
    V2(V2Client),
    V3(Box<V3Client>),
}

impl EtcdClient {
    /// Connects as `settings.api` says, with the default deadlines: [`CALL_CAP`] to connect
    /// and per call (see [`Self::connect_with`]).
    pub async fn connect(settings: &EtcdSettings) -> Result<Self, EtcdError> {
        Self::connect_with(settings, &TimeoutSettings::default()).await
    }

    /// Connects as `settings.api` says; `auto` asks the server (see [`detect`]). Connections
    /// must be made within `timeouts.connect` and each call answered within
    /// `timeouts.request`, both capped at [`CALL_CAP`] (watches excepted: they wait for
    /// events as long as it takes).
    pub async fn connect_with(
        settings: &EtcdSettings,
        timeouts: &TimeoutSettings,
    ) -> Result<Self, EtcdError> {
        let endpoints = &settings.endpoints;
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        match settings.api {
            EtcdApi::V2 => Ok(EtcdClient::V2(V2Client::new(endpoints, timeouts))),
            EtcdApi::V3 => Ok(EtcdClient::V3(Box::new(
                V3Client::connect(endpoints, timeouts).await?,
            ))),
            EtcdApi::Auto => detect(endpoints, &settings.prefix, timeouts).await,
        }
    }

    /// The API this client speaks.
    pub fn api(&self) -> Api {
        match self {
            EtcdClient::V2(_) => Api::V2,
            EtcdClient::V3(_) => Api::V3,
        }
    }

    /// Every key under `prefix` (the prefix itself included when it is a key), sorted.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Listing, EtcdError> {
        match self {
            EtcdClient::V2(c) => c.get_prefix(prefix).await,
            EtcdClient::V3(c) => c.get_prefix(prefix).await,
        }
    }

    /// Watches `prefix` for changes after `index` (from a [`Listing`]).
    pub async fn watch(&self, prefix: &str, index: u64) -> Result<Watch, EtcdError> {
        match self {
            EtcdClient::V2(c) => Ok(Watch::V2(c.watch(prefix, index))),
            EtcdClient::V3(c) => Ok(Watch::V3(Box::new(c.watch(prefix, index).await?))),
        }
    }

    /// Sets `key` (with a TTL in seconds when given).
    pub async fn put(&self, key: &str, value: &[u8], ttl: Option<i64>) -> Result<(), EtcdError> {
        match self {
            EtcdClient::V2(c) => c.put(key, value, ttl).await,
            EtcdClient::V3(c) => c.put(key, value, ttl).await,
        }
    }

    /// Creates a v2 directory (v3 has no directories: nothing to do).
    pub async fn make_dir(&self, key: &str) -> Result<(), EtcdError> {
        match self {
            EtcdClient::V2(c) => c.make_dir(key).await,
            EtcdClient::V3(_) => Ok(()),
        }
    }

    /// Deletes `key` (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        match self {
            EtcdClient::V2(c) => c.delete(key).await,
            EtcdClient::V3(c) => c.delete(key).await,
        }
    }

    /// Sets `key` to `value` only when it does not exist yet; `false` when it did.
    pub async fn create(&self, key: &str, value: &str) -> Result<bool, EtcdError> {
        match self {
            EtcdClient::V2(c) => c.create(key, value).await,
            EtcdClient::V3(c) => c.create(key, value).await,
        }
    }

    /// Takes `key` for `value` if nobody holds it: v3 a lease and a put-if-absent transaction,
    /// v2 a TTL key created with `prevExist=false`. `None` when someone else holds it.
    pub async fn acquire(
        &self,
        key: &str,
        value: &str,
        ttl_secs: i64,
    ) -> Result<Option<Lease>, EtcdError> {
        match self {
            EtcdClient::V2(c) => c.acquire(key, value, ttl_secs).await,
            EtcdClient::V3(c) => c.acquire(key, value, ttl_secs).await,
        }
    }

    /// Keeps a held key alive (v3 lease keep-alive, v2 TTL refresh with `prevValue`). `false`
    /// when the key was lost (expired or taken over): the holder is no longer leader.
    pub async fn refresh(&self, lease: &Lease) -> Result<bool, EtcdError> {
        match self {
            EtcdClient::V2(c) => c.refresh(lease).await,
            EtcdClient::V3(c) => c.refresh(lease).await,
        }
    }
}

/// A running watch of a prefix.
pub enum Watch {
    V2(v2::V2Watch),
    V3(Box<v3::V3Watch>),
}

impl Watch {
    /// Waits for the next change.
    pub async fn next(&mut self) -> Result<WatchEvent, EtcdError> {
        match self {
            Watch::V2(w) => w.next().await,
            Watch::V3(w) => w.next().await,
        }
    }
}

/// `auto`: v3 when the server speaks it and holds keys under `prefix` there; otherwise v2 when
/// the server answers `GET /v2/keys` (etcd2, or etcd3 with `--enable-v2`); otherwise v3.
/// (etcd3 keeps the v2 and v3 keyspaces apart, so the API that holds the data wins.)
pub async fn detect(
    endpoints: &[String],
    prefix: &str,
    timeouts: &TimeoutSettings,
) -> Result<EtcdClient, EtcdError> {
    let v2 = V2Client::new(endpoints, timeouts);
    let v3 = match V3Client::connect(endpoints, timeouts).await {
        Ok(c) if c.status().await.is_ok() => Some(c),
        _ => None,
    };
    if let Some(v3) = &v3 {
        if !v3.get_prefix(prefix).await?.nodes.is_empty() {
            return Ok(EtcdClient::V3(Box::new(v3.clone())));
        }
    }
    match v2.get_prefix("/").await {
        Ok(_) => Ok(EtcdClient::V2(v2)),
        Err(e) => match v3 {
            Some(v3) => Ok(EtcdClient::V3(Box::new(v3))),
            None => Err(e),
        },
    }
}

/// `host:port` and URL lists joined for messages.
fn join_endpoints(endpoints: &[String]) -> String {
    endpoints.join(",")
}

/// `/deis` -> `/deis/`, so that a prefix never matches `/deisx`.
fn dir_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_end_matches('/');
    format!("{trimmed}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_prefix_ends_in_one_slash() {
        assert_eq!(dir_prefix("/deis"), "/deis/");
        assert_eq!(dir_prefix("/deis/"), "/deis/");
        assert_eq!(dir_prefix("/"), "/");
    }

    #[test]
    fn errors_name_endpoint_and_key() {
        let e = EtcdError::Refused {
            endpoint: "http://10.0.0.1:4001".into(),
            action: "read",
            key: "/deis/backup".into(),
            code: 100,
            message: "Key not found".into(),
        };
        let text = e.to_string();
        assert!(text.contains("http://10.0.0.1:4001") && text.contains("/deis/backup"));
    }

    #[test]
    fn etcd_deadlines_follow_the_settings_up_to_the_cap() {
        let small = TimeoutSettings {
            connect: crate::config::ConfigDuration::secs(2),
            request: crate::config::ConfigDuration::secs(3),
            ..TimeoutSettings::default()
        };
        assert_eq!(
            deadlines(&small),
            (Duration::from_secs(2), Duration::from_secs(3))
        );
        assert_eq!(deadlines(&TimeoutSettings::default()), (CALL_CAP, CALL_CAP));
    }

    #[test]
    fn connect_without_endpoints_says_what_to_set() {
        let settings = EtcdSettings::default();
        let err = crate::runtime::block_on(EtcdClient::connect(&settings))
            .err()
            .unwrap();
        assert!(err.to_string().contains("ETCD=host:port"), "{err}");
    }
}
