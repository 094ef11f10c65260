//! Unit tests of the v2 client's pure parts.

use super::*;

#[test]
fn keys_are_escaped_but_slashes_kept() {
    assert_eq!(
        utf8_percent_encode("/deis/a b/c?d", PATH).to_string(),
        "/deis/a%20b/c%3Fd"
    );
    assert_eq!(form("a&b=c d"), "a%26b%3Dc%20d");
}

#[test]
fn a_listing_flattens_directories_in_order() {
    let raw: Answer = serde_json::from_str(
        r#"{"action":"get","node":{"key":"/deis","dir":true,"nodes":[
            {"key":"/deis/a","value":"1","modifiedIndex":5},
            {"key":"/deis/d","dir":true,"nodes":[{"key":"/deis/d/x","value":"2","ttl":30}]}]}}"#,
    )
    .unwrap();
    let mut nodes = Vec::new();
    flatten(raw.node.unwrap(), &mut nodes);
    let keys: Vec<_> = nodes
        .iter()
        .map(|n| (n.key.as_str(), n.dir, n.ttl))
        .collect();
    assert_eq!(
        keys,
        [
            ("/deis", true, None),
            ("/deis/a", false, None),
            ("/deis/d", true, None),
            ("/deis/d/x", false, Some(30))
        ]
    );
}

#[test]
fn index_cleared_is_recognised() {
    let raw: Answer = serde_json::from_str(
        r#"{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [1008/7]","index":2007}"#,
    )
    .unwrap();
    assert_eq!(raw.error_code, Some(INDEX_CLEARED));
}
