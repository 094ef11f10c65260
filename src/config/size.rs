//! Byte sizes in the configuration: `"5GiB"`, `"64MiB"`, `"512KiB"`, or a bare number of bytes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A configured size in bytes; written back in its largest whole binary unit (`"5GiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigSize(pub u64);

const UNITS: [(&str, u64); 5] = [
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("B", 1),
];

impl ConfigSize {
    pub const fn bytes(n: u64) -> Self {
        Self(n)
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// Parses a whole number with `B`, `KiB`, `MiB`, `GiB` or `TiB` (`"5 GiB"` too), or bare bytes.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "{text:?} is not a size; expected a whole number with B, KiB, MiB, GiB or TiB, e.g. \"5GiB\""
            )
        };
        let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => text.split_at(i),
            None => (text, "B"),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        let (_, factor) = UNITS
            .iter()
            .find(|(u, _)| *u == unit.trim())
            .ok_or_else(bad)?;
        n.checked_mul(*factor).map(Self).ok_or_else(bad)
    }
}

impl fmt::Display for ConfigSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, factor) = UNITS
            .iter()
            .find(|(_, factor)| self.0 != 0 && self.0.is_multiple_of(*factor))
            .unwrap_or(&("B", 1));
        write!(f, "{}{unit}", self.0 / factor)
    }
}

impl Serialize for ConfigSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ConfigSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bytes(n) => Ok(Self(n)),
            Raw::Text(text) => Self::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units_and_print_in_the_largest_whole_unit() {
        for (text, bytes, shown) in [
            ("5GiB", 5 << 30, "5GiB"),
            ("5 MiB", 5 << 20, "5MiB"),
            ("1536KiB", 1536 << 10, "1536KiB"),
            ("5242880", 5 << 20, "5MiB"),
            ("1000", 1000, "1000B"),
            ("0", 0, "0B"),
            ("2TiB", 2 << 40, "2TiB"),
        ] {
            let s = ConfigSize::parse(text).unwrap();
            assert_eq!(s.get(), bytes, "{text}");
            assert_eq!(s.to_string(), shown, "{text}");
        }
    }

    #[test]
    fn garbage_is_refused_with_the_value_named() {
        for bad in [
            "",
            "GiB",
            "5 gigs",
            "-5MiB",
            "1.5GiB",
            "5GB",
            "99999999999TiB",
        ] {
            let e = ConfigSize::parse(bad).unwrap_err();
            assert!(e.contains("not a size") && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn toml_takes_text_or_bytes() {
        #[derive(Deserialize)]
        struct T {
            a: ConfigSize,
            b: ConfigSize,
        }
        let t: T = toml::from_str("a = \"5MiB\"\nb = 1024\n").unwrap();
        assert_eq!((t.a.get(), t.b.get()), (5 << 20, 1024));
    }
}
