//! Unit tests of the retention policy: a simulated year of hourly runs under a fake clock.

use super::*;
use crate::config::ConfigDuration;
use chrono::{Duration, TimeZone};

fn policy(last: u32, hourly: u32, daily: u32, weekly: u32, monthly: u32) -> RetentionSettings {
    RetentionSettings {
        keep_last: last,
        keep_hourly: hourly,
        keep_daily: daily,
        keep_weekly: weekly,
        keep_monthly: monthly,
        object_grace: ConfigDuration::secs(0),
    }
}

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn candidate(t: DateTime<Utc>) -> Candidate {
    Candidate {
        name: t.format("%Y%m%dT%H%M%SZ").to_string(),
        started_at: t,
    }
}

/// One run every hour at :17 through 2026 (2026-01-01 and 2026-12-31 are Thursdays).
fn year_of_hourly_runs() -> Vec<DateTime<Utc>> {
    let first = at(2026, 1, 1, 0, 17);
    (0..365 * 24).map(|h| first + Duration::hours(h)).collect()
}

fn kept_times(plan: &Plan) -> Vec<DateTime<Utc>> {
    let mut times: Vec<_> = plan.keep.iter().map(|k| k.set.started_at).collect();
    times.sort();
    times
}

/// What the default policy (last 3, daily 7, weekly 4, monthly 6) keeps at the end of 2026,
/// worked out by hand from the calendar.
fn expected_default() -> Vec<DateTime<Utc>> {
    let mut times = vec![
        // last 3
        at(2026, 12, 31, 21, 17),
        at(2026, 12, 31, 22, 17),
        // daily: the last run of Dec 25..31 (Dec 31 23:17 is also last 1/3)
        at(2026, 12, 25, 23, 17),
        at(2026, 12, 26, 23, 17),
        at(2026, 12, 27, 23, 17),
        at(2026, 12, 28, 23, 17),
        at(2026, 12, 29, 23, 17),
        at(2026, 12, 30, 23, 17),
        at(2026, 12, 31, 23, 17),
        // weekly: Sundays ending ISO weeks 51 and 50 (W53 is Dec 31, W52 Dec 27)
        at(2026, 12, 13, 23, 17),
        at(2026, 12, 20, 23, 17),
        // monthly: the last run of Jul..Nov (Dec is Dec 31)
        at(2026, 7, 31, 23, 17),
        at(2026, 8, 31, 23, 17),
        at(2026, 9, 30, 23, 17),
        at(2026, 10, 31, 23, 17),
        at(2026, 11, 30, 23, 17),
    ];
    times.sort();
    times
}

#[test]
fn the_default_policy_keeps_exactly_the_expected_sets_of_a_year_of_hourly_runs() {
    let sets: Vec<_> = year_of_hourly_runs().into_iter().map(candidate).collect();
    let plan = plan(&sets, &RetentionSettings::default()).unwrap();
    assert_eq!(kept_times(&plan), expected_default());
    assert_eq!(plan.keep.len() + plan.remove.len(), 8760);
    let newest = &plan.keep[0];
    assert_eq!(newest.set.started_at, at(2026, 12, 31, 23, 17));
    assert_eq!(
        newest.reasons,
        [
            "newest",
            "last 1/3",
            "daily 2026-12-31",
            "weekly 2026-W53",
            "monthly 2026-12"
        ]
    );
    let sunday = plan
        .keep
        .iter()
        .find(|k| k.set.started_at == at(2026, 12, 27, 23, 17))
        .unwrap();
    assert_eq!(sunday.reasons, ["daily 2026-12-27", "weekly 2026-W52"]);
    let november = plan
        .keep
        .iter()
        .find(|k| k.set.started_at == at(2026, 11, 30, 23, 17))
        .unwrap();
    assert_eq!(november.reasons, ["monthly 2026-11"]);
    // removed sets come newest first, and none of them is kept
    assert_eq!(plan.remove[0].started_at, at(2026, 12, 31, 20, 17));
    assert!(plan
        .remove
        .windows(2)
        .all(|w| w[0].started_at > w[1].started_at));
}

#[test]
fn pruning_after_every_hourly_run_of_a_year_ends_with_the_same_sets() {
    // the daemon prunes after each run, with the fake clock at the run's start
    let policy = RetentionSettings::default();
    let mut present: Vec<Candidate> = Vec::new();
    let mut removed = 0;
    for t in year_of_hourly_runs() {
        present.push(candidate(t));
        let plan = plan(&present, &policy).unwrap();
        assert_eq!(plan.keep[0].set.started_at, t, "the newest set is kept");
        removed += plan.remove.len();
        present = plan.keep.into_iter().map(|k| k.set).collect();
        // the daily, weekly and monthly rules keep at most 17 sets at any time, last 3 more
        assert!(present.len() <= 20, "{} sets kept at {t}", present.len());
    }
    let mut times: Vec<_> = present.iter().map(|c| c.started_at).collect();
    times.sort();
    assert_eq!(times, expected_default());
    assert_eq!(removed + present.len(), 8760);
}

#[test]
fn hourly_and_monthly_rules_keep_their_buckets() {
    let sets: Vec<_> = year_of_hourly_runs().into_iter().map(candidate).collect();
    let plan = plan(&sets, &policy(0, 24, 0, 0, 24)).unwrap();
    let mut expected: Vec<_> = (0..24)
        .map(|h| at(2026, 12, 31, 0, 17) + Duration::hours(h))
        .collect();
    // only 12 months exist: each one's last run is kept, and nothing fails
    for (month, last_day) in [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30]
        .into_iter()
        .enumerate()
    {
        expected.push(at(2026, month as u32 + 1, last_day, 23, 17));
    }
    expected.sort();
    assert_eq!(kept_times(&plan), expected);
    let monthly: Vec<_> = plan
        .keep
        .iter()
        .flat_map(|k| &k.reasons)
        .filter(|r| r.starts_with("monthly "))
        .collect();
    assert_eq!(monthly.len(), 12);
    assert_eq!(plan.keep[1].reasons, ["hourly 2026-12-31T22"]);
}

#[test]
fn the_newest_set_is_kept_first_and_ties_are_ordered_by_name() {
    let t = at(2026, 11, 25, 3, 45);
    let sets = vec![
        Candidate {
            name: "a".into(),
            started_at: t,
        },
        Candidate {
            name: "b".into(),
            started_at: t,
        },
        candidate(t - Duration::days(1)),
    ];
    let plan = plan(&sets, &policy(0, 0, 1, 0, 0)).unwrap();
    assert_eq!(plan.keep.len(), 1);
    assert_eq!(plan.keep[0].set.name, "b");
    assert_eq!(plan.keep[0].reasons, ["newest", "daily 2026-11-25"]);
    let removed: Vec<_> = plan.remove.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(removed, ["a", "20261124T034500Z"]);
}

#[test]
fn keep_last_counts_sets_not_buckets() {
    let t = at(2026, 11, 25, 3, 0);
    let sets: Vec<_> = (0..5)
        .map(|m| candidate(t + Duration::minutes(m)))
        .collect();
    let plan = plan(&sets, &policy(2, 1, 0, 0, 0)).unwrap();
    let reasons: Vec<_> = plan.keep.iter().map(|k| k.reasons.clone()).collect();
    assert_eq!(
        reasons,
        [
            vec!["newest", "last 1/2", "hourly 2026-11-25T03"],
            vec!["last 2/2"]
        ]
    );
    assert_eq!(plan.remove.len(), 3);
}

#[test]
fn a_policy_that_keeps_nothing_is_refused() {
    let sets = vec![candidate(at(2026, 1, 1, 0, 0))];
    assert_eq!(
        plan(&sets, &policy(0, 0, 0, 0, 0)),
        Err(RetentionError::KeepsNothing)
    );
    let text = RetentionError::KeepsNothing.to_string();
    assert!(
        text.contains("keep-last") && text.contains("refusing"),
        "{text}"
    );
    // no sets: nothing to do, whatever the policy keeps
    assert_eq!(plan(&[], &policy(1, 0, 0, 0, 0)), Ok(Plan::default()));
}

#[test]
fn weeks_are_iso_weeks_across_a_year_end() {
    // Sunday 2027-01-03 is still in ISO week 2026-W53; Monday 2027-01-04 starts 2027-W01
    let sets = vec![
        candidate(at(2027, 1, 4, 0, 0)),
        candidate(at(2027, 1, 3, 23, 0)),
        candidate(at(2026, 12, 28, 0, 0)),
        candidate(at(2026, 12, 27, 12, 0)),
    ];
    let plan = plan(&sets, &policy(0, 0, 0, 3, 0)).unwrap();
    let kept: Vec<_> = plan.keep.iter().map(|k| k.reasons.join(",")).collect();
    assert_eq!(
        kept,
        [
            "newest,weekly 2027-W01",
            "weekly 2026-W53",
            "weekly 2026-W52"
        ]
    );
    assert_eq!(plan.remove, vec![candidate(at(2026, 12, 28, 0, 0))]);
}
