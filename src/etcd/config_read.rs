//! Reading the configuration keys (ours under `PREFIX/backup/` and Deis's) from etcd.

use super::{EtcdClient, EtcdError, Node};
use crate::config::{map_etcd_keys, EtcdKeyProblem, EtcdLayer, DEIS_BUCKET_KEYS};

/// What was read: the mapped layer (or the problems with it) and the index it is from.
#[derive(Debug, Clone)]
pub struct ConfigRead {
    pub layer: Result<EtcdLayer, Vec<EtcdKeyProblem>>,
    /// The highest store index of the reads, to watch from.
    pub index: u64,
}

/// The prefixes and keys that hold configuration, under `prefix`.
pub fn config_prefixes(prefix: &str) -> Vec<String> {
    let root = prefix.trim_end_matches('/');
    let mut keys = vec![format!("{root}/backup"), format!("{root}/store/gateway")];
    keys.extend(DEIS_BUCKET_KEYS.iter().map(|k| format!("{root}/{k}")));
    keys
}

/// Reads every configuration key under `prefix` and maps it.
pub async fn read_config(client: &EtcdClient, prefix: &str) -> Result<ConfigRead, EtcdError> {
    let mut pairs = Vec::new();
    let mut index = 0;
    for key in config_prefixes(prefix) {
        let listing = client.get_prefix(&key).await?;
        index = index.max(listing.index);
        pairs.extend(
            listing
                .nodes
                .into_iter()
                .filter(|n: &Node| !n.dir)
                .map(|n| (n.key, n.value)),
        );
    }
    Ok(ConfigRead {
        layer: map_etcd_keys(prefix, &pairs),
        index,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn config_prefixes_cover_ours_and_the_deis_keys() {
        assert_eq!(
            super::config_prefixes("/deis/"),
            [
                "/deis/backup",
                "/deis/store/gateway",
                "/deis/database/bucketName",
                "/deis/registry/bucketName"
            ]
        );
    }
}
