//! Who counts as a dead writer: what a writer records in its in-progress marker, and the pure
//! rule a sweep applies to it (the sweep reads the marker, the writer's heartbeat rewrites it).

use crate::util::ProcessIdentity;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// A marker not refreshed for this long belongs to a dead writer (ten missed heartbeats): the
/// rule for writers whose process this sweep cannot see (another host, boot or container).
pub const STALE_AFTER: Duration = Duration::minutes(10);
/// The staleness rule for markers of older versions (host and pid only), which refreshed
/// their marker at most every 15 minutes and only on a part upload, and for unreadable ones.
pub const LEGACY_STALE_AFTER: Duration = Duration::hours(24);
/// How often a live writer's heartbeat task rewrites its marker, uploading or not.
pub const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// What a writer records in its in-progress marker: who it is (host, pid, boot id, process
/// start time, instance), in which pid namespace, and since when. Markers of older versions
/// have `host`, `pid` and `started_at` only; the other fields then read as empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterMarker {
    #[serde(flatten)]
    pub process: ProcessIdentity,
    /// `/proc/self/ns/pid` (e.g. `pid:[4026531836]`): containers of one host share its boot
    /// id but not its pid numbers.
    #[serde(default)]
    pub pid_namespace: String,
    pub started_at: DateTime<Utc>,
}

impl WriterMarker {
    /// The marker of this process, starting to write a set now.
    pub fn this_process() -> Self {
        Self {
            process: ProcessIdentity::current().clone(),
            pid_namespace: pid_namespace(),
            started_at: Utc::now(),
        }
    }
}

/// This process's pid namespace, `""` when `/proc` does not tell.
fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|link| link.display().to_string())
        .unwrap_or_default()
}

/// Where a sweep runs: it can check a writer's process itself only when the writer ran on the
/// same boot (host) and in the same pid namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vantage {
    pub boot_id: String,
    pub pid_namespace: String,
}

impl Vantage {
    /// This process's vantage point.
    pub fn here() -> Self {
        Self {
            boot_id: ProcessIdentity::current().boot_id.clone(),
            pid_namespace: pid_namespace(),
        }
    }

    /// Whether `writer`'s process can be looked up from here (its pid means the same here).
    fn sees(&self, writer: &WriterMarker) -> bool {
        !writer.process.boot_id.is_empty()
            && !writer.pid_namespace.is_empty()
            && writer.process.boot_id == self.boot_id
            && writer.pid_namespace == self.pid_namespace
    }
}

/// A marker as found at the destination.
#[derive(Debug, Clone)]
pub struct FoundMarker {
    /// `None` when the body is not a marker we can read.
    pub writer: Option<WriterMarker>,
    /// When the marker was last written (server time): creation or the last heartbeat.
    pub last_modified: DateTime<Utc>,
}

/// Whether the writer of a set may still be running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    Alive,
    Dead(&'static str),
}

/// The dead-writer rule. A set's writer is dead when
/// 1. its in-progress marker is missing (a writer writes its marker before anything else and
///    deletes it only after the manifest, so a set or upload without one was left by a writer
///    that is gone), or
/// 2. the marker names a process this sweep can see (same boot id and pid namespace) and
///    `is_alive` says no process with that pid and start time runs here (the host name is
///    not compared: two hosts may share one), or
/// 3. the marker names a process elsewhere and was not rewritten for [`STALE_AFTER`] (a live
///    writer's heartbeat rewrites it every [`HEARTBEAT_EVERY`]), or
/// 4. the marker is of an older version (host and pid only) or unreadable, and was not
///    rewritten for [`LEGACY_STALE_AFTER`].
///
/// Otherwise the writer is taken to be alive and its set and uploads are left alone.
pub fn writer_state(
    marker: Option<&FoundMarker>,
    here: &Vantage,
    is_alive: impl Fn(&ProcessIdentity) -> bool,
    now: DateTime<Utc>,
) -> Writer {
    let Some(marker) = marker else {
        return Writer::Dead("no in-progress marker");
    };
    let age = now - marker.last_modified;
    match &marker.writer {
        Some(w) if here.sees(w) => {
            if is_alive(&w.process) {
                Writer::Alive
            } else {
                Writer::Dead("its process is no longer running on this host")
            }
        }
        Some(w) if !w.process.boot_id.is_empty() => {
            if age > STALE_AFTER {
                Writer::Dead("its in-progress marker was not refreshed for 10 minutes")
            } else {
                Writer::Alive
            }
        }
        _ if age > LEGACY_STALE_AFTER => {
            Writer::Dead("its in-progress marker (of an older version) is older than 24 hours")
        }
        _ => Writer::Alive,
    }
}

/// The rule for a multipart upload outside any set folder (no marker tells of its writer):
/// dead once older than [`LEGACY_STALE_AFTER`].
pub fn loose_upload_is_dead(initiated: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now - initiated > LEGACY_STALE_AFTER
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(host: &str, boot: &str, ns: &str, pid: u32, start: u64) -> WriterMarker {
        WriterMarker {
            process: ProcessIdentity {
                host: host.into(),
                pid,
                boot_id: boot.into(),
                start_ticks: start,
                instance: "i".into(),
            },
            pid_namespace: ns.into(),
            started_at: Utc::now(),
        }
    }

    /// Judges `w` with a marker `age_min` minutes old, seen from boot `b1`, namespace `ns1`,
    /// where only the process with pid 42 started at tick 100 is running.
    fn judge(w: Option<WriterMarker>, age_min: i64) -> Writer {
        let now = Utc::now();
        let marker = FoundMarker {
            writer: w,
            last_modified: now - Duration::minutes(age_min),
        };
        let here = Vantage {
            boot_id: "b1".into(),
            pid_namespace: "ns1".into(),
        };
        let alive = |p: &ProcessIdentity| p.pid == 42 && p.start_ticks == 100;
        writer_state(Some(&marker), &here, alive, now)
    }

    fn dead(w: Writer) -> bool {
        matches!(w, Writer::Dead(_))
    }

    #[test]
    fn a_missing_marker_is_a_dead_writer() {
        let here = Vantage {
            boot_id: "b1".into(),
            pid_namespace: "ns1".into(),
        };
        assert!(dead(writer_state(None, &here, |_| true, Utc::now())));
    }

    #[test]
    fn a_writer_this_sweep_can_see_is_judged_by_its_process_not_its_age() {
        assert_eq!(
            judge(Some(writer("h", "b1", "ns1", 42, 100)), 0),
            Writer::Alive
        );
        // alive even with an old marker: the process provably runs
        assert_eq!(
            judge(Some(writer("h", "b1", "ns1", 42, 100)), 600),
            Writer::Alive
        );
        // gone, with a fresh marker: dead at once
        assert!(dead(judge(Some(writer("h", "b1", "ns1", 7, 100)), 0)));
        // the same pid reused by another process (other start time): dead
        assert!(dead(judge(Some(writer("h", "b1", "ns1", 42, 99)), 0)));
        // the host name plays no part
        assert!(dead(judge(Some(writer("other", "b1", "ns1", 7, 100)), 0)));
    }

    #[test]
    fn a_writer_elsewhere_is_alive_while_its_marker_is_fresh() {
        // same host name, other boot id, a pid that looks dead here: still alive while fresh
        assert_eq!(
            judge(Some(writer("h", "b2", "ns1", 7, 1)), 9),
            Writer::Alive
        );
        assert!(dead(judge(Some(writer("h", "b2", "ns1", 7, 1)), 11)));
        // same boot, another pid namespace (another container): judged by age as well
        assert_eq!(
            judge(Some(writer("h", "b1", "ns2", 7, 1)), 9),
            Writer::Alive
        );
        assert!(dead(judge(Some(writer("h", "b1", "ns2", 42, 100)), 11)));
        // a new writer that could not read its pid namespace is judged by age too
        assert_eq!(judge(Some(writer("h", "b1", "", 7, 1)), 9), Writer::Alive);
    }

    #[test]
    fn old_format_and_unreadable_markers_are_judged_by_age_only() {
        let old: WriterMarker = serde_json::from_str(
            r#"{"host": "h", "pid": 7, "started_at": "2026-11-25T03:45:00Z"}"#,
        )
        .unwrap();
        assert_eq!(
            (old.process.boot_id.as_str(), old.pid_namespace.as_str()),
            ("", "")
        );
        assert_eq!(judge(Some(old.clone()), 23 * 60), Writer::Alive);
        assert!(dead(judge(Some(old), 25 * 60)));
        assert_eq!(
            judge(None, 23 * 60),
            Writer::Alive,
            "unreadable body, fresh"
        );
        assert!(dead(judge(None, 25 * 60)));
    }

    #[test]
    fn this_process_sees_itself_alive() {
        let me = WriterMarker::this_process();
        assert!(
            me.pid_namespace.starts_with("pid:["),
            "{}",
            me.pid_namespace
        );
        let marker = FoundMarker {
            writer: Some(me),
            last_modified: Utc::now() - Duration::hours(48),
        };
        let verdict = writer_state(
            Some(&marker),
            &Vantage::here(),
            ProcessIdentity::is_alive_here,
            Utc::now(),
        );
        assert_eq!(verdict, Writer::Alive);
    }

    #[test]
    fn markers_round_trip_with_the_whole_identity() {
        let w = writer("h", "b1", "ns1", 42, 100);
        let json = serde_json::to_value(&w).unwrap();
        assert_eq!(json["host"], "h");
        assert_eq!(json["boot_id"], "b1");
        assert_eq!(json["start_ticks"], 100);
        assert_eq!(json["pid_namespace"], "ns1");
        assert_eq!(serde_json::from_value::<WriterMarker>(json).unwrap(), w);
    }

    #[test]
    fn loose_uploads_die_of_age() {
        let now = Utc::now();
        assert!(loose_upload_is_dead(now - Duration::hours(25), now));
        assert!(!loose_upload_is_dead(now - Duration::hours(1), now));
    }
}
