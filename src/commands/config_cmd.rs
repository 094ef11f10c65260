//! `deis-backup config show|check`: the effective configuration, secrets redacted.

use super::{with_etcd_layer, EXIT_FAILURE};
use crate::config::{load_unvalidated, validate, LoadOptions, Sources};
use std::process::ExitCode;

/// Prints the effective configuration as TOML; problems go to stderr and make the exit non-zero.
/// Each value carries its source as a trailing comment (`# from etcd /deis/backup/...`).
pub fn config_show(options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let options = &with_etcd_layer(options)?;
    let settings = load_unvalidated(options)?;
    print!("{}", Sources::of(options).render(&settings));
    let problems = validate(&settings);
    for p in &problems {
        eprintln!("invalid: {p}");
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

/// Validates the configuration; exit 0 only when it is usable.
pub fn config_check(options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let options = &with_etcd_layer(options)?;
    let settings = load_unvalidated(options)?;
    let problems = validate(&settings);
    if problems.is_empty() {
        println!("configuration is valid");
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        eprintln!("invalid: {p}");
    }
    eprintln!("{} problem(s) found", problems.len());
    Ok(ExitCode::from(EXIT_FAILURE))
}
