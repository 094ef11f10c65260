//! Who and where this process is: the host name for manifests, and a writer identity that
//! tells this process apart from every other one, on this host or another.

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// This host's name, for manifests and logs.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// Identifies one running process beyond host name and pid: two hosts may share a name and
/// containers share pid numbers, so it adds the kernel's boot id, the process's start time
/// (in clock ticks since boot) and a random instance id drawn at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub host: String,
    pub pid: u32,
    /// `/proc/sys/kernel/random/boot_id`: differs between hosts and between boots.
    #[serde(default)]
    pub boot_id: String,
    /// Field 22 of `/proc/self/stat`: a reused pid has another start time.
    #[serde(default)]
    pub start_ticks: u64,
    /// Random, drawn once per process.
    #[serde(default)]
    pub instance: String,
}

impl ProcessIdentity {
    /// This process.
    pub fn current() -> &'static ProcessIdentity {
        static CURRENT: OnceLock<ProcessIdentity> = OnceLock::new();
        CURRENT.get_or_init(|| ProcessIdentity {
            host: host_name(),
            pid: std::process::id(),
            boot_id: boot_id(),
            start_ticks: start_ticks(std::process::id()).unwrap_or(0),
            instance: random_hex(8),
        })
    }

    /// True when `self` is provably a live process on this very host and boot: same boot id,
    /// and a process with that pid and start time exists here. `false` means "not known to
    /// be alive here", not "dead": a writer on another host is judged by its heartbeat.
    pub fn is_alive_here(&self) -> bool {
        let here = Self::current();
        if self.boot_id.is_empty() || self.boot_id != here.boot_id {
            return false;
        }
        if self.pid == here.pid && self.instance == here.instance {
            return true;
        }
        start_ticks(self.pid).is_some_and(|t| t == self.start_ticks)
    }

    /// Same host and boot as this process (so its liveness can be checked locally).
    pub fn is_on_this_boot(&self) -> bool {
        !self.boot_id.is_empty() && self.boot_id == Self::current().boot_id
    }

    /// `host/pid/instance`, for leader keys and messages (no secret).
    pub fn label(&self) -> String {
        format!("{}/{}/{}", self.host, self.pid, self.instance)
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The start time of process `pid` in clock ticks since boot, `None` when there is none.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) is in parentheses and may hold spaces: count after it
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// `n` random bytes as hex, from the kernel's generator (falls back to time and pid).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let read = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if read.is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8;
        }
    }
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_stranger_is_not() {
        let me = ProcessIdentity::current().clone();
        assert!(me.is_alive_here());
        assert!(!me.boot_id.is_empty() && me.start_ticks > 0);
        let reused_pid = ProcessIdentity {
            start_ticks: me.start_ticks + 1,
            instance: "other".into(),
            ..me.clone()
        };
        assert!(!reused_pid.is_alive_here(), "same pid, other start time");
        let other_host = ProcessIdentity {
            boot_id: "another-boot".into(),
            ..me.clone()
        };
        assert!(!other_host.is_alive_here(), "same pid on another host");
        assert_eq!(random_hex(4).len(), 8);
    }
}
