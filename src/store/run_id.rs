//! Backup set identity: the job kind and a sortable UTC run id such as `20261125T034500Z-3fa9c1`.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;

/// The four backup jobs of a Deis v1 cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Gateway,
    Volume,
    Database,
    Etcd,
}

impl JobKind {
    pub const ALL: [JobKind; 4] = [
        JobKind::Gateway,
        JobKind::Volume,
        JobKind::Database,
        JobKind::Etcd,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Gateway => "gateway",
            JobKind::Volume => "volume",
            JobKind::Database => "database",
            JobKind::Etcd => "etcd",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|j| j.as_str() == s)
            .ok_or_else(|| {
                format!("unknown job {s:?}; expected one of gateway, volume, database, etcd")
            })
    }
}

const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// A run id: UTC start time to the second, then a short random suffix so that two runs in the
/// same second never collide. Lexical order is chronological order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RunId(String);

impl RunId {
    /// A fresh id for a run starting at `started`.
    pub fn new(started: DateTime<Utc>) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(std::process::id().to_le_bytes());
        hasher.update(
            started
                .timestamp_nanos_opt()
                .unwrap_or_default()
                .to_le_bytes(),
        );
        hasher.update(format!("{:?}", std::thread::current().id()).as_bytes());
        hasher.update(std::time::Instant::now().elapsed().as_nanos().to_le_bytes());
        let suffix = &hex::encode(hasher.finalize())[..6];
        Self(format!("{}-{suffix}", started.format(TIME_FORMAT)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The start time encoded in the id.
    pub fn started(&self) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(&self.0[..16], TIME_FORMAT)
            .map(|t| t.and_utc())
            .unwrap_or_default()
    }
}

impl FromStr for RunId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (time, suffix) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not a run id"))?;
        let time_ok = time.len() == 16 && NaiveDateTime::parse_from_str(time, TIME_FORMAT).is_ok();
        let suffix_ok =
            (4..=16).contains(&suffix.len()) && suffix.chars().all(|c| c.is_ascii_hexdigit());
        if time_ok && suffix_ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a run id; expected e.g. 20261125T034500Z-3fa9c1"
            ))
        }
    }
}

impl TryFrom<String> for RunId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> Self {
        id.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One backup set: a job's run. Written as `<job>/<run-id>/` at the destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetRef {
    pub job: JobKind,
    pub run_id: RunId,
}

impl SetRef {
    /// The set's folder relative to the destination root.
    pub fn dir(&self) -> String {
        format!("{}/{}", self.job, self.run_id)
    }
}

impl fmt::Display for SetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.job, self.run_id)
    }
}

impl FromStr for SetRef {
    type Err = String;

    /// Parses `job/run-id`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (job, run) = s.split_once('/').ok_or_else(|| {
            format!("{s:?} is not a backup set; expected JOB/RUN-ID as `list` shows it")
        })?;
        Ok(SetRef {
            job: job.parse()?,
            run_id: run.parse()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn run_ids_sort_by_time_and_round_trip() {
        let a = RunId::new(Utc.with_ymd_and_hms(2026, 11, 25, 3, 45, 0).unwrap());
        let b = RunId::new(Utc.with_ymd_and_hms(2026, 11, 25, 3, 45, 1).unwrap());
        assert!(a < b);
        assert!(a.as_str().starts_with("20261125T034500Z-"));
        assert_eq!(a.as_str().parse::<RunId>().unwrap(), a);
        assert_eq!(
            a.started(),
            Utc.with_ymd_and_hms(2026, 11, 25, 3, 45, 0).unwrap()
        );
    }

    #[test]
    fn bad_run_ids_and_sets_are_rejected() {
        assert!("latest".parse::<RunId>().is_err());
        assert!("20261125T034500Z-zz".parse::<RunId>().is_err());
        assert!("volume".parse::<SetRef>().is_err());
        assert!("tape/20261125T034500Z-abcd".parse::<SetRef>().is_err());
        let set: SetRef = "volume/20261125T034500Z-abcd".parse().unwrap();
        assert_eq!(set.dir(), "volume/20261125T034500Z-abcd");
    }
}
