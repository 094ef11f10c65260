//! The command-line edge: each subcommand loads what it needs, calls the library, and turns
//! the result into text and an exit code. `anyhow` lives here and nowhere deeper.

mod backup;
mod config_cmd;
mod list;
mod prune;
mod restore;
mod restore_finish;
mod run;
mod status;
mod verify;

pub use backup::backup;
pub use config_cmd::{config_check, config_show};
pub use list::list;
pub use prune::prune;
pub use restore::{restore, Force, RestoreArgs};
pub use restore_finish::restore_finish;
pub use run::run;
pub use status::status;
pub use verify::verify;

pub use crate::util::human_bytes;

use crate::config::{self, LoadOptions, Settings};
use crate::store::{self, Destination};
use anyhow::Context;

/// Exit code of a run that failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a command or job that this version does not provide yet.
pub const EXIT_NOT_AVAILABLE: u8 = 2;
/// Exit code of a run that kept its set with warnings that matter (e.g. an unreadable file).
pub const EXIT_PARTIAL: u8 = 3;

/// Loads and validates the configuration for a command (etcd included when configured).
pub fn load_settings(options: &LoadOptions) -> anyhow::Result<Settings> {
    let options = with_etcd_layer(options)?;
    Ok(config::load(&options)?)
}

/// `options` with the etcd layer read, when file, environment or flags name etcd endpoints.
/// Unknown keys under `PREFIX/backup/` are warned about; unusable values fail the load.
pub fn with_etcd_layer(options: &LoadOptions) -> anyhow::Result<LoadOptions> {
    let base = config::load_unvalidated(options)?;
    if base.etcd.endpoints.is_empty() {
        return Ok(options.clone());
    }
    let read = crate::runtime::block_on(async {
        let client = crate::etcd::EtcdClient::connect_with(&base.etcd, &base.timeouts).await?;
        crate::etcd::read_config(&client, &base.etcd.prefix).await
    })
    .context("cannot read the configuration from etcd")?;
    let layer = read.layer.map_err(config::ConfigError::Etcd)?;
    for warning in &layer.warnings {
        tracing::warn!("{warning}");
    }
    let mut options = options.clone();
    options.etcd = Some(layer);
    Ok(options)
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
