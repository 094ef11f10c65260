//! The etcd v2 HTTP keys API (`/v2/keys/...`), as Deis v1's etcd2 speaks it.

use super::{deadlines, join_endpoints, EtcdError, Lease, Listing, Node, WatchEvent};
use crate::config::TimeoutSettings;
use crate::error_chain::error_chain;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a watch long-poll waits for an event before it is simply asked again. (etcd
/// answers a watch's headers at once and holds the body until an event: headers that do not
/// come within the request deadline mean a dead etcd, a body that does not come means no event.)
const WATCH_POLL: Duration = Duration::from_secs(60);
/// TCP keep-alive probes on idle connections, so that a vanished peer is noticed.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// etcd v2 error code: the waited-for index has left the event history.
const INDEX_CLEARED: i64 = 401;
/// etcd v2 error code: key not found.
const KEY_NOT_FOUND: i64 = 100;
/// etcd v2 error codes of failed conditions (compare failed, node exists).
const COMPARE_FAILED: i64 = 101;
const NODE_EXISTS: i64 = 105;

/// Characters escaped in a key path (everything but unreserved characters and `/`).
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A v2 client; requests go to the last endpoint that answered, then to the others in turn.
#[derive(Clone)]
pub struct V2Client {
    http: reqwest::Client,
    endpoints: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
    /// The deadline of one request and its answer (`timeouts.request`).
    request: Duration,
}

#[derive(Debug, Deserialize)]
struct Answer {
    node: Option<RawNode>,
    #[serde(rename = "errorCode")]
    error_code: Option<i64>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawNode {
    key: Option<String>,
    value: Option<String>,
    #[serde(default)]
    dir: bool,
    ttl: Option<i64>,
    #[serde(rename = "modifiedIndex", default)]
    modified_index: u64,
    #[serde(default)]
    nodes: Vec<RawNode>,
}

/// What one request returned: status, `X-Etcd-Index`, the parsed body, the endpoint.
struct Reply {
    index: u64,
    answer: Answer,
    endpoint: String,
}

impl V2Client {
    /// A client of `endpoints` (URLs such as `http://127.0.0.1:4001`): connections must be
    /// made within `timeouts.connect`, each request answered within `timeouts.request` (both
    /// capped at [`super::CALL_CAP`]).
    pub fn new(endpoints: &[String], timeouts: &TimeoutSettings) -> Self {
        let (connect, request) = deadlines(timeouts);
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .tcp_keepalive(KEEPALIVE)
            .build()
            .expect("an HTTP client without TLS always builds");
        Self {
            http,
            endpoints: Arc::new(endpoints.to_vec()),
            current: Arc::new(AtomicUsize::new(0)),
            request,
        }
    }

    /// Sends one request, failing over to the next endpoint on connection errors only.
    async fn send(
        &self,
        method: reqwest::Method,
        key: &str,
        query: &str,
        body: Option<String>,
        action: &'static str,
    ) -> Result<Reply, EtcdError> {
        let reply = self.send_polling(method, key, query, body, action, false);
        Ok(reply.await?.expect("only polls time out quietly"))
    }

    /// Like [`Self::send`]; with `poll` (a watch), the body may take [`WATCH_POLL`] and one
    /// that does not come in that time gives `None` (no event), not an error. The answer's
    /// headers are always due within the request deadline.
    async fn send_polling(
        &self,
        method: reqwest::Method,
        key: &str,
        query: &str,
        body: Option<String>,
        action: &'static str,
        poll: bool,
    ) -> Result<Option<Reply>, EtcdError> {
        let n = self.endpoints.len();
        let start = self.current.load(Ordering::Relaxed);
        let mut last = String::new();
        for i in 0..n {
            let idx = (start + i) % n;
            let endpoint = self.endpoints[idx].trim_end_matches('/');
            let url = format!(
                "{endpoint}/v2/keys{}{query}",
                utf8_percent_encode(key, PATH)
            );
            let mut request = self.http.request(method.clone(), &url);
            if let Some(body) = &body {
                request = request
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body.clone());
            }
            let response = match tokio::time::timeout(self.request, request.send()).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    last = format!("{endpoint}: {}", error_chain(&e));
                    continue;
                }
                Err(_) => {
                    last = format!("{endpoint}: no answer within {:?}", self.request);
                    continue;
                }
            };
            self.current.store(idx, Ordering::Relaxed);
            let index = response
                .headers()
                .get("x-etcd-index")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let body_deadline = if poll { WATCH_POLL } else { self.request };
            let answer: Answer = match tokio::time::timeout(body_deadline, response.json()).await {
                Ok(Ok(a)) => a,
                Err(_) if poll => return Ok(None),
                Err(_) => {
                    return Err(EtcdError::Protocol {
                        endpoint: endpoint.into(),
                        action,
                        key: key.into(),
                        detail: format!(
                            "the answer stopped (not complete within {body_deadline:?})"
                        ),
                    })
                }
                Ok(Err(e)) => {
                    return Err(EtcdError::Protocol {
                        endpoint: endpoint.into(),
                        action,
                        key: key.into(),
                        detail: format!("the body is not etcd's JSON ({})", error_chain(&e)),
                    })
                }
            };
            return Ok(Some(Reply {
                index,
                answer,
                endpoint: endpoint.into(),
            }));
        }
        Err(EtcdError::Unreachable {
            endpoints: join_endpoints(&self.endpoints),
            action,
            key: key.into(),
            detail: last,
        })
    }

    /// Every node under `prefix`, directories included, sorted by key.
    pub async fn get_prefix(&self, prefix: &str) -> Result<Listing, EtcdError> {
        let key = prefix.trim_end_matches('/');
        let key = if key.is_empty() { "/" } else { key };
        let reply = self
            .send(
                reqwest::Method::GET,
                key,
                "?recursive=true&sorted=true",
                None,
                "read",
            )
            .await?;
        let mut listing = Listing {
            nodes: Vec::new(),
            index: reply.index,
        };
        match (reply.answer.error_code, reply.answer.node) {
            (Some(KEY_NOT_FOUND), _) => {}
            (Some(code), _) => {
                return Err(refused(
                    &reply.endpoint,
                    "read",
                    key,
                    code,
                    reply.answer.message,
                ))
            }
            (None, Some(node)) => flatten(node, &mut listing.nodes),
            (None, None) => {}
        }
        listing.nodes.retain(|n| n.key != "/");
        Ok(listing)
    }

    /// Starts watching `prefix` for changes after `index`.
    pub fn watch(&self, prefix: &str, index: u64) -> V2Watch {
        V2Watch {
            client: self.clone(),
            prefix: prefix.trim_end_matches('/').to_string(),
            wait_index: index + 1,
        }
    }

    /// Sets a key, with a TTL when given.
    pub async fn put(&self, key: &str, value: &[u8], ttl: Option<i64>) -> Result<(), EtcdError> {
        let text = String::from_utf8_lossy(value);
        let mut body = format!("value={}", form(&text));
        if let Some(ttl) = ttl {
            body.push_str(&format!("&ttl={ttl}"));
        }
        self.expect_ok(reqwest::Method::PUT, key, "", Some(body), "write")
            .await
    }

    /// Creates a directory (an existing one is fine).
    pub async fn make_dir(&self, key: &str) -> Result<(), EtcdError> {
        let reply = self
            .send(
                reqwest::Method::PUT,
                key,
                "",
                Some("dir=true".into()),
                "create directory",
            )
            .await?;
        match reply.answer.error_code {
            None | Some(102) => Ok(()),
            Some(code) => Err(refused(
                &reply.endpoint,
                "create directory",
                key,
                code,
                reply.answer.message,
            )),
        }
    }

    /// Deletes a key (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), EtcdError> {
        let reply = self
            .send(reqwest::Method::DELETE, key, "", None, "delete")
            .await?;
        match reply.answer.error_code {
            None | Some(KEY_NOT_FOUND) => Ok(()),
            Some(code) => Err(refused(
                &reply.endpoint,
                "delete",
                key,
                code,
                reply.answer.message,
            )),
        }
    }

    async fn expect_ok(
        &self,
        method: reqwest::Method,
        key: &str,
        query: &str,
        body: Option<String>,
        action: &'static str,
    ) -> Result<(), EtcdError> {
        let reply = self.send(method, key, query, body, action).await?;
        match reply.answer.error_code {
            None => Ok(()),
            Some(code) => Err(refused(
                &reply.endpoint,
                action,
                key,
                code,
                reply.answer.message,
            )),
        }
    }

    /// Creates `key` with a TTL only if it does not exist (`prevExist=false`).
    pub async fn acquire(
        &self,
        key: &str,
        value: &str,
        ttl: i64,
    ) -> Result<Option<Lease>, EtcdError> {
        let body = format!("value={}&ttl={ttl}&prevExist=false", form(value));
        let reply = self
            .send(reqwest::Method::PUT, key, "", Some(body), "acquire")
            .await?;
        match reply.answer.error_code {
            None => Ok(Some(Lease {
                key: key.into(),
                value: value.into(),
                ttl_secs: ttl,
                id: 0,
            })),
            Some(NODE_EXISTS) => Ok(None),
            Some(code) => Err(refused(
                &reply.endpoint,
                "acquire",
                key,
                code,
                reply.answer.message,
            )),
        }
    }

    /// Sets `key` to `value` only when it does not exist (`prevExist=false`, as `etcdctl mk`);
    /// `false` when it was there already.
    pub async fn create(&self, key: &str, value: &str) -> Result<bool, EtcdError> {
        let body = format!("value={}&prevExist=false", form(value));
        let reply = self
            .send(reqwest::Method::PUT, key, "", Some(body), "create")
            .await?;
        match reply.answer.error_code {
            None => Ok(true),
            Some(NODE_EXISTS) => Ok(false),
            Some(code) => Err(refused(
                &reply.endpoint,
                "create",
                key,
                code,
                reply.answer.message,
            )),
        }
    }

    /// Refreshes the TTL of a held key, only while it still holds our value (`prevValue`).
    pub async fn refresh(&self, lease: &Lease) -> Result<bool, EtcdError> {
        let body = format!(
            "ttl={}&refresh=true&prevExist=true&prevValue={}",
            lease.ttl_secs,
            form(&lease.value)
        );
        let reply = self
            .send(reqwest::Method::PUT, &lease.key, "", Some(body), "refresh")
            .await?;
        match reply.answer.error_code {
            None => Ok(true),
            Some(KEY_NOT_FOUND | COMPARE_FAILED) => Ok(false),
            Some(code) => Err(refused(
                &reply.endpoint,
                "refresh",
                &lease.key,
                code,
                reply.answer.message,
            )),
        }
    }
}

/// A v2 watch: long-polls with `wait=true&recursive=true&waitIndex=N`.
pub struct V2Watch {
    client: V2Client,
    prefix: String,
    wait_index: u64,
}

impl V2Watch {
    /// Waits for the next change; on "index cleared" (401) re-reads and reports a resync.
    pub async fn next(&mut self) -> Result<WatchEvent, EtcdError> {
        loop {
            let query = format!("?wait=true&recursive=true&waitIndex={}", self.wait_index);
            let key = if self.prefix.is_empty() {
                "/"
            } else {
                &self.prefix
            };
            let Some(reply) = self
                .client
                .send_polling(reqwest::Method::GET, key, &query, None, "watch", true)
                .await?
            else {
                continue;
            };
            match (reply.answer.error_code, reply.answer.node) {
                (Some(INDEX_CLEARED), _) => {
                    let listing = self.client.get_prefix(key).await?;
                    self.wait_index = listing.index + 1;
                    return Ok(WatchEvent::Resync);
                }
                (Some(code), _) => {
                    return Err(refused(
                        &reply.endpoint,
                        "watch",
                        key,
                        code,
                        reply.answer.message,
                    ))
                }
                (None, Some(node)) => {
                    self.wait_index = node.modified_index.max(self.wait_index) + 1;
                    return Ok(WatchEvent::Changed(vec![node.key.unwrap_or_default()]));
                }
                (None, None) => continue,
            }
        }
    }
}

fn flatten(node: RawNode, out: &mut Vec<Node>) {
    let key = node.key.unwrap_or_else(|| "/".into());
    out.push(Node {
        key,
        value: node.value.unwrap_or_default().into_bytes(),
        ttl: node.ttl,
        dir: node.dir,
    });
    for child in node.nodes {
        flatten(child, out);
    }
}

fn refused(
    endpoint: &str,
    action: &'static str,
    key: &str,
    code: i64,
    message: Option<String>,
) -> EtcdError {
    EtcdError::Refused {
        endpoint: endpoint.into(),
        action,
        key: key.into(),
        code,
        message: message.unwrap_or_default(),
    }
}

fn form(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
#[path = "v2_tests.rs"]
mod tests;
