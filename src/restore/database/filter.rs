//! The statement filter between a pg_dumpall stream and psql: it leaves out the `CREATE ROLE`
//! of roles the target already has and the `CREATE DATABASE` of empty databases it already
//! has, and puts a `DROP DATABASE` before the `CREATE DATABASE` of databases that a forced
//! restore replaces. It works line by line, whatever the chunking of the stream, and holds at
//! most one short line back.
//!
//! It only looks where pg_dumpall writes these statements, so that table data or a function
//! body can never be taken for one:
//! - `CREATE ROLE name;` in the globals section, before the first `\connect`;
//! - `CREATE DATABASE name ...;` in the globals section (PostgreSQL up to 10 writes them there,
//!   with `OWNER = ...`) or in a database's own preamble, between its
//!   `-- Database "name" dump` header and the `\connect` after it (PostgreSQL 11 and later);
//! - never inside a `COPY ... FROM stdin;` data block.

use super::plan::{OnCreate, RestorePlan};

/// Lines longer than this are passed through unread: no statement the filter looks for is
/// this long (a `COPY` header of a very wide table would be the first).
const LINE_LIMIT: usize = 1 << 20;

/// What the filter did to the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterEvent {
    /// A `CREATE ROLE` left out: the role exists in the target (its `ALTER ROLE` still applies).
    RoleSkipped { statement: String },
    /// The dump creates a database the target does not have.
    DatabaseCreated { name: String },
    /// The target's empty database is used as it is: its `CREATE DATABASE` was left out, and
    /// replaced by `ALTER DATABASE ... OWNER TO ...` when the statement named an owner.
    DatabaseUsed {
        name: String,
        statement: String,
        owner_set: Option<String>,
    },
    /// The target's database (holding what `found` says) is dropped before the dump's
    /// `CREATE DATABASE` recreates it.
    DatabaseRecreated { name: String, found: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Section {
    /// Before the first `\connect`: roles, tablespaces, (old dumps) databases.
    Globals,
    /// After `-- Database "name" dump`, before the next `\connect`.
    Preamble(String),
    /// Statements of a database.
    Body,
    /// Inside a `COPY ... FROM stdin;` block, until `\.`.
    Copy,
}

/// Filters a pg_dumpall stream for one target, as its [`RestorePlan`] says.
#[derive(Debug)]
pub struct DumpFilter<'p> {
    plan: &'p RestorePlan,
    line: Vec<u8>,
    overlong: bool,
    section: Section,
    /// What was left out, replaced or added, in dump order.
    pub events: Vec<FilterEvent>,
}

impl<'p> DumpFilter<'p> {
    /// A filter at the start of a dump.
    pub fn new(plan: &'p RestorePlan) -> Self {
        Self {
            plan,
            line: Vec::new(),
            overlong: false,
            section: Section::Globals,
            events: Vec::new(),
        }
    }

    /// Filters the next bytes of the dump into `out`.
    pub fn process(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while let Some(pos) = input.iter().position(|&b| b == b'\n') {
            self.take(&input[..pos], out);
            self.end_line(out);
            input = &input[pos + 1..];
        }
        self.take(input, out);
    }

    /// Passes on a last line that has no newline (a complete dump has none).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        out.append(&mut self.line);
        self.overlong = false;
    }

    fn take(&mut self, part: &[u8], out: &mut Vec<u8>) {
        if self.overlong {
            out.extend_from_slice(part);
            return;
        }
        self.line.extend_from_slice(part);
        if self.line.len() > LINE_LIMIT {
            out.append(&mut self.line);
            self.overlong = true;
        }
    }

    fn end_line(&mut self, out: &mut Vec<u8>) {
        if self.overlong {
            self.overlong = false;
            out.push(b'\n');
            return;
        }
        let line = std::mem::take(&mut self.line);
        match self.replacement(&line) {
            None => {
                out.extend_from_slice(&line);
                out.push(b'\n');
            }
            Some(text) if text.is_empty() => {}
            Some(text) => {
                out.extend_from_slice(text.as_bytes());
                out.push(b'\n');
            }
        }
        self.line = line;
        self.line.clear();
    }

    /// What replaces `line` (without its newline): `None` keeps it, an empty text drops it.
    fn replacement(&mut self, line: &[u8]) -> Option<String> {
        if self.section == Section::Copy {
            if line == b"\\." {
                self.section = Section::Body;
            }
            return None;
        }
        if line.starts_with(b"\\connect") {
            self.section = Section::Body;
        } else if line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;") {
            self.section = Section::Copy;
        } else if let Some(name) = database_header(line) {
            self.section = Section::Preamble(name);
        } else if line.starts_with(b"CREATE ") {
            let text = std::str::from_utf8(line).ok()?;
            return self.create_statement(text);
        }
        None
    }

    /// What to write instead of a `CREATE` statement, if anything (an empty string drops it).
    fn create_statement(&mut self, text: &str) -> Option<String> {
        if self.section == Section::Globals {
            if let Some(role) = parse_create_role(text) {
                if self.plan.role_exists(&role) {
                    self.events.push(FilterEvent::RoleSkipped {
                        statement: text.into(),
                    });
                    return Some(String::new());
                }
                return None;
            }
        }
        let create = parse_create_database(text)?;
        match &self.section {
            Section::Globals => {}
            Section::Preamble(header) if *header == create.name => {}
            _ => return None,
        }
        match self.plan.on_create(&create.name) {
            OnCreate::Create => {
                self.events
                    .push(FilterEvent::DatabaseCreated { name: create.name });
                None
            }
            OnCreate::UseEmpty => {
                let owner_set = create
                    .owner
                    .map(|owner| format!("ALTER DATABASE {} OWNER TO {owner};", create.raw_name));
                self.events.push(FilterEvent::DatabaseUsed {
                    name: create.name,
                    statement: text.into(),
                    owner_set: owner_set.clone(),
                });
                Some(owner_set.unwrap_or_default())
            }
            OnCreate::DropAndRecreate { found } => {
                let drop = RestorePlan::drop_database_sql(&create.name);
                self.events.push(FilterEvent::DatabaseRecreated {
                    name: create.name,
                    found,
                });
                Some(format!("{drop}{text}"))
            }
        }
    }
}

/// The name in a `-- Database "NAME" dump` header (pg_dumpall writes it unquoted).
fn database_header(line: &[u8]) -> Option<String> {
    let name = line
        .strip_prefix(b"-- Database \"")?
        .strip_suffix(b"\" dump")?;
    Some(String::from_utf8_lossy(name).into_owned())
}

/// A `CREATE DATABASE` statement as pg_dumpall writes it, on one line.
#[derive(Debug, PartialEq, Eq)]
struct CreateDatabase {
    name: String,
    /// The name as written (quoted when it needs to be).
    raw_name: String,
    /// The `OWNER = ...` clause's identifier as written, if any.
    owner: Option<String>,
}

/// The role of a `CREATE ROLE name;` line.
fn parse_create_role(text: &str) -> Option<String> {
    let rest = text.strip_prefix("CREATE ROLE ")?.strip_suffix(';')?;
    let (name, _, after) = parse_identifier(rest)?;
    after.is_empty().then_some(name)
}

fn parse_create_database(text: &str) -> Option<CreateDatabase> {
    let rest = text.strip_prefix("CREATE DATABASE ")?.strip_suffix(';')?;
    let (name, raw, after) = parse_identifier(rest)?;
    if !after.is_empty() && !after.starts_with(' ') {
        return None;
    }
    let owner = after
        .find(" OWNER = ")
        .and_then(|at| parse_identifier(&after[at + " OWNER = ".len()..]))
        .map(|(_, raw, _)| raw.to_string());
    Some(CreateDatabase {
        name,
        raw_name: raw.into(),
        owner,
    })
}

/// An SQL identifier at the start of `text`: its value, its text as written, and what follows.
fn parse_identifier(text: &str) -> Option<(String, &str, &str)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '"' {
                value.push(c);
            } else if quoted[i + 1..].starts_with('"') {
                value.push('"');
                chars.next();
            } else {
                let end = i + 2; // both quotes
                return Some((value, &text[..end], &text[end..]));
            }
        }
        None
    } else {
        let end = text.find([' ', ';']).unwrap_or(text.len());
        let raw = &text[..end];
        let simple = !raw.is_empty()
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
        simple.then(|| (raw.to_string(), raw, &text[end..]))
    }
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
