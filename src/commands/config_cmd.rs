//! `deis-backup config show|check`: the effective configuration, secrets redacted.

use super::EXIT_FAILURE;
use crate::config::{load_unvalidated, validate, LoadOptions};
use std::process::ExitCode;

/// Prints the effective configuration as TOML; problems go to stderr and make the exit non-zero.
pub fn config_show(options: &LoadOptions) -> anyhow::Result<ExitCode> {
    let settings = load_unvalidated(options)?;
    print!("{}", settings.to_redacted_toml());
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
