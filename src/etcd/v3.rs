//! The etcd v3 API through `etcd-client` (gRPC), which balances over the endpoints itself.

use super::REQUEST_TIMEOUT;
use super::{dir_prefix, join_endpoints, EtcdError, Lease, Listing, Node, WatchEvent};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
    WatchStream,
};
use std::collections::HashMap;

/// A v3 client.
#[derive(Clone)]
pub struct V3Client {
    client: Client,
    endpoints: String,
}

impl V3Client {
    /// Connects to `endpoints` (the connection itself is made on first use).
    pub async fn connect(endpoints: &[String]) -> Result<Self, EtcdError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(REQUEST_TIMEOUT, REQUEST_TIMEOUT);
        let joined = join_endpoints(endpoints);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|source| EtcdError::V3 {
                endpoints: joined.clone(),
                action: "connect to read",
                key: "/".into(),
                source: Box::new(source),
            })?;
        Ok(Self {
            client,
            endpoints: joined,
        })
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
        match tokio::time::timeout(REQUEST_TIMEOUT, client.status()).await {
            Ok(r) => r.map(|_| ()).map_err(self.err("ask the status of", "/")),
            Err(_) => Err(EtcdError::Unreachable {
                endpoints: self.endpoints.clone(),
                action: "ask the status of",
                key: "/".into(),
                detail: "no answer in time".into(),
            }),
        }
    }

    /// Every key under `prefix` (and `prefix` itself), sorted, with the TTL of leased keys.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Listing, EtcdError> {
        let mut client = self.client.clone();
        let exact = prefix.trim_end_matches('/');
        let dir = dir_prefix(prefix);
        let call = client.get(dir.as_str(), Some(GetOptions::new().with_prefix()));
        let response = tokio::time::timeout(REQUEST_TIMEOUT, call)
            .await
            .map_err(|_| self.timeout("read", &dir))?
            .map_err(self.err("read", &dir))?;
        let mut kvs = response.kvs().to_vec();
        let index = response.header().map_or(0, |h| h.revision()).max(0) as u64;
        if !exact.is_empty() {
            let own = client
                .get(exact, None)
                .await
                .map_err(self.err("read", exact))?;
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
                        let left = client
                            .lease_time_to_live(id, None)
                            .await
                            .map_err(self.err("read the lease of", &key))?;
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
        let stream = self
            .client
            .clone()
            .watch(key.as_str(), Some(options))
            .await
            .map_err(self.err("watch", &key))?;
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
            let lease = client
                .lease_grant(ttl, None)
                .await
                .map_err(self.err("lease", key))?;
            options = options.with_lease(lease.id());
        }
        client
            .put(key, value.to_vec(), Some(options))
            .await
            .map(|_| ())
            .map_err(self.err("write", key))
    }

    /// Deletes a key.
    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        self.client
            .clone()
            .delete(key, None)
            .await
            .map(|_| ())
            .map_err(self.err("delete", key))
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
        let lease = client
            .lease_grant(ttl, None)
            .await
            .map_err(self.err("lease", key))?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(lease.id())),
            )]);
        let response = client.txn(txn).await.map_err(self.err("acquire", key))?;
        if response.succeeded() {
            Ok(Some(Lease {
                key: key.into(),
                value: value.into(),
                ttl_secs: ttl,
                id: lease.id(),
            }))
        } else {
            let _ = client.lease_revoke(lease.id()).await;
            Ok(None)
        }
    }

    /// One keep-alive of the lease; `false` when the lease has expired.
    pub async fn refresh(&self, lease: &Lease) -> Result<bool, EtcdError> {
        let mut client = self.client.clone();
        let (mut keeper, mut stream) = client
            .lease_keep_alive(lease.id)
            .await
            .map_err(self.err("keep alive", &lease.key))?;
        keeper
            .keep_alive()
            .await
            .map_err(self.err("keep alive", &lease.key))?;
        let answer = stream
            .message()
            .await
            .map_err(self.err("keep alive", &lease.key))?;
        if answer.is_none_or(|a| a.ttl() <= 0) {
            return Ok(false);
        }
        let current = client
            .get(lease.key.as_str(), None)
            .await
            .map_err(self.err("read", &lease.key))?;
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
            detail: "no answer in time".into(),
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
