//! Pure validation of a whole [`Settings`]: every problem found, each naming its key.

use super::{DestinationUrl, Settings};
use croner::parser::{CronParser, Seconds};
use std::fmt;
use std::net::SocketAddr;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key as in the TOML file, e.g. `schedule.volume`.
    pub key: String,
    /// What is wrong and what is expected. Never contains a secret value.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Checks every value; returns all problems found (empty when the settings are usable).
pub fn validate(settings: &Settings) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |key: &str, message: String| {
        problems.push(Problem {
            key: key.into(),
            message,
        })
    };

    if let Err(e) = DestinationUrl::parse(&settings.destination.url) {
        problem("destination.url", e);
    }
    for (key, value) in [
        ("destination.endpoint", &settings.destination.endpoint),
        ("gateway.endpoint", &settings.gateway.endpoint),
    ] {
        if let Some(url) = value {
            if let Err(e) = check_http_url(url) {
                problem(key, e);
            }
        }
    }
    let copy_limit = settings.destination.copy_limit;
    if !(super::MIN_COPY_LIMIT..=super::MAX_COPY_LIMIT).contains(&copy_limit.get()) {
        problem(
            "destination.copy-limit",
            format!("{copy_limit} is out of range; expected 5MiB to 5GiB (S3's part sizes)"),
        );
    }
    for (i, endpoint) in settings.etcd.endpoints.iter().enumerate() {
        if let Err(e) = check_http_url(endpoint) {
            problem(&format!("etcd.endpoints[{i}]"), e);
        }
    }

    let gateway = &settings.gateway;
    if !(1..=256).contains(&gateway.concurrency) {
        problem(
            "gateway.concurrency",
            format!("{} is out of range; expected 1 to 256", gateway.concurrency),
        );
    }
    if settings.volume.read_ahead > 32 {
        problem(
            "volume.read-ahead",
            format!(
                "{} is out of range; expected 0 (off) to 32 threads",
                settings.volume.read_ahead
            ),
        );
    }
    if gateway.buckets.is_empty() {
        problem(
            "gateway.buckets",
            "is empty; expected at least one bucket name".into(),
        );
    }
    for bucket in &gateway.buckets {
        if let Err(e) = check_bucket_name(bucket) {
            problem("gateway.buckets", format!("bucket {bucket:?} {e}"));
        }
    }

    if settings.volume.path.as_os_str().is_empty() {
        problem(
            "volume.path",
            "is empty; expected the directory to back up, e.g. /var/lib/deis/store".into(),
        );
    }
    if let Err(e) = check_container_name(&settings.database.container) {
        problem("database.container", e);
    }
    if let Err(e) = check_user_name(&settings.database.user) {
        problem("database.user", e);
    }
    if let Err(e) = check_container_name(&settings.restore.controller_container) {
        problem("restore.controller-container", e);
    }

    let schedule = &settings.schedule;
    for (job, cron) in [
        ("gateway", &schedule.gateway),
        ("volume", &schedule.volume),
        ("database", &schedule.database),
        ("etcd", &schedule.etcd),
    ] {
        if let Err(e) = check_cron(cron) {
            problem(&format!("schedule.{job}"), e);
        }
    }

    let level = settings.compression.level;
    if !(1..=19).contains(&level) {
        problem(
            "compression.level",
            format!("{level} is out of range; expected 1 (fastest) to 19 (smallest)"),
        );
    }
    for (key, value) in [
        ("deadline.gateway", settings.deadline.gateway),
        ("deadline.volume", settings.deadline.volume),
        ("deadline.database", settings.deadline.database),
        ("deadline.etcd", settings.deadline.etcd),
        ("timeouts.connect", settings.timeouts.connect),
        ("timeouts.request", settings.timeouts.request),
        ("timeouts.idle", settings.timeouts.idle),
        ("timeouts.database-idle", settings.timeouts.database_idle),
    ] {
        if value.get().is_zero() {
            problem(
                key,
                "is zero; expected a duration such as \"90s\" or \"2h\"".into(),
            );
        }
    }
    if settings.metrics.listen.parse::<SocketAddr>().is_err() {
        problem(
            "metrics.listen",
            format!(
                "{:?} is not an address; expected IP:PORT such as 0.0.0.0:9179",
                settings.metrics.listen
            ),
        );
    }
    problems
}

/// Accepts standard 5-field cron and 6-field cron with seconds; `""` means disabled.
pub fn check_cron(cron: &str) -> Result<(), String> {
    if super::schedule_is_off(cron) {
        return Ok(());
    }
    let fields = cron.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(format!(
            "{cron:?} has {fields} fields; expected 5 (minute hour day month weekday) or 6 (with seconds first)"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(cron)
        .map(|_| ())
        .map_err(|e| {
            format!("{cron:?} is not a valid cron expression ({e}); expected e.g. \"30 3 * * *\"")
        })
}

fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok(())
}

fn check_bucket_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c));
    if !(3..=63).contains(&name.len()) || !ok_chars {
        return Err("is not a bucket name; expected 3-63 of a-z 0-9 . - _".into());
    }
    Ok(())
}

fn check_container_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if name.is_empty() || !ok_chars {
        return Err(format!(
            "{name:?} is not a container name; expected letters, digits, _ . -"
        ));
    }
    Ok(())
}

/// A user name that is both an OS user and a PostgreSQL role needing no quoting.
fn check_user_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
    let starts_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if !(1..=63).contains(&name.len()) || !ok_chars || !starts_ok {
        return Err(format!(
            "{name:?} is not a user name; expected 1-63 of a-z 0-9 _ - starting with a letter, e.g. postgres"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_user_must_be_a_plain_role_name() {
        assert!(check_user_name("postgres").is_ok());
        assert!(check_user_name("deis_db-1").is_ok());
        for bad in [
            "",
            "Postgres",
            "post gres",
            "1pg",
            "pg;drop",
            &"a".repeat(64),
        ] {
            let e = check_user_name(bad).unwrap_err();
            assert!(e.contains("not a user name"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn database_exec_mode_reads_kebab_case_values() {
        let s: Settings =
            toml::from_str("[database]\nuser = \"pg\"\nexec-mode = \"user\"\n").unwrap();
        assert_eq!(s.database.exec_mode, super::super::ExecMode::User);
        assert_eq!(s.database.user, "pg");
        assert_eq!(s.database.container, "deis-database");
        assert!(toml::from_str::<Settings>("[database]\nexec-mode = \"su\"\n").is_err());
    }

    #[test]
    fn copy_limit_is_bounded_by_s3_part_sizes() {
        let mut s = Settings::default();
        for (bytes, ok) in [
            (5 << 20, true),
            (5 << 30, true),
            ((5 << 20) - 1, false),
            ((5 << 30) + 1, false),
        ] {
            s.destination.copy_limit = super::super::ConfigSize::bytes(bytes);
            let problems = validate(&s);
            assert_eq!(problems.is_empty(), ok, "{bytes}: {problems:?}");
            if let Some(p) = problems.first() {
                assert_eq!(p.key, "destination.copy-limit");
                assert!(p.message.contains("expected 5MiB to 5GiB"), "{p}");
            }
        }
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate(&Settings::default()), vec![]);
    }

    #[test]
    fn cron_accepts_five_and_six_fields_and_empty() {
        assert!(check_cron("30 3 * * *").is_ok());
        assert!(check_cron("0 30 3 * * *").is_ok());
        assert!(check_cron("*/15 * * * *").is_ok());
        assert!(check_cron("").is_ok());
        assert!(check_cron("off").is_ok() && check_cron("Disabled").is_ok());
    }

    #[test]
    fn cron_rejects_garbage_with_the_value_named() {
        let e = check_cron("61 * * * *").unwrap_err();
        assert!(e.contains("\"61 * * * *\""), "{e}");
        let e = check_cron("every day").unwrap_err();
        assert!(e.contains("2 fields"), "{e}");
    }

    #[test]
    fn every_problem_names_its_key() {
        let mut s = Settings::default();
        s.destination.url = "ftp://x".into();
        s.destination.copy_limit = super::super::ConfigSize::bytes(6 << 30);
        s.schedule.volume = "nope * * * *".into();
        s.compression.level = 40;
        s.gateway.concurrency = 0;
        s.gateway.buckets = vec!["Bad Bucket".into()];
        s.metrics.listen = "localhost".into();
        s.database.user = "Post Gres".into();
        s.restore.controller_container = "deis controller".into();
        s.etcd.endpoints = vec!["127.0.0.1".into()];
        let keys: Vec<String> = validate(&s).into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "destination.url",
                "destination.copy-limit",
                "etcd.endpoints[0]",
                "gateway.concurrency",
                "gateway.buckets",
                "database.user",
                "restore.controller-container",
                "schedule.volume",
                "compression.level",
                "metrics.listen"
            ]
        );
    }
}
