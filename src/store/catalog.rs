//! Which sets at a destination are complete, and picking one by id or `latest`.

use super::catalog_index::{merge, CatalogIndex, IndexEntry, ListedManifest};
use super::{Destination, JobKind, Manifest, RunId, SetRef, StoreError};

/// The complete sets found, newest last, and the sets skipped with the reason.
#[derive(Debug, Default)]
pub struct Listing {
    pub complete: Vec<Manifest>,
    /// Sets whose manifest exists but cannot be used (corrupt, truncated, mismatched).
    pub unreadable: Vec<(SetRef, String)>,
}

/// The complete sets (those whose manifest is listed); sets without a manifest are incomplete
/// and left out silently, sets with a bad one are reported in [`Listing::unreadable`].
///
/// Each job's manifests are listed (the truth of what exists), then taken from the job's
/// catalog index where it describes them unchanged; only the others are read, and the index
/// is rewritten when it changed (best effort: a failure is a warning). See
/// [`super::catalog_index`].
pub fn list_complete(dest: &dyn Destination, job: Option<JobKind>) -> Result<Listing, StoreError> {
    let mut listing = Listing::default();
    for kind in JobKind::ALL
        .into_iter()
        .filter(|j| job.is_none_or(|want| want == *j))
    {
        list_job(dest, kind, &mut listing)?;
    }
    listing
        .complete
        .sort_by(|a, b| a.run_id.cmp(&b.run_id).then(a.job.cmp(&b.job)));
    listing
        .unreadable
        .sort_by(|(a, _), (b, _)| a.run_id.cmp(&b.run_id).then(a.job.cmp(&b.job)));
    Ok(listing)
}

/// Brings the index of `job` up to date with its manifests (after a set is completed or
/// deleted). Best effort: a destination that cannot be read is a warning, the index being only
/// a cache that the next reader rebuilds.
pub fn refresh_index(dest: &dyn Destination, job: JobKind) {
    if let Err(e) = list_job(dest, job, &mut Listing::default()) {
        tracing::warn!(job = %job, error = %e, "Could not bring the catalog index up to date; the next listing rebuilds it.");
    }
}

/// Adds the complete and unreadable sets of one job to `listing`.
fn list_job(dest: &dyn Destination, job: JobKind, listing: &mut Listing) -> Result<(), StoreError> {
    let listed = dest.list_manifests(job)?;
    let (index, present) = read_index(dest, job);
    let plan = merge(index.as_ref().map_or(&[], |i| &i.sets), &listed);
    let cached = plan.cached.len();
    let mut entries = plan.cached;
    let mut read = 0;
    for manifest in plan.to_read {
        read += 1;
        match read_entry(dest, manifest)? {
            ManifestRead::Gone => {}
            ManifestRead::Complete(entry) => entries.push(*entry),
            ManifestRead::Unreadable(set, reason) => listing.unreadable.push((set, reason)),
        }
    }
    let added = entries.len() - cached;
    tracing::debug!(
        job = %job,
        sets = entries.len(),
        from_index = cached,
        manifests_read = read,
        dropped = plan.dropped.len(),
        "Listed the complete sets of a job."
    );
    listing
        .complete
        .extend(entries.iter().map(|e| e.manifest.clone()));
    // a job without sets and without an index gets none (nothing to save, no folder made)
    let unusable = index.is_none() && (present || !entries.is_empty());
    if unusable || added > 0 || !plan.dropped.is_empty() {
        let bytes = CatalogIndex::new(job, entries).encode();
        if let Err(e) = dest.write_index(job, &bytes) {
            tracing::warn!(job = %job, error = %e, "Could not write the catalog index; listings read the manifests it lacks until it is written.");
        }
    }
    Ok(())
}

/// The index of `job`, `None` when it is missing, unreadable or damaged (then rebuilt); and
/// whether something is there under its name.
fn read_index(dest: &dyn Destination, job: JobKind) -> (Option<CatalogIndex>, bool) {
    match dest.read_index(job) {
        Ok(Some(bytes)) => match CatalogIndex::decode(&bytes, job) {
            Ok(index) => (Some(index), true),
            Err(reason) => {
                tracing::warn!(job = %job, reason = %reason, "The catalog index is damaged; rebuilding it from the manifests.");
                (None, true)
            }
        },
        Ok(None) => {
            tracing::debug!(job = %job, "No catalog index yet; building it from the manifests.");
            (None, false)
        }
        Err(e) => {
            tracing::warn!(job = %job, error = %e, "Cannot read the catalog index; reading the manifests instead.");
            (None, true)
        }
    }
}

/// What reading one listed manifest gave.
enum ManifestRead {
    /// Deleted since it was listed.
    Gone,
    Complete(Box<IndexEntry>),
    Unreadable(SetRef, String),
}

fn read_entry(dest: &dyn Destination, listed: ListedManifest) -> Result<ManifestRead, StoreError> {
    let set = listed.set;
    let Some(bytes) = dest.read_manifest(&set)? else {
        return Ok(ManifestRead::Gone);
    };
    Ok(match Manifest::from_json(&bytes) {
        Ok(m) if m.job == set.job && m.run_id == set.run_id => {
            ManifestRead::Complete(Box::new(IndexEntry {
                // the size read, in case it changed since the listing (the tag is then stale
                // too, so the next listing reads it again)
                manifest_size: bytes.len() as u64,
                manifest_version: listed.version,
                manifest: m,
            }))
        }
        Ok(m) => ManifestRead::Unreadable(
            set,
            format!("manifest describes {}/{} instead", m.job, m.run_id),
        ),
        Err(e) => ManifestRead::Unreadable(set, format!("manifest is corrupt: {e}")),
    })
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
