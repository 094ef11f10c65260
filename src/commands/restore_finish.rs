//! `deis-backup restore finish [--container NAME] [--dry-run]`: after `deisctl start
//! platform`, the controller re-publishes its state to etcd; prints the path it took, the
//! counts, and the `deis scale` commands that bring each app's containers back.

use super::load_settings;
use crate::config::LoadOptions;
use crate::restore::finish::{finish, FinishReport, CONTROLLER_APP_DIR};
use anyhow::Context;
use std::process::ExitCode;

/// Runs `restore finish` in the controller container (`--container`, else
/// `restore.controller-container`).
pub fn restore_finish(
    options: &LoadOptions,
    container: Option<String>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let mut options = options.clone();
    if let Some(name) = container {
        options
            .overrides
            .push(("restore.controller-container", ::config::Value::from(name)));
    }
    let settings = load_settings(&options)?;
    let container = &settings.restore.controller_container;
    let report = finish(&settings, container, dry_run).with_context(|| {
        format!("cannot make the controller in container {container} re-publish its state to etcd")
    })?;
    for line in report_lines(&report) {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// What the operator reads: the path taken, what was re-published, and the scale commands.
fn report_lines(report: &FinishReport) -> Vec<String> {
    let image = report
        .image
        .as_deref()
        .map(|i| format!(" (image {i})"))
        .unwrap_or_default();
    let mut lines = vec![
        format!("controller container: {}{image}", report.container),
        format!("path: {}", report.path),
    ];
    if report.dry_run {
        lines.push(format!(
            "dry run: would run `{}` in {CONTROLLER_APP_DIR}; nothing was written",
            report.command
        ));
        lines.push(format!("the controller's database holds {}", report.counts));
    } else {
        if let Some(saved) = report.saved {
            lines.push(format!(
                "saved {} key(s), {} app(s), {} domain(s)",
                saved.keys, saved.apps, saved.domains
            ));
        }
        lines.push(format!("re-published to etcd: {}", report.counts));
    }
    let scale: Vec<[String; 2]> = report
        .counts
        .apps_processes
        .iter()
        .filter_map(|app| app.scale_commands())
        .collect();
    if scale.is_empty() {
        lines.push("no app runs containers: nothing to scale".into());
    } else {
        lines.push(
            "next: scale each app to 0 and back so that its containers are scheduled and registered again:"
                .into(),
        );
        for [down, up] in scale {
            lines.push(format!("  {down}"));
            lines.push(format!("  {up}"));
        }
    }
    lines
}
