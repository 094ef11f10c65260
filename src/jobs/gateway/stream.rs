//! Reading a snapshot artifact as a stream: every object record is handed to a callback as
//! the JSON decoder reaches it, so no snapshot is ever held in memory whole. The prune's mark
//! and the gateway job's comparison with the previous snapshot both read snapshots this way.

use super::snapshot::SNAPSHOT_FORMAT;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use std::fmt;
use std::io::Read;
use std::marker::PhantomData;

/// What a streaming read does with the records it meets.
pub struct RecordVisitor<'a, R> {
    /// Whether the records of the bucket so named are wanted; the others are skipped unread.
    pub wants: &'a dyn Fn(&str) -> bool,
    /// Called with the bucket's name and each wanted record, in snapshot order; an `Err` ends
    /// the read with that message.
    pub record: &'a mut dyn FnMut(&str, R) -> Result<(), String>,
    /// Called after the last record of each wanted bucket; an `Err` ends the read there (a
    /// reader that wanted one bucket need not read the rest).
    pub bucket_done: &'a mut dyn FnMut(&str) -> Result<(), String>,
}

/// Reads a whole snapshot JSON document from `json`, visiting its records; returns its format
/// version. Any error means not every record was visited. A format newer than this build's is
/// an error as soon as it is read (before any record, in every snapshot this build writes).
pub fn visit_snapshot<R: DeserializeOwned>(
    json: impl Read,
    visitor: RecordVisitor<'_, R>,
) -> Result<u32, serde_json::Error> {
    let mut json = serde_json::Deserializer::from_reader(json);
    let version = SnapshotSeed(visitor).deserialize(&mut json)?;
    json.end()?;
    Ok(version)
}

/// The whole document: `format_version` and `buckets`, anything else skipped.
struct SnapshotSeed<'a, R>(RecordVisitor<'a, R>);

impl<'de, R: DeserializeOwned> DeserializeSeed<'de> for SnapshotSeed<'_, R> {
    type Value = u32;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, R: DeserializeOwned> Visitor<'de> for SnapshotSeed<'_, R> {
    type Value = u32;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a gateway snapshot")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<u32, A::Error> {
        let (mut version, mut buckets) = (None, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format_version" => {
                    let v: u32 = map.next_value()?;
                    if v > SNAPSHOT_FORMAT {
                        return Err(de::Error::custom(format!(
                            "format {v} is newer than {SNAPSHOT_FORMAT}"
                        )));
                    }
                    version = Some(v);
                }
                "buckets" => {
                    map.next_value_seed(Buckets(&mut self.0))?;
                    buckets = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !buckets {
            return Err(de::Error::missing_field("buckets"));
        }
        version.ok_or_else(|| de::Error::missing_field("format_version"))
    }
}

/// The `buckets` list.
struct Buckets<'v, 'a, R>(&'v mut RecordVisitor<'a, R>);

impl<'de, R: DeserializeOwned> DeserializeSeed<'de> for Buckets<'_, '_, R> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, R: DeserializeOwned> Visitor<'de> for Buckets<'_, '_, R> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of buckets")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Bucket(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// One bucket: `name`, then `objects` (in that order, as this build writes them).
struct Bucket<'v, 'a, R>(&'v mut RecordVisitor<'a, R>);

impl<'de, R: DeserializeOwned> DeserializeSeed<'de> for Bucket<'_, '_, R> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, R: DeserializeOwned> Visitor<'de> for Bucket<'_, '_, R> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a bucket of a gateway snapshot")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut name, mut objects) = (None::<String>, false);
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "name" => name = Some(map.next_value()?),
                "objects" => {
                    let Some(name) = name.as_deref() else {
                        return Err(de::Error::custom("a bucket's objects come before its name"));
                    };
                    if (self.0.wants)(name) {
                        map.next_value_seed(Records {
                            bucket: name,
                            visitor: &mut *self.0,
                        })?;
                        (self.0.bucket_done)(name).map_err(de::Error::custom)?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                    objects = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if objects {
            Ok(())
        } else {
            Err(de::Error::missing_field("objects"))
        }
    }
}

/// The `objects` of one wanted bucket, each handed to the callback.
struct Records<'v, 'a, R> {
    bucket: &'v str,
    visitor: &'v mut RecordVisitor<'a, R>,
}

impl<'de, R: DeserializeOwned> DeserializeSeed<'de> for Records<'_, '_, R> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, R: DeserializeOwned> Visitor<'de> for Records<'_, '_, R> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of object records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element_seed(PhantomData::<R>)? {
            (self.visitor.record)(self.bucket, record).map_err(de::Error::custom)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Key {
        key: String,
    }

    fn keys(json: &str, wanted: &str) -> Result<(u32, Vec<String>), serde_json::Error> {
        let mut seen = Vec::new();
        let version = visit_snapshot(
            json.as_bytes(),
            RecordVisitor {
                wants: &|b: &str| wanted == "*" || b == wanted,
                record: &mut |b: &str, r: Key| {
                    seen.push(format!("{b}/{}", r.key));
                    Ok(())
                },
                bucket_done: &mut |_: &str| Ok(()),
            },
        )?;
        Ok((version, seen))
    }

    const TWO: &str = r#"{"format_version":1,"buckets":[
        {"name":"a","objects":[{"key":"1"},{"key":"2"}]},
        {"name":"b","extra":[1,2],"objects":[{"key":"3"}]}],"later":{"x":1}}"#;

    #[test]
    fn records_stream_by_in_order_and_unwanted_buckets_are_skipped() {
        assert_eq!(
            keys(TWO, "*").unwrap(),
            (1, vec!["a/1".into(), "a/2".into(), "b/3".into()])
        );
        assert_eq!(keys(TWO, "b").unwrap().1, vec!["b/3".to_string()]);
        assert!(keys(TWO, "none").unwrap().1.is_empty());
    }

    #[test]
    fn damaged_or_newer_snapshots_are_errors() {
        for bad in [
            &TWO[..TWO.len() - 4],
            &TWO.replace("\"objects\"", "\"things\""),
            &TWO.replace("format_version\":1", "format_version\":2"),
            &TWO.replace(r#""name":"a","objects""#, r#""objects""#),
            r#"{"buckets":[]}"#,
            r#"{"format_version":1}"#,
            &format!("{TWO} trailing"),
        ] {
            assert!(keys(bad, "*").is_err(), "{bad}");
        }
        let late_name = TWO.replace(
            r#""name":"a","objects":[{"key":"1"},{"key":"2"}]"#,
            r#""objects":[],"name":"a""#,
        );
        assert!(keys(&late_name, "*").is_err());
    }

    #[test]
    fn a_callback_error_ends_the_read() {
        let err = visit_snapshot(
            TWO.as_bytes(),
            RecordVisitor {
                wants: &|_: &str| true,
                record: &mut |_: &str, r: Key| {
                    if r.key == "2" {
                        Err("stop here".into())
                    } else {
                        Ok(())
                    }
                },
                bucket_done: &mut |_: &str| Ok(()),
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("stop here"), "{err}");
        // a reader done with its bucket stops before the damage further on
        let mut seen = 0;
        let err = visit_snapshot(
            TWO.replace("\"key\":\"3\"", "\"key\":").as_bytes(),
            RecordVisitor {
                wants: &|b: &str| b == "a",
                record: &mut |_: &str, _: Key| {
                    seen += 1;
                    Ok(())
                },
                bucket_done: &mut |b: &str| Err(format!("done with {b}")),
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("done with a"), "{err}");
        assert_eq!(seen, 2);
    }
}
