//! What `restore finish` says to the controller's Django shell and reads back, without I/O:
//! the Python statements (one per line, for a plain `code.interact` shell), the marker line
//! each prints its JSON result on, and the `deis scale` commands the result advises.
//!
//! The statements work on the Python 2.7 of Deis v1 controllers and on Python 3. The shell's
//! prompts (`>>> `) land on stdout in front of what a statement prints, so a marker is
//! looked for anywhere in a line, and the last one counts.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// Starts the line on which the counts statement prints its JSON.
pub const COUNTS_MARKER: &str = "DEIS_BACKUP_CONTROLLER_COUNTS ";
/// Starts the line on which the save statements print how many objects they saved.
pub const SAVED_MARKER: &str = "DEIS_BACKUP_CONTROLLER_SAVED ";

/// The seed's procedure for controllers without `load_db_state_to_etcd`: save every Key, App
/// and Domain, so that each publishes itself to etcd again. A statement that raises leaves
/// its count out, and the result line then says which models were not all saved.
pub fn save_statements() -> String {
    [
        "import json",
        "from api.models import Key, App, Domain",
        "deis_backup_saved = {}",
        "deis_backup_saved['keys'] = len([k.save() for k in Key.objects.all()])",
        "deis_backup_saved['apps'] = len([a.save() for a in App.objects.all()])",
        "deis_backup_saved['domains'] = len([d.save() for d in Domain.objects.all()])",
        &format!("print('{SAVED_MARKER}' + json.dumps(deis_backup_saved, sort_keys=True))"),
    ]
    .join("\n")
        + "\n"
}

/// Counts the controller's Keys, Apps and Domains and each app's process counts
/// (`App.structure`, e.g. `{"web": 2}`), read-only.
pub fn count_statements() -> String {
    [
        "import json",
        "from api.models import Key, App, Domain",
        "deis_backup_counts = {'keys': Key.objects.count(), 'apps': App.objects.count(), 'domains': Domain.objects.count()}",
        "deis_backup_counts['structure'] = dict((a.id, a.structure or {}) for a in App.objects.all())",
        &format!("print('{COUNTS_MARKER}' + json.dumps(deis_backup_counts, sort_keys=True))"),
    ]
    .join("\n")
        + "\n"
}

/// What the controller's database holds, as the counts statement reported it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ControllerCounts {
    pub keys: u64,
    pub apps: u64,
    pub domains: u64,
    /// Every app with its process counts, by app id.
    pub apps_processes: Vec<AppProcesses>,
}

impl fmt::Display for ControllerCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} key(s), {} app(s), {} domain(s)",
            self.keys, self.apps, self.domains
        )
    }
}

/// One app and how many containers of each process type it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppProcesses {
    pub app: String,
    /// Process type -> count, e.g. `web` -> 2.
    pub processes: BTreeMap<String, u64>,
}

impl AppProcesses {
    /// `deis scale web=0 -a APP` and `deis scale web=2 -a APP` (every process type with a
    /// count in one command each), or `None` when the app runs no container.
    pub fn scale_commands(&self) -> Option<[String; 2]> {
        let running: Vec<(&String, &u64)> =
            self.processes.iter().filter(|(_, n)| **n > 0).collect();
        if running.is_empty() {
            return None;
        }
        let line = |count: &dyn Fn(u64) -> u64| {
            let sizes: Vec<String> = running
                .iter()
                .map(|(kind, n)| format!("{kind}={}", count(**n)))
                .collect();
            format!("deis scale {} -a {}", sizes.join(" "), self.app)
        };
        Some([line(&|_| 0), line(&|n| n)])
    }
}

/// How many objects of each model the save statements saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedCounts {
    pub keys: u64,
    pub apps: u64,
    pub domains: u64,
}

#[derive(Deserialize)]
struct CountsLine {
    keys: u64,
    apps: u64,
    domains: u64,
    #[serde(default)]
    structure: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct SavedLine {
    keys: Option<u64>,
    apps: Option<u64>,
    domains: Option<u64>,
}

/// The JSON after the last `marker` in `stdout`, up to the end of its line.
fn marked_json<'a>(stdout: &'a str, marker: &str) -> Result<&'a str, String> {
    let at = stdout
        .rfind(marker)
        .ok_or_else(|| format!("no line starting with {:?} was printed", marker.trim()))?;
    let rest = &stdout[at + marker.len()..];
    Ok(rest.lines().next().unwrap_or("").trim())
}

/// Reads the counts statement's result from the shell's stdout.
pub fn parse_counts(stdout: &str) -> Result<ControllerCounts, String> {
    let json = marked_json(stdout, COUNTS_MARKER)?;
    let line: CountsLine = serde_json::from_str(json).map_err(|e| {
        format!(
            "its {:?} line is not the expected JSON: {e}",
            COUNTS_MARKER.trim()
        )
    })?;
    let mut apps_processes = Vec::with_capacity(line.structure.len());
    for (app, structure) in line.structure {
        let mut processes = BTreeMap::new();
        for (kind, count) in structure {
            let count = process_count(&count).ok_or_else(|| {
                format!("app {app}: process type {kind} has the count {count}, not a whole number")
            })?;
            processes.insert(kind, count);
        }
        apps_processes.push(AppProcesses { app, processes });
    }
    Ok(ControllerCounts {
        keys: line.keys,
        apps: line.apps,
        domains: line.domains,
        apps_processes,
    })
}

/// A process count as Deis stores it: a number, or (in old structures) a numeric string.
fn process_count(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads the save statements' result: every model must have been saved.
pub fn parse_saved(stdout: &str) -> Result<SavedCounts, String> {
    let json = marked_json(stdout, SAVED_MARKER)?;
    let line: SavedLine = serde_json::from_str(json).map_err(|e| {
        format!(
            "its {:?} line is not the expected JSON: {e}",
            SAVED_MARKER.trim()
        )
    })?;
    let missing: Vec<&str> = [
        ("Key", line.keys),
        ("App", line.apps),
        ("Domain", line.domains),
    ]
    .iter()
    .filter(|(_, n)| n.is_none())
    .map(|(model, _)| *model)
    .collect();
    if !missing.is_empty() {
        return Err(format!(
            "saving every {} object failed (the traceback is in its output)",
            missing.join(", ")
        ));
    }
    Ok(SavedCounts {
        keys: line.keys.unwrap_or_default(),
        apps: line.apps.unwrap_or_default(),
        domains: line.domains.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_behind_the_shell_prompts() {
        let stdout = ">>> >>> >>> >>> DEIS_BACKUP_CONTROLLER_COUNTS {\"apps\": 2, \"domains\": 1, \"keys\": 3, \
\"structure\": {\"blog\": {\"web\": 2, \"worker\": \"1\"}, \"idle\": {}}}\n>>> \n";
        let counts = parse_counts(stdout).unwrap();
        assert_eq!((counts.keys, counts.apps, counts.domains), (3, 2, 1));
        assert_eq!(counts.to_string(), "3 key(s), 2 app(s), 1 domain(s)");
        assert_eq!(counts.apps_processes.len(), 2);
        let blog = &counts.apps_processes[0];
        assert_eq!(blog.app, "blog");
        assert_eq!(
            blog.scale_commands().unwrap(),
            [
                "deis scale web=0 worker=0 -a blog",
                "deis scale web=2 worker=1 -a blog"
            ]
        );
        assert_eq!(counts.apps_processes[1].scale_commands(), None);
    }

    #[test]
    fn the_last_marker_counts_and_a_missing_one_is_named() {
        let stdout =
            "DEIS_BACKUP_CONTROLLER_COUNTS {\"apps\": 9}\n>>> DEIS_BACKUP_CONTROLLER_COUNTS \
{\"apps\": 0, \"domains\": 0, \"keys\": 0, \"structure\": {}}\n";
        assert_eq!(parse_counts(stdout).unwrap(), ControllerCounts::default());
        let e = parse_counts(">>> >>> \n").unwrap_err();
        assert!(e.contains("DEIS_BACKUP_CONTROLLER_COUNTS"), "{e}");
        let e = parse_counts("DEIS_BACKUP_CONTROLLER_COUNTS {\"apps\": 1}\n").unwrap_err();
        assert!(e.contains("not the expected JSON"), "{e}");
    }

    #[test]
    fn a_process_count_that_is_no_number_names_the_app() {
        let stdout = "DEIS_BACKUP_CONTROLLER_COUNTS {\"apps\": 1, \"domains\": 0, \"keys\": 0, \
\"structure\": {\"blog\": {\"web\": -1}}}\n";
        let e = parse_counts(stdout).unwrap_err();
        assert!(e.contains("app blog") && e.contains("web"), "{e}");
    }

    #[test]
    fn zero_counts_are_left_out_of_the_scale_commands() {
        let app = AppProcesses {
            app: "api".into(),
            processes: BTreeMap::from([("web".into(), 0), ("cmd".into(), 3)]),
        };
        assert_eq!(
            app.scale_commands().unwrap(),
            ["deis scale cmd=0 -a api", "deis scale cmd=3 -a api"]
        );
    }

    #[test]
    fn saved_counts_need_every_model() {
        let ok =
            ">>> >>> DEIS_BACKUP_CONTROLLER_SAVED {\"apps\": 2, \"domains\": 1, \"keys\": 3}\n";
        assert_eq!(
            parse_saved(ok).unwrap(),
            SavedCounts {
                keys: 3,
                apps: 2,
                domains: 1
            }
        );
        let e = parse_saved("DEIS_BACKUP_CONTROLLER_SAVED {\"domains\": 1}\n").unwrap_err();
        assert!(e.contains("Key, App"), "{e}");
        assert!(parse_saved("").is_err());
    }

    #[test]
    fn statements_are_one_line_each_and_print_their_marker() {
        for (text, marker) in [
            (save_statements(), SAVED_MARKER),
            (count_statements(), COUNTS_MARKER),
        ] {
            assert!(text.ends_with('\n'));
            assert!(text
                .lines()
                .all(|l| !l.starts_with(' ') && !l.ends_with(':')));
            assert!(text.lines().last().unwrap().contains(marker));
        }
    }
}
