//! A string that must never be shown: it prints and serializes as `***`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The text shown wherever a secret would appear.
pub const REDACTED: &str = "***";

/// A credential (access key, secret key, password). `Debug`, `Display` and `Serialize` all
/// give `***`; only [`Secret::expose`] gives the value, for the one place that uses it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value. Call it only where the value is handed to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// Whether a configuration key (any spelling: `secret-key`, `SECRET_KEY`, `secretKey`) holds a
/// secret, so that messages about its value must not quote the value.
pub fn is_secret_key(key: &str) -> bool {
    let folded: String = key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    ["accesskey", "secretkey", "password"]
        .iter()
        .any(|s| folded.ends_with(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_recognised_in_every_spelling() {
        for key in [
            "destination.secret-key",
            "DEIS_BACKUP_GATEWAY__ACCESS_KEY",
            "secretKey",
            "password",
        ] {
            assert!(is_secret_key(key), "{key}");
        }
        assert!(!is_secret_key("destination.url"));
    }

    #[test]
    fn secret_never_shows_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
    }
}
