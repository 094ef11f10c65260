//! The leader-election primitives over both APIs against real etcd: a key taken only when
//! free, kept alive by its holder, lost when it goes; and create-if-absent. Needs the test bed (`bash tests/run.sh`).

mod etcd_support;
mod support;

use deis_backup::config::EtcdApi;
use deis_backup::runtime::block_on;
use etcd_support::*;

fn election(api: EtcdApi, flag: &str) {
    let c = client(&endpoint(), api);
    let key = format!("{}/backup/leader", unique_prefix(&format!("leader-{flag}")));
    let lease = block_on(c.acquire(&key, "host-a", 10))
        .unwrap()
        .expect("a free key is taken");
    assert!(
        block_on(c.acquire(&key, "host-b", 10)).unwrap().is_none(),
        "a held key is not"
    );
    assert!(
        block_on(c.refresh(&lease)).unwrap(),
        "the holder keeps it alive"
    );
    let listing = block_on(c.get_prefix(&key)).unwrap();
    let node = listing.nodes.iter().find(|n| n.key == key).unwrap();
    assert_eq!(node.value, b"host-a");
    assert!(node.ttl.is_some_and(|t| t > 0 && t <= 10), "{:?}", node.ttl);

    block_on(c.delete(&key)).unwrap();
    assert!(
        !block_on(c.refresh(&lease)).unwrap(),
        "a lost key is reported lost"
    );
    let b = block_on(c.acquire(&key, "host-b", 10))
        .unwrap()
        .expect("free again");
    assert!(
        !block_on(c.refresh(&lease)).unwrap(),
        "the old holder stays out"
    );
    assert!(block_on(c.refresh(&b)).unwrap());

    // create-if-absent (`etcdctl mk`): the first value stays
    let default = format!(
        "{}/backup/schedule/volume",
        unique_prefix(&format!("mk-{flag}"))
    );
    assert!(block_on(c.create(&default, "30 3 * * *")).unwrap());
    assert!(!block_on(c.create(&default, "0 0 * * *")).unwrap());
    let listing = block_on(c.get_prefix(&default)).unwrap();
    assert_eq!(listing.nodes[0].value, b"30 3 * * *");
}

#[test]
fn election_primitives_over_v2() {
    election(EtcdApi::V2, "v2");
}

#[test]
fn election_primitives_over_v3() {
    election(EtcdApi::V3, "v3");
}
