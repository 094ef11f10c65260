//! The etcd v3 API through `etcd-client` (gRPC), which balances over the endpoints itself.
//!
//! Deadlines (capped at [`super::CALL_CAP`]): connections within `timeouts.connect`; every
//! unary call (and the opening of a watch or keep-alive stream) within `timeouts.request`,
//! by `tokio::time::timeout` rather than gRPC's own deadline, which the server would apply
//! to the long-lived watch streams too; HTTP/2 keep-alive pings while a stream is open, so
//! that a watch on a dead peer ends. (Not while idle: etcd's default enforcement policy
//! answers pings without streams with GOAWAY.)

use super::{deadlines, dir_prefix, join_endpoints, EtcdError, Lease, Listing, Node, WatchEvent};
use crate::config::TimeoutSettings;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
    WatchStream,
};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

/// How often an HTTP/2 ping checks that the server is still there.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

/// A v3 client.
#[derive(Clone)]
pub struct V3Client {
    client: Client,
    endpoints: String,
    /// The deadline of one call (`timeouts.request`).
    request: Duration,
}

impl V3Client {
    /// Connects to `endpoints` (the connection itself is made on first use).
    pub async fn connect(
        endpoints: &[String],
        timeouts: &TimeoutSettings,
    ) -> Result<Self, EtcdError> {
        let (connect, request) = deadlines(timeouts);
        let options = ConnectOptions::new()
            .with_connect_timeout(connect)
            .with_keep_alive(KEEPALIVE_EVERY, request)
            .with_keep_alive_while_idle(false);
        let joined = join_endpoints(endpoints);
        let connecting = Client::connect(endpoints, Some(options));
        let client = match tokio::time::timeout(request, connecting).await {
            Ok(r) => r.map_err(|source| EtcdError::V3 {
                endpoints: joined.clone(),
                action: "connect to read",
                key: "/".into(),
                source: Box::new(source),
            })?,
            Err(_) => {
                return Err(EtcdError::Unreachable {
                    endpoints: joined,
                    action: "connect to read",
                    key: "/".into(),
                    detail: format!("no connection within {request:?}"),
                })
            }
        };
        Ok(Self {
            client,
            endpoints: joined,
            request,
        })
    }

    /// `call` within the request deadline, its error naming the endpoints, `action` and `key`.
    async fn bounded<T>(
        &self,
        action: &'static str,
        key: &str,
        call: impl Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, EtcdError> {
        match tokio::time::timeout(self.request, call).await {
            Ok(result) => result.map_err(self.err(action, key)),
            Err(_) => Err(self.timeout(action, key)),
        }
    }

    fn err(&self, action: &'static str, key: &str) -> impl FnOnce(etcd_client::Error) -> EtcdError {
        let endpoints = self.endpoints.clone();
        let key = key.to_string();
        move |source| EtcdError::V3 {
            endpoints,
            action,
            key,
            source: Box::new(source),
        }
    }

    /// The maintenance status call: proves the server speaks v3.
    pub async fn status(&self) -> Result<(), EtcdError> {
        let mut client = self.client.clone();
        self.bounded("ask the status of", "/", client.status())
            .await
            .map(|_| ())
    }

    /// Every key under `prefix` (and `prefix` itself), sorted, with the TTL of leased keys.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Listing, EtcdError> {
        let mut client = self.client.clone();
        let exact = prefix.trim_end_matches('/');
        let dir = dir_prefix(prefix);
        let call = client.get(dir.as_str(), Some(GetOptions::new().with_prefix()));
        let response = self.bounded("read", &dir, call).await?;
        let mut kvs = response.kvs().to_vec();
        let index = response.header().map_or(0, |h| h.revision()).max(0) as u64;
        if !exact.is_empty() {
            let own = self.bounded("read", exact, client.get(exact, None)).await?;
            kvs.extend(own.kvs().iter().cloned());
        }
        let mut ttls: HashMap<i64, i64> = HashMap::new();
        let mut nodes = Vec::with_capacity(kvs.len());
        for kv in kvs {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let ttl = match kv.lease() {
                0 => None,
                id => {
                    if let std::collections::hash_map::Entry::Vacant(e) = ttls.entry(id) {
                        let call = client.lease_time_to_live(id, None);
                        let left = self.bounded("read the lease of", &key, call).await?;
                        e.insert(left.ttl().max(1));
                    }
                    ttls.get(&id).copied()
                }
            };
            nodes.push(Node {
                key,
                value: kv.value().to_vec(),
                ttl,
                dir: false,
            });
        }
        nodes.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(Listing { nodes, index })
    }

    /// Starts a watch of `prefix` from revision `index + 1`.
    pub async fn watch(&self, prefix: &str, index: u64) -> Result<V3Watch, EtcdError> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(index as i64 + 1);
        let key = dir_prefix(prefix);
        let mut client = self.client.clone();
        let stream = self
            .bounded("watch", &key, client.watch(key.as_str(), Some(options)))
            .await?;
        Ok(V3Watch {
            client: self.clone(),
            prefix: key,
            stream,
            revision: index,
        })
    }

    /// Sets a key; a TTL becomes a fresh lease.
    pub async fn put(&self, key: &str, value: &[u8], ttl: Option<i64>) -> Result<(), EtcdError> {
        let mut client = self.client.clone();
        let mut options = PutOptions::new();
        if let Some(ttl) = ttl {
            let lease = self
                .bounded("lease", key, client.lease_grant(ttl, None))
                .await?;
            options = options.with_lease(lease.id());
        }
        self.bounded("write", key, client.put(key, value.to_vec(), Some(options)))
            .await
            .map(|_| ())
    }

    /// Deletes a key.
    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        let mut client = self.client.clone();
        self.bounded("delete", key, client.delete(key, None))
            .await
            .map(|_| ())
    }

    /// Grants a lease and puts `key` under it only if the key does not exist (its create
    /// revision is 0); revokes the lease again when someone else holds the key.
    pub async fn acquire(
        &self,
        key: &str,
        value: &str,
        ttl: i64,
    ) -> Result<Option<Lease>, EtcdError> {
        let mut client = self.client.clone();
        let lease = self
            .bounded("lease", key, client.lease_grant(ttl, None))
            .await?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(lease.id())),
            )]);
        let response = self.bounded("acquire", key, client.txn(txn)).await?;
        if response.succeeded() {
            Ok(Some(Lease {
                key: key.into(),
                value: value.into(),
                ttl_secs: ttl,
                id: lease.id(),
            }))
        } else {
            let _ = self
                .bounded("revoke", key, client.lease_revoke(lease.id()))
                .await;
            Ok(None)
        }
    }

    /// Sets `key` to `value` only when it does not exist (a create-revision-0 transaction);
    /// `false` when it was there already.
    pub async fn create(&self, key: &str, value: &str) -> Result<bool, EtcdError> {
        let mut client = self.client.clone();
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value, None)]);
        let response = self.bounded("create", key, client.txn(txn)).await?;
        Ok(response.succeeded())
    }

    /// One keep-alive of the lease; `false` when the lease has expired.
    pub async fn refresh(&self, lease: &Lease) -> Result<bool, EtcdError> {
        let mut client = self.client.clone();
        let key = lease.key.as_str();
        let (mut keeper, mut stream) = self
            .bounded("keep alive", key, client.lease_keep_alive(lease.id))
            .await?;
        self.bounded("keep alive", key, keeper.keep_alive()).await?;
        let answer = self.bounded("keep alive", key, stream.message()).await?;
        if answer.is_none_or(|a| a.ttl() <= 0) {
            return Ok(false);
        }
        let current = self.bounded("read", key, client.get(key, None)).await?;
        Ok(current
            .kvs()
            .first()
            .is_some_and(|kv| kv.lease() == lease.id))
    }

    fn timeout(&self, action: &'static str, key: &str) -> EtcdError {
        EtcdError::Unreachable {
            endpoints: self.endpoints.clone(),
            action,
            key: key.into(),
            detail: format!("no answer within {:?}", self.request),
        }
    }
}

/// A v3 watch; on compaction it re-reads the prefix and reports a resync.
pub struct V3Watch {
    client: V3Client,
    prefix: String,
    stream: WatchStream,
    revision: u64,
}

impl V3Watch {
    /// Waits for the next change.
    pub async fn next(&mut self) -> Result<WatchEvent, EtcdError> {
        loop {
            let message = self
                .stream
                .message()
                .await
                .map_err(self.client.err("watch", &self.prefix))?;
            let Some(response) = message else {
                return Err(EtcdError::WatchEnded {
                    endpoints: self.client.endpoints.clone(),
                    prefix: self.prefix.clone(),
                });
            };
            if response.canceled() || response.compact_revision() > 0 {
                let listing = self.client.get_prefix(&self.prefix).await?;
                *self = self.client.watch(&self.prefix, listing.index).await?;
                return Ok(WatchEvent::Resync);
            }
            let mut keys = Vec::new();
            for event in response.events() {
                if let Some(kv) = event.kv() {
                    self.revision = self.revision.max(kv.mod_revision().max(0) as u64);
                    keys.push(String::from_utf8_lossy(kv.key()).into_owned());
                }
            }
            if !keys.is_empty() {
                return Ok(WatchEvent::Changed(keys));
            }
        }
    }
}
