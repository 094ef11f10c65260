//! `deis-backup`: command-line parsing and dispatch only; the work lives in the library.

use clap::{Args, Parser, Subcommand, ValueEnum};
use deis_backup::commands::{self, Force, RestoreArgs};
use deis_backup::config::LoadOptions;
use deis_backup::logging;
use deis_backup::restore::RestoreRequest;
use deis_backup::store::{JobKind, SetSelector};
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  # back up a folder to a local destination (no etcd, no Docker needed)
  deis-backup backup volume --volume-path ./store --destination file://./backups
  deis-backup list --destination file://./backups
  deis-backup verify latest --destination file://./backups
  deis-backup restore latest --only volume --volume-path ./restored --destination file://./backups

Configuration layers, lowest first: built-in defaults < --config FILE (TOML) < etcd <
DEIS_BACKUP_* environment (e.g. DEIS_BACKUP_DESTINATION__URL) < flags.
Exit codes: 0 success, 1 failure, 2 usage error or not available, 3 partial (the set is
kept, but something that matters is missing from it, e.g. an unreadable file).";

/// Backups of a Deis v1 cluster: gateway buckets, store volume, database, etcd.
#[derive(Parser)]
#[command(name = "deis-backup", version, after_help = EXAMPLES)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct GlobalArgs {
    /// Configuration file (TOML, see the README for every key).
    #[arg(long, global = true, env = "DEIS_BACKUP_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// etcd endpoint(s), comma-separated (overrides the file and ETCD / DEIS_BACKUP_ETCD).
    #[arg(long, global = true, value_name = "URL")]
    etcd: Option<String>,
    /// etcd API: v2 (Deis v1's etcd2), v3, or auto (ask the server); default etcd.api.
    #[arg(long, global = true, value_name = "API", value_parser = ["v2", "v3", "auto"])]
    etcd_api: Option<String>,
    /// Where backup sets live: file:///path, file://./relative or s3://bucket/prefix.
    #[arg(long, global = true, value_name = "URL")]
    destination: Option<String>,
    /// The folder the volume job backs up and restores (default /var/lib/deis/store).
    #[arg(long, global = true, value_name = "DIR")]
    volume_path: Option<PathBuf>,
    /// zstd compression level, 1 (fastest) to 19 (smallest); default 3.
    #[arg(long, global = true, value_name = "N")]
    compression_level: Option<i64>,
    /// Log filter: error, warn, info, debug, trace, or tracing directives such as
    /// `info,deis_backup=debug`. Precedence: this flag > RUST_LOG > DEIS_BACKUP_LOG > info.
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// Log lines on stderr: text (for people) or json (one object a line, with the run's
    /// job and set id). Precedence: this flag > DEIS_BACKUP_LOG__FORMAT > the --config file's
    /// [log] format > text (log.format in etcd cannot apply: logging starts before etcd is read).
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
}

impl GlobalArgs {
    fn load_options(&self) -> LoadOptions {
        let mut overrides: Vec<(&'static str, config::Value)> = Vec::new();
        if let Some(etcd) = &self.etcd {
            let endpoints = deis_backup::config::etcd_endpoints(etcd);
            overrides.push(("etcd.endpoints", endpoints.into()));
        }
        if let Some(api) = &self.etcd_api {
            overrides.push(("etcd.api", api.as_str().into()));
        }
        if let Some(url) = &self.destination {
            overrides.push(("destination.url", url.as_str().into()));
        }
        if let Some(path) = &self.volume_path {
            overrides.push(("volume.path", path.to_string_lossy().as_ref().into()));
        }
        if let Some(level) = self.compression_level {
            overrides.push(("compression.level", level.into()));
        }
        if let Some(format) = &self.log_format {
            overrides.push(("log.format", format.as_str().into()));
        }
        LoadOptions::from_process_env(self.config.clone(), overrides)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: every job on its cron schedule, metrics, live reconfiguration.
    #[command(after_help = "Example:\n  deis-backup run --config /etc/deis-backup.toml")]
    Run,
    /// Run one backup now, in the foreground; exit 0 only if it succeeded.
    #[command(
        after_help = "Example:\n  deis-backup backup volume --volume-path /var/lib/deis/store --destination file:///var/backups/deis"
    )]
    Backup {
        /// The job to run, or `all` for every job.
        job: JobArg,
        /// Create the S3 destination bucket when it does not exist.
        #[arg(long)]
        create_bucket: bool,
    },
    /// List the complete backup sets at the destination (sets without a manifest never show).
    #[command(after_help = "Example:\n  deis-backup list --job volume --json")]
    List {
        /// Only sets of this job.
        #[arg(long, value_name = "JOB")]
        job: Option<JobKind>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Re-read a set and check every artifact against its manifest (size, sha256, decoding).
    #[command(
        after_help = "Example:\n  deis-backup verify latest --job volume\n  deis-backup verify volume/20261125T034500Z-3fa9c1"
    )]
    Verify {
        /// JOB/RUN-ID as `list` shows it, a bare RUN-ID, or `latest`.
        #[arg(default_value = "latest")]
        set: SetSelector,
        /// With `latest`: the newest set of this job.
        #[arg(long, value_name = "JOB")]
        job: Option<JobKind>,
        /// Gateway sets: also re-read every referenced object and check its sha256
        /// (without it, each object's presence and size are checked).
        #[arg(long)]
        read_data: bool,
    },
    /// Restore a set (or the latest set of each job) into this cluster; `restore finish`
    /// after `deisctl start platform`.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = format!("Examples:\n  deis-backup restore latest --dry-run              the whole plan, nothing written\n  \
deis-backup restore latest                        every job that has a set, in bring-up order\n  \
deis-backup restore latest --only volume --volume-path /var/lib/deis/store\n  \
deis-backup restore finish                        after `deisctl start platform` (see its --help)\n\n\
Safe by default: before writing, each step compares its target with the set and refuses,\n\
naming what it found, when the target holds other data: gateway objects with other content,\n\
etcd keys with other values, a database cluster with data, a non-empty volume folder.\n\
Identical objects and keys are left alone; what the set lacks is never deleted.\n\
--force writes over it for every job of this restore, --force=JOBS only for those.\n\n\
Volume restore keeps owners, modes and mtimes, restores every symlink as it was and never\n\
writes through one; entries that would land outside the target are refused.\n\n\
Database restore streams the dump into `psql -v ON_ERROR_STOP=1` inside the target container\n\
(--container, default database.container), checked first with read-only queries: a cluster\n\
whose databases hold tables is refused, naming them; a new Deis cluster's roles and empty\n\
`deis` database are used as they are; --force drops and recreates the databases the dump\n\
creates (roles are kept). A whole restore replays the dump only when db_wal holds no WAL-E\n\
base backup (deis-database restores itself from those):\n  \
deis-backup restore latest --only database --container deis-database --dry-run\n\n\
etcd restore writes the exported keys into --etcd-target (default etcd.endpoints):\n  \
deis-backup restore latest --only etcd --etcd-target http://10.0.0.2:4001 --dry-run\n{}",
        deis_backup::restore::etcd::SKIP_RULES
    ))]
    Restore {
        #[command(subcommand)]
        step: Option<RestoreStep>,
        /// JOB/RUN-ID as `list` shows it, a bare RUN-ID, or `latest`.
        #[arg(default_value = "latest")]
        set: SetSelector,
        /// Only these jobs (comma-separated): gateway, volume, database, etcd.
        #[arg(long, value_delimiter = ',', value_name = "JOBS")]
        only: Vec<JobKind>,
        /// Read and check everything, print the plan, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write over what the targets hold (objects, keys, data, files of the same name):
        /// bare for every job of this restore, =JOBS (comma-separated) for those only.
        #[arg(
            long,
            value_name = "JOBS",
            num_args = 0..=1,
            require_equals = true,
            value_delimiter = ',',
            default_missing_value = "all"
        )]
        force: Option<Vec<JobArg>>,
        /// The database container to restore into (default: database.container).
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
        /// etcd: also write the keys skipped by default (TTL'd, services, store, ...).
        #[arg(long)]
        include_all: bool,
        /// etcd: the etcd to write the keys into (default: etcd.endpoints).
        #[arg(long, value_name = "URL")]
        etcd_target: Option<String>,
        /// gateway: only these buckets of the snapshot (comma-separated; default all).
        #[arg(long, value_delimiter = ',', value_name = "BUCKETS")]
        buckets: Vec<String>,
    },
    /// Delete sets that the retention policy no longer keeps.
    #[command(after_help = "Example:\n  deis-backup prune --dry-run")]
    Prune {
        /// Print what would be kept and deleted, and why; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only this job's sets.
        #[arg(long, value_name = "JOB")]
        job: Option<JobKind>,
    },
    /// Each job's last run (result, set, time, host, error), as its owner wrote it to etcd.
    #[command(after_help = "Example:\n  deis-backup status --etcd http://127.0.0.1:4001 --json")]
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show or check the effective configuration (secrets shown as ***).
    #[command(after_help = "Example:\n  deis-backup config show --config /etc/deis-backup.toml")]
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Subcommand)]
enum RestoreStep {
    /// After `deisctl start platform`: the controller re-publishes its state (keys, apps,
    /// domains) to etcd, and the apps to scale to 0 and back are listed.
    #[command(after_help = "\
Runs in the controller container (--container, default restore.controller-container =
deis-controller) through the Docker API, in its /app folder: `./manage.py
load_db_state_to_etcd` when the controller has it (Deis 1.11 and later), otherwise
`./manage.py shell` saving every Key, App and Domain. Then it counts them and prints the
`deis scale` commands that bring each app's containers back. --dry-run only asks and
counts (read-only) and says what it would run.

Example:
  deis-backup restore finish --dry-run
  deis-backup restore finish --container deis-controller")]
    Finish {
        /// Ask the controller and count, say what would run, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// The controller container (default: restore.controller-container, deis-controller).
        #[arg(long, value_name = "NAME")]
        container: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Print the effective configuration as TOML, secrets redacted.
    Show,
    /// Validate the configuration; exit non-zero on any problem.
    Check,
}

#[derive(Clone, Copy, ValueEnum)]
enum JobArg {
    Gateway,
    Volume,
    Database,
    Etcd,
    All,
}

impl JobArg {
    fn jobs(self) -> Vec<JobKind> {
        match self {
            JobArg::Gateway => vec![JobKind::Gateway],
            JobArg::Volume => vec![JobKind::Volume],
            JobArg::Database => vec![JobKind::Database],
            JobArg::Etcd => vec![JobKind::Etcd],
            JobArg::All => JobKind::ALL.to_vec(),
        }
    }
}

/// What `--force[=JOBS]` covers.
fn force_scope(force: Option<Vec<JobArg>>) -> Force {
    match force {
        None => Force::Nothing,
        Some(jobs) if jobs.iter().any(|j| matches!(j, JobArg::All)) || jobs.is_empty() => {
            Force::Every
        }
        Some(jobs) => Force::Jobs(jobs.into_iter().flat_map(JobArg::jobs).collect()),
    }
}

/// Starts logging as the flags and environment say (see [`logging`]).
fn init_logging(global: &GlobalArgs) -> Result<(), logging::LoggingError> {
    let env = |name: &str| std::env::var(name).ok();
    let choice = logging::choose_filter(
        global.log_level.as_deref(),
        env("RUST_LOG").as_deref(),
        env(logging::FILTER_ENV).as_deref(),
    );
    let filter = logging::build_filter(&choice)?;
    let format = logging::choose_format(
        global.log_format.as_deref(),
        env(logging::FORMAT_ENV).as_deref(),
        global.config.as_deref(),
    )?;
    logging::init(format, filter);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(&cli.global) {
        eprintln!("deis-backup: error: {e}");
        return ExitCode::from(commands::EXIT_NOT_AVAILABLE);
    }
    match deis_backup::util::limits::raise_open_file_limit() {
        Ok(limit) => tracing::debug!(limit, "Open-file limit."),
        Err(e) => tracing::warn!(
            "Cannot raise the open-file limit; deep volume trees may run out of descriptors: {e}"
        ),
    }
    let options = cli.global.load_options();
    let result = match cli.command {
        Command::Run => commands::run(&options),
        Command::Prune { dry_run, job } => commands::prune(&options, job, dry_run),
        Command::Backup { job, create_bucket } => {
            commands::backup(&options, &job.jobs(), create_bucket)
        }
        Command::List { job, json } => commands::list(&options, job, json),
        Command::Status { json } => commands::status(&options, json),
        Command::Verify {
            set,
            job,
            read_data,
        } => commands::verify(&options, &set, job, read_data),
        Command::Restore {
            step: Some(RestoreStep::Finish { dry_run, container }),
            ..
        } => commands::restore_finish(&options, container, dry_run),
        Command::Restore {
            step: None,
            set,
            only,
            dry_run,
            force,
            container,
            include_all,
            etcd_target,
            buckets,
        } => commands::restore(
            &options,
            &RestoreArgs {
                selector: set,
                only,
                force: force_scope(force),
                request: RestoreRequest {
                    dry_run,
                    force: false,
                    container,
                    include_all,
                    etcd_target,
                    buckets,
                },
            },
        ),
        Command::Config {
            action: ConfigAction::Show,
        } => commands::config_show(&options),
        Command::Config {
            action: ConfigAction::Check,
        } => commands::config_check(&options),
    };
    result.unwrap_or_else(|e| {
        eprintln!("deis-backup: error: {e:#}");
        ExitCode::from(commands::EXIT_FAILURE)
    })
}
