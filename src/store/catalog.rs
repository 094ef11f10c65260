//! Which sets at a destination are complete, and picking one by id or `latest`.

use super::{Destination, JobKind, Manifest, RunId, SetRef, StoreError};

/// The complete sets found, newest last, and the sets skipped with the reason.
#[derive(Debug, Default)]
pub struct Listing {
    pub complete: Vec<Manifest>,
    /// Sets whose manifest exists but cannot be used (corrupt, truncated, mismatched).
    pub unreadable: Vec<(SetRef, String)>,
}

/// Reads the manifest of every set; sets without one are incomplete and left out silently,
/// sets with a bad one are reported in [`Listing::unreadable`].
pub fn list_complete(dest: &dyn Destination, job: Option<JobKind>) -> Result<Listing, StoreError> {
    let mut sets = dest.list_sets(job)?;
    sets.sort_by(|a, b| a.run_id.cmp(&b.run_id).then(a.job.cmp(&b.job)));
    let mut listing = Listing::default();
    for set in sets {
        let Some(bytes) = dest.read_manifest(&set)? else {
            continue;
        };
        match Manifest::from_json(&bytes) {
            Ok(m) if m.job == set.job && m.run_id == set.run_id => listing.complete.push(m),
            Ok(m) => listing.unreadable.push((
                set,
                format!("manifest describes {}/{} instead", m.job, m.run_id),
            )),
            Err(e) => listing
                .unreadable
                .push((set, format!("manifest is corrupt: {e}"))),
        }
    }
    Ok(listing)
}

/// How the user names a set on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetSelector {
    /// The newest complete set (of the given job, when one is given).
    Latest,
    /// `job/run-id` as `list` prints it.
    Set(SetRef),
    /// A bare run id.
    Run(RunId),
}

impl std::str::FromStr for SetSelector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "latest" {
            Ok(SetSelector::Latest)
        } else if s.contains('/') {
            s.parse().map(SetSelector::Set)
        } else {
            s.parse().map(SetSelector::Run)
        }
    }
}

/// Finds the complete set the selector names among `listing`.
pub fn find_set<'a>(
    listing: &'a Listing,
    selector: &SetSelector,
    job: Option<JobKind>,
) -> Option<&'a Manifest> {
    let of_job = |m: &&Manifest| job.is_none_or(|j| m.job == j);
    match selector {
        SetSelector::Latest => listing.complete.iter().rev().find(of_job),
        SetSelector::Set(set) => listing
            .complete
            .iter()
            .find(|m| m.job == set.job && m.run_id == set.run_id),
        SetSelector::Run(run) => listing
            .complete
            .iter()
            .filter(of_job)
            .find(|m| &m.run_id == run),
    }
}
