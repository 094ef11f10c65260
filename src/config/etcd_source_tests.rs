//! Unit tests of the etcd key mapping.

use super::*;

fn nodes(pairs: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_vec()))
        .collect()
}

fn value<'a>(layer: &'a EtcdLayer, key: &str) -> &'a toml::Value {
    &layer
        .get(key)
        .unwrap_or_else(|| panic!("{key} not set"))
        .value
}

#[test]
fn camel_case_twins_of_kebab_keys() {
    assert_eq!(camel_case("access-key"), "accessKey");
    assert_eq!(camel_case("keep-last"), "keepLast");
    assert_eq!(
        etcd_key_of("/deis", "destination.access-key"),
        "/deis/backup/destination/accessKey"
    );
    assert_eq!(
        etcd_key_of("/t/deis/", "retention.keep-last"),
        "/t/deis/backup/retention/keepLast"
    );
}

#[test]
fn our_keys_map_with_their_types() {
    let layer = map_etcd_keys(
        "/deis",
        &nodes(&[
            ("/deis/backup/schedule/volume", b"0 3 * * *\n"),
            ("/deis/backup/retention/keepLast", b" 5 "),
            ("/deis/backup/compression/level", b"7"),
            ("/deis/backup/gateway/buckets", b"a_b, c-d"),
            ("/deis/backup/destination/secretKey", b" s3cr3t "),
            ("/deis/backup/destination/region", b""),
            ("/deis/backup/database/execMode", b"user"),
            ("/deis/backup/destination/copyLimit", b"5242880"),
            (
                "/deis/backup/restore/controllerContainer",
                b"deis-controller-2",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(value(&layer, "schedule.volume").as_str(), Some("0 3 * * *"));
    assert_eq!(value(&layer, "retention.keep-last").as_integer(), Some(5));
    assert_eq!(value(&layer, "compression.level").as_integer(), Some(7));
    assert_eq!(
        value(&layer, "gateway.buckets"),
        &toml::Value::Array(vec!["a_b".into(), "c-d".into()])
    );
    assert_eq!(
        value(&layer, "destination.secret-key").as_str(),
        Some(" s3cr3t "),
        "secrets are taken as they are"
    );
    assert!(layer.get("destination.region").is_none(), "empty = unset");
    assert_eq!(
        value(&layer, "destination.copy-limit").as_str(),
        Some("5MiB")
    );
    assert!(layer.warnings.is_empty());
    let table = layer.to_table();
    assert_eq!(table["database"]["exec-mode"].as_str(), Some("user"));
    assert_eq!(
        table["restore"]["controller-container"].as_str(),
        Some("deis-controller-2")
    );
}

#[test]
fn deis_keys_feed_the_gateway_unless_ours_say_otherwise() {
    let deis: &[(&str, &[u8])] = &[
        ("/deis/store/gateway/accessKey", b"AK"),
        ("/deis/store/gateway/secretKey", b"SK"),
        ("/deis/store/gateway/host", b"10.0.0.5"),
        ("/deis/store/gateway/port", b"8888"),
        ("/deis/database/bucketName", b"db_wal"),
        ("/deis/registry/bucketName", b"registry"),
    ];
    let layer = map_etcd_keys("/deis", &nodes(deis)).unwrap();
    assert_eq!(
        value(&layer, "gateway.endpoint").as_str(),
        Some("http://10.0.0.5:8888")
    );
    assert_eq!(value(&layer, "gateway.secret-key").as_str(), Some("SK"));
    assert_eq!(
        value(&layer, "gateway.buckets"),
        &toml::Value::Array(vec!["db_wal".into(), "registry".into()])
    );
    assert!(layer.get("gateway.access-key").unwrap().secret);

    let mut ours = deis.to_vec();
    ours.push(("/deis/backup/gateway/buckets", b"only_this"));
    ours.push(("/deis/backup/gateway/endpoint", b"http://gw:80"));
    let layer = map_etcd_keys("/deis", &nodes(&ours)).unwrap();
    assert_eq!(
        value(&layer, "gateway.buckets"),
        &toml::Value::Array(vec!["only_this".into()])
    );
    assert_eq!(
        value(&layer, "gateway.endpoint").as_str(),
        Some("http://gw:80")
    );
}

#[test]
fn unknown_keys_are_warned_and_named_state_keys_are_not() {
    let layer = map_etcd_keys(
        "/deis",
        &nodes(&[
            ("/deis/backup/schedule/volum", b"x"),
            ("/deis/backup/leader", b"host-a"),
            ("/deis/backup/trigger/volume", b"1"),
            ("/deis/backup/status/volume", b"{}"),
            ("/deis/services/x", b"y"),
        ]),
    )
    .unwrap();
    assert_eq!(layer.warnings.len(), 1, "{:?}", layer.warnings);
    assert!(layer.warnings[0].contains("/deis/backup/schedule/volum"));
    assert!(layer.values.is_empty());
}

#[test]
fn bad_values_name_the_key_and_the_expected_type_never_a_secret() {
    let problems = map_etcd_keys(
        "/deis",
        &nodes(&[
            ("/deis/backup/retention/keepDaily", b"-1"),
            ("/deis/backup/compression/level", b"high"),
            ("/deis/backup/destination/secretKey", b"\xff\xfepw"),
            ("/deis/backup/gateway/signature", b"v5"),
        ]),
    )
    .unwrap_err();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 4, "{text:?}");
    assert!(
        text[0].contains("/deis/backup/retention/keepDaily") && text[0].contains("whole number")
    );
    assert!(text[1].contains("compression.level") && text[1].contains("\"high\""));
    assert!(text[2].contains("secretKey") && text[2].contains("not UTF-8"));
    assert!(!text[2].contains("pw"), "{}", text[2]);
    assert!(text[3].contains("v2, v4, auto"));
}

#[test]
fn the_watch_filter_knows_config_keys() {
    assert!(is_config_key("/deis", "/deis/backup/schedule/volume"));
    assert!(is_config_key("/deis", "/deis/store/gateway/secretKey"));
    assert!(is_config_key("/deis", "/deis/database/bucketName"));
    assert!(!is_config_key("/deis", "/deis/backup/status/volume"));
    assert!(!is_config_key("/deis", "/deis/services/app/x"));
    assert!(!is_config_key("/deis", "/deisx/backup/schedule/volume"));
}

#[test]
fn changed_keys_compare_real_values_and_debug_hides_secrets() {
    let a = map_etcd_keys(
        "/deis",
        &nodes(&[("/deis/backup/destination/secretKey", b"one")]),
    )
    .unwrap();
    let b = map_etcd_keys(
        "/deis",
        &nodes(&[("/deis/backup/destination/secretKey", b"two")]),
    )
    .unwrap();
    assert_eq!(a.changed_keys(&b), ["destination.secret-key"]);
    assert!(a.changed_keys(&a).is_empty());
    let shown = format!("{a:?}");
    assert!(!shown.contains("one") && shown.contains("***"), "{shown}");
}
