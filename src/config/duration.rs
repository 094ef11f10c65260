//! Durations in the configuration: `"90s"`, `"15m"`, `"6h"`, `"2d"`, or a bare number of seconds.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A configured duration; written back in its largest whole unit (`"6h"`, `"90s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

const UNITS: [(&str, u64); 4] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];

impl ConfigDuration {
    pub const fn secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub fn get(self) -> Duration {
        self.0
    }

    /// Parses `"90s"`, `"15m"`, `"6h"`, `"2d"`, `"250ms"` or a bare number of seconds.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || {
            format!("{text:?} is not a duration; expected a number with s, m, h or d, e.g. \"90s\" or \"6h\"")
        };
        if let Some(ms) = text.strip_suffix("ms") {
            let n: u64 = ms.trim().parse().map_err(|_| bad())?;
            return Ok(Self(Duration::from_millis(n)));
        }
        let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => text.split_at(i),
            None => (text, "s"),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        let (_, factor) = UNITS
            .iter()
            .find(|(u, _)| *u == unit.trim())
            .ok_or_else(bad)?;
        n.checked_mul(*factor)
            .map(|s| Self(Duration::from_secs(s)))
            .ok_or_else(bad)
    }
}

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        if self.0.subsec_nanos() != 0 || secs == 0 {
            return write!(f, "{}ms", self.0.as_millis());
        }
        let (unit, factor) = UNITS
            .iter()
            .find(|(_, factor)| secs.is_multiple_of(*factor))
            .expect("every whole number of seconds has a unit");
        write!(f, "{}{unit}", secs / factor)
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(n) => Ok(Self::secs(n)),
            Raw::Text(text) => Self::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_print_in_the_largest_whole_unit() {
        for (text, secs, shown) in [
            ("90s", 90, "90s"),
            ("15m", 900, "15m"),
            ("6h", 21_600, "6h"),
            ("2d", 172_800, "2d"),
            ("120", 120, "2m"),
            (" 7200 ", 7_200, "2h"),
        ] {
            let d = ConfigDuration::parse(text).unwrap();
            assert_eq!(d.get(), Duration::from_secs(secs), "{text}");
            assert_eq!(d.to_string(), shown);
        }
        assert_eq!(
            ConfigDuration::parse("250ms").unwrap().get(),
            Duration::from_millis(250)
        );
        assert_eq!(ConfigDuration::parse("250ms").unwrap().to_string(), "250ms");
    }

    #[test]
    fn garbage_is_refused_with_the_value_named() {
        for bad in ["", "h", "6 hours", "-5s", "1.5h", "99999999999999999999d"] {
            let e = ConfigDuration::parse(bad).unwrap_err();
            assert!(e.contains("not a duration"), "{bad}: {e}");
        }
    }

    #[test]
    fn toml_takes_text_or_seconds() {
        #[derive(Deserialize)]
        struct T {
            a: ConfigDuration,
            b: ConfigDuration,
        }
        let t: T = toml::from_str("a = \"6h\"\nb = 30\n").unwrap();
        assert_eq!((t.a.get().as_secs(), t.b.get().as_secs()), (21_600, 30));
    }
}
