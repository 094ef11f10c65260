//! The retention policy as a pure rule (restic `forget` semantics): which complete sets of a
//! job to keep, and the rules that keep each one. No I/O here; `store::prune` applies a plan.
//!
//! Sets are taken newest first. `keep-last N` keeps the N newest. Each of `keep-hourly`,
//! `keep-daily`, `keep-weekly` (ISO weeks) and `keep-monthly` walks the sets newest to oldest
//! and keeps the first set of every new UTC bucket until it has kept N of them. A set is kept
//! when any rule keeps it; the newest set is always kept; a plan never removes every set.

use crate::config::RetentionSettings;
use chrono::{DateTime, Datelike, Timelike, Utc};

/// A complete set the policy decides about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// How the set is named in reports (e.g. `volume/20261125T034500Z-3fa9c1`).
    pub name: String,
    /// The set's start time: its UTC buckets are taken from it.
    pub started_at: DateTime<Utc>,
}

/// A set the plan keeps, with every rule that keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub set: Candidate,
    /// E.g. `newest`, `last 1/3`, `daily 2026-11-25`, `weekly 2026-W48`, `monthly 2026-11`.
    pub reasons: Vec<String>,
}

/// What the policy decided, newest first in both lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub keep: Vec<Kept>,
    pub remove: Vec<Candidate>,
}

/// Why the policy refused to make a plan.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    #[error(
        "the retention policy keeps nothing (keep-last, keep-hourly, keep-daily, keep-weekly and \
         keep-monthly are all 0); refusing to delete every set: set at least one of them"
    )]
    KeepsNothing,
    #[error("the plan would remove all {0} set(s); refusing (this is a bug, please report it)")]
    WouldRemoveAll(usize),
}

/// One time-bucket rule: its name, how many buckets it keeps, and a set's bucket label.
struct BucketRule {
    name: &'static str,
    count: u32,
    bucket: fn(DateTime<Utc>) -> String,
}

fn hour(t: DateTime<Utc>) -> String {
    format!("{}T{:02}", t.format("%Y-%m-%d"), t.hour())
}

fn day(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

fn week(t: DateTime<Utc>) -> String {
    let w = t.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

fn month(t: DateTime<Utc>) -> String {
    format!("{}-{:02}", t.year(), t.month())
}

/// Decides which of `sets` (any order) the policy keeps.
pub fn plan(sets: &[Candidate], policy: &RetentionSettings) -> Result<Plan, RetentionError> {
    let rules = [
        BucketRule {
            name: "hourly",
            count: policy.keep_hourly,
            bucket: hour,
        },
        BucketRule {
            name: "daily",
            count: policy.keep_daily,
            bucket: day,
        },
        BucketRule {
            name: "weekly",
            count: policy.keep_weekly,
            bucket: week,
        },
        BucketRule {
            name: "monthly",
            count: policy.keep_monthly,
            bucket: month,
        },
    ];
    if policy.keep_last == 0 && rules.iter().all(|r| r.count == 0) {
        return Err(RetentionError::KeepsNothing);
    }
    let mut sorted: Vec<&Candidate> = sets.iter().collect();
    // newest first; equal start times by name, descending, so the order is total
    sorted.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then_with(|| b.name.cmp(&a.name))
    });
    let mut kept_per_rule = [0u32; 4];
    let mut last_bucket: [Option<String>; 4] = Default::default();
    let mut plan = Plan::default();
    for (index, set) in sorted.into_iter().enumerate() {
        let mut reasons = Vec::new();
        if index == 0 {
            reasons.push("newest".to_string());
        }
        if (index as u64) < u64::from(policy.keep_last) {
            reasons.push(format!("last {}/{}", index + 1, policy.keep_last));
        }
        for (i, rule) in rules.iter().enumerate() {
            if kept_per_rule[i] >= rule.count {
                continue;
            }
            let bucket = (rule.bucket)(set.started_at);
            if last_bucket[i].as_ref() != Some(&bucket) {
                reasons.push(format!("{} {bucket}", rule.name));
                kept_per_rule[i] += 1;
                last_bucket[i] = Some(bucket);
            }
        }
        if reasons.is_empty() {
            plan.remove.push(set.clone());
        } else {
            plan.keep.push(Kept {
                set: set.clone(),
                reasons,
            });
        }
    }
    if plan.keep.is_empty() && !plan.remove.is_empty() {
        return Err(RetentionError::WouldRemoveAll(plan.remove.len()));
    }
    Ok(plan)
}

#[cfg(test)]
#[path = "retention_tests.rs"]
mod tests;
