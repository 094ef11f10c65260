//! Process logging: text or JSON lines on stderr, the filter chosen from the flag, `RUST_LOG`
//! or `DEIS_BACKUP_LOG`, and caps on crates whose verbose output could carry credentials.
//!
//! Logging starts before the configuration is loaded (so that loading can log), which is why
//! the format is chosen here from the flag, the environment and a light read of the
//! configuration file; `log.format` in etcd cannot apply (etcd is read later).

use crate::config::LogFormat;
use std::io::IsTerminal;
use std::path::Path;
use tracing_subscriber::EnvFilter;

/// The environment variable holding `log.format` (the configuration's environment layer).
pub const FORMAT_ENV: &str = "DEIS_BACKUP_LOG__FORMAT";
/// The product's own filter variable (below `RUST_LOG`).
pub const FILTER_ENV: &str = "DEIS_BACKUP_LOG";
/// The filter when nothing names one.
pub const DEFAULT_FILTER: &str = "info";

/// Crates whose debug/trace output would show credentials, each capped at `info` whatever
/// the filter says: `aws_smithy_runtime` logs the resolved identity and the signed request
/// (its `Authorization` header names the access key), `aws_sigv4` the request it signs.
pub const CAPPED_TARGETS: &[&str] = &["aws_smithy_runtime", "aws_smithy_runtime_api", "aws_sigv4"];

/// Why logging could not start: a filter or format that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The log filter (from `origin`) is no tracing filter expression.
    #[error(
        "invalid log filter {filter:?} (from {origin}): {reason}; use error, warn, info, debug, \
         trace, or directives such as `info,deis_backup=debug`"
    )]
    Filter {
        filter: String,
        origin: &'static str,
        reason: String,
    },
    /// The log format (from `origin`) is neither `text` nor `json`.
    #[error("invalid log format {value:?} (from {origin}): use text or json")]
    Format { value: String, origin: &'static str },
}

/// A filter expression and where it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterChoice {
    /// The filter as given, e.g. `debug` or `info,deis_backup=trace`.
    pub filter: String,
    /// `--log-level`, `RUST_LOG`, `DEIS_BACKUP_LOG` or `default`.
    pub origin: &'static str,
}

/// The filter by precedence: the explicit flag, then `RUST_LOG`, then `DEIS_BACKUP_LOG`, then
/// `info`. Empty values count as unset.
pub fn choose_filter(
    flag: Option<&str>,
    rust_log: Option<&str>,
    deis_log: Option<&str>,
) -> FilterChoice {
    let given = |v: Option<&str>| v.map(str::trim).filter(|v| !v.is_empty()).map(String::from);
    let (filter, origin) = if let Some(f) = given(flag) {
        (f, "--log-level")
    } else if let Some(f) = given(rust_log) {
        (f, "RUST_LOG")
    } else if let Some(f) = given(deis_log) {
        (f, FILTER_ENV)
    } else {
        (DEFAULT_FILTER.to_string(), "default")
    };
    FilterChoice { filter, origin }
}

/// Parses `choice` into a filter in which every [`CAPPED_TARGETS`] crate logs at `info` at
/// most: the filter's own directives for those crates are dropped and the caps appended.
pub fn build_filter(choice: &FilterChoice) -> Result<EnvFilter, LoggingError> {
    let capped = |directive: &str| {
        let target = directive.split(['=', '[']).next().unwrap_or("").trim();
        CAPPED_TARGETS.iter().any(|c| target.starts_with(c))
    };
    let mut directives: Vec<String> = choice
        .filter
        .split(',')
        .filter(|d| !capped(d))
        .map(String::from)
        .collect();
    directives.extend(CAPPED_TARGETS.iter().map(|c| format!("{c}=info")));
    let full = directives.join(",");
    EnvFilter::builder()
        .with_regex(false)
        .parse(&full)
        .map_err(|e| LoggingError::Filter {
            filter: choice.filter.clone(),
            origin: choice.origin,
            reason: e.to_string(),
        })
}

/// Parses `text` / `json` (any case).
pub fn parse_format(value: &str, origin: &'static str) -> Result<LogFormat, LoggingError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(LoggingError::Format {
            value: value.to_string(),
            origin,
        }),
    }
}

/// The format by precedence: `--log-format`, then `DEIS_BACKUP_LOG__FORMAT`, then the
/// configuration file's `[log] format`, then text. A file that cannot be read or parsed is
/// left to the configuration loader to report; it counts as saying nothing here.
pub fn choose_format(
    flag: Option<&str>,
    env: Option<&str>,
    config_file: Option<&Path>,
) -> Result<LogFormat, LoggingError> {
    if let Some(flag) = flag {
        return parse_format(flag, "--log-format");
    }
    if let Some(env) = env.filter(|v| !v.trim().is_empty()) {
        return parse_format(env, FORMAT_ENV);
    }
    if let Some(value) = config_file.and_then(format_in_file) {
        return parse_format(&value, "the configuration file's log.format");
    }
    Ok(LogFormat::Text)
}

/// `[log] format` of a TOML configuration file, if the file says it.
fn format_in_file(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: toml::Table = text.parse().ok()?;
    let format = doc.get("log")?.as_table()?.get("format")?;
    format.as_str().map(String::from)
}

/// Installs the global subscriber: `format` lines on stderr through `filter`. JSON lines carry
/// the timestamp, level, target, the event's fields and the current span's fields (a run's
/// `backup_job` and `set`) and the span list; they never contain ANSI colour codes.
pub fn init(format: LogFormat, filter: EnvFilter) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .init(),
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_rust_log_beats_deis_log_beats_default() {
        let c = choose_filter(Some("debug"), Some("trace"), Some("warn"));
        assert_eq!((c.filter.as_str(), c.origin), ("debug", "--log-level"));
        let c = choose_filter(None, Some("trace"), Some("warn"));
        assert_eq!((c.filter.as_str(), c.origin), ("trace", "RUST_LOG"));
        let c = choose_filter(None, Some(" "), Some("warn"));
        assert_eq!((c.filter.as_str(), c.origin), ("warn", FILTER_ENV));
        let c = choose_filter(None, None, None);
        assert_eq!((c.filter.as_str(), c.origin), ("info", "default"));
    }

    #[test]
    fn an_invalid_filter_names_itself_and_its_origin() {
        let choice = choose_filter(None, Some("info,hyper=loud"), None);
        let err = build_filter(&choice).unwrap_err().to_string();
        assert!(err.contains("info,hyper=loud"), "{err}");
        assert!(err.contains("RUST_LOG"), "{err}");
    }

    #[test]
    fn caps_are_appended_to_valid_filters() {
        let filter = build_filter(&choose_filter(Some("trace"), None, None)).unwrap();
        let shown = filter.to_string();
        for cap in CAPPED_TARGETS {
            assert!(
                shown.contains(&format!("{cap}=info")),
                "{shown} lacks {cap}"
            );
        }
    }

    #[test]
    fn a_filter_cannot_lift_a_cap() {
        let choice = choose_filter(
            Some("debug,aws_smithy_runtime::client=trace,aws_sigv4=trace,hyper=debug"),
            None,
            None,
        );
        let shown = build_filter(&choice).unwrap().to_string();
        assert!(!shown.contains("=trace"), "{shown}");
        assert!(shown.contains("hyper=debug"), "{shown}");
    }

    #[test]
    fn format_flag_beats_env_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[log]\nformat = \"json\"\n").unwrap();
        let f = Some(file.as_path());
        assert_eq!(choose_format(None, None, f).unwrap(), LogFormat::Json);
        assert_eq!(
            choose_format(None, Some("text"), f).unwrap(),
            LogFormat::Text
        );
        assert_eq!(
            choose_format(Some("json"), Some("text"), None).unwrap(),
            LogFormat::Json
        );
        assert_eq!(choose_format(None, None, None).unwrap(), LogFormat::Text);
    }

    #[test]
    fn unreadable_file_says_nothing_and_bad_values_are_named() {
        let missing = Path::new("/nonexistent/deis-backup.toml");
        assert_eq!(
            choose_format(None, None, Some(missing)).unwrap(),
            LogFormat::Text
        );
        let err = choose_format(None, Some("xml"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("xml") && err.contains(FORMAT_ENV), "{err}");
    }
}
