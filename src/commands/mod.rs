//! The command-line edge: each subcommand loads what it needs, calls the library, and turns
//! the result into text and an exit code. `anyhow` lives here and nowhere deeper.

mod backup;
mod config_cmd;
mod list;
mod restore;
mod verify;

pub use backup::backup;
pub use config_cmd::{config_check, config_show};
pub use list::list;
pub use restore::{restore, RestoreArgs};
pub use verify::verify;

use crate::config::{self, LoadOptions, Settings};
use crate::store::{self, Destination};
use anyhow::Context;
use std::process::ExitCode;

/// Exit code of a run that failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a command or job that this version does not provide yet.
pub const EXIT_NOT_AVAILABLE: u8 = 2;

/// Says plainly that a subcommand arrives in a later version, and exits with code 2.
pub fn not_available(what: &str) -> ExitCode {
    eprintln!("deis-backup: {what} is not available in this version yet.");
    ExitCode::from(EXIT_NOT_AVAILABLE)
}

/// Loads and validates the configuration for a command.
pub fn load_settings(options: &LoadOptions) -> anyhow::Result<Settings> {
    let settings = config::load(options)?;
    if !settings.etcd.endpoints.is_empty() {
        tracing::warn!(
            endpoints = ?settings.etcd.endpoints,
            "Reading configuration from etcd is not available in this version yet; using defaults, file, environment and flags only."
        );
    }
    Ok(settings)
}

/// Opens the configured destination.
pub fn open_destination(settings: &Settings) -> anyhow::Result<Box<dyn Destination>> {
    store::open_destination(settings).context("cannot open the backup destination")
}

/// Opens the configured destination, creating a missing S3 bucket when asked to.
pub fn open_destination_creating(
    settings: &Settings,
    create_bucket: bool,
) -> anyhow::Result<Box<dyn Destination>> {
    store::open_destination_with(settings, store::OpenOptions { create_bucket })
        .context("cannot open the backup destination")
}

/// `1536` -> `1.5 KiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_bytes_picks_a_unit() {
        assert_eq!(super::human_bytes(512), "512 B");
        assert_eq!(super::human_bytes(1536), "1.5 KiB");
        assert_eq!(super::human_bytes(3 << 30), "3.0 GiB");
    }
}
