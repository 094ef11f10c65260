//! The gateway job's plan as a stream: a bucket's listing, page by page, merged against the
//! bucket's records in the previous snapshot, read as a second sorted stream (snapshots are
//! written in listing order). Memory is a page and a short queue, whatever the bucket's size.
//!
//! A key matched with the same size and ETag is carried over; everything else is copied. The
//! merge never mistakes a changed object for an unchanged one whatever the order of either
//! stream (a match needs the same key); out-of-order input only costs extra copies.

use super::snapshot::{open_snapshot, ObjectRecord};
use super::stream::{visit_snapshot, RecordVisitor};
use crate::gateway::{ListPage, ListedObject};
use crate::store::{is_object_name, Destination, Manifest};
use std::iter::Peekable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::Scope;

/// Records of the previous snapshot queued ahead of the merge.
const PREVIOUS_QUEUE: usize = 1024;

/// What to do with one listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Same key, size and ETag as in the previous snapshot: carry its record over, read nothing.
    Unchanged(ObjectRecord),
    /// New or changed: read it and store its bytes.
    Copy(ListedObject),
}

/// A bucket's listing as a stream of objects, fetching the next page when the last is used up.
pub struct Listing<F> {
    fetch: F,
    page: std::vec::IntoIter<ListedObject>,
    /// The marker of the next page; `None` once the last page was fetched.
    next: Option<String>,
    failed: bool,
}

impl<F, E> Listing<F>
where
    F: FnMut(String) -> Result<ListPage, E>,
{
    /// The listing that starts with `first` (fetched already) and goes on with `fetch(marker)`.
    pub fn new(first: ListPage, fetch: F) -> Self {
        Self {
            fetch,
            page: first.objects.into_iter(),
            next: first.next,
            failed: false,
        }
    }
}

impl<F, E> Iterator for Listing<F>
where
    F: FnMut(String) -> Result<ListPage, E>,
{
    type Item = Result<ListedObject, E>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(object) = self.page.next() {
                return Some(Ok(object));
            }
            if self.failed {
                return None;
            }
            let marker = self.next.take()?;
            match (self.fetch)(marker) {
                Ok(page) => {
                    self.page = page.objects.into_iter();
                    self.next = page.next;
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// The merge of a listing with the previous snapshot's records of the same bucket.
pub struct Merge<L, P: Iterator> {
    listed: L,
    previous: Peekable<P>,
}

/// Plans each listed object of `listed` against `previous` (both in key order).
pub fn merge<L, P, E>(listed: L, previous: P) -> Merge<L, P>
where
    L: Iterator<Item = Result<ListedObject, E>>,
    P: Iterator<Item = ObjectRecord>,
{
    Merge {
        listed,
        previous: previous.peekable(),
    }
}

impl<L, P, E> Iterator for Merge<L, P>
where
    L: Iterator<Item = Result<ListedObject, E>>,
    P: Iterator<Item = ObjectRecord>,
{
    type Item = Result<Action, E>;

    fn next(&mut self) -> Option<Self::Item> {
        let listed = match self.listed.next()? {
            Ok(listed) => listed,
            Err(e) => return Some(Err(e)),
        };
        // records before this key were deleted since
        while self.previous.next_if(|p| p.key < listed.key).is_some() {}
        let action = match self.previous.next_if(|p| p.key == listed.key) {
            Some(p) if p.size == listed.size && p.etag == listed.etag => Action::Unchanged(p),
            _ => Action::Copy(listed),
        };
        Some(Ok(action))
    }
}

/// The records of `bucket` in the snapshot of `manifest`, read on a thread of `scope` ahead of
/// the merge, up to the end of that bucket. A snapshot that cannot be read (or stops making sense) ends the stream with a
/// warning: the objects after that point are copied, which is slower but never wrong.
pub fn previous_records<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    dest: &'env dyn Destination,
    manifest: &'env Manifest,
    bucket: &'env str,
) -> mpsc::IntoIter<ObjectRecord> {
    let (queue, records) = mpsc::sync_channel(PREVIOUS_QUEUE);
    scope.spawn(move || {
        let merge_ended = AtomicBool::new(false);
        let read = open_snapshot(dest, manifest)
            .map_err(|e| e.to_string())
            .and_then(|(json, set)| {
                visit_snapshot(
                    json,
                    RecordVisitor {
                        wants: &|name: &str| name == bucket,
                        record: &mut |_: &str, record: ObjectRecord| {
                            if !is_object_name(&record.sha256) {
                                return Err(format!(
                                    "object {bucket}/{} has sha256 {:?}, not 64 lowercase hex digits",
                                    record.key, record.sha256
                                ));
                            }
                            queue.send(record).map_err(|_| {
                                merge_ended.store(true, Ordering::Relaxed);
                                "the merge ended".to_string()
                            })
                        },
                        // the rest of the snapshot holds other buckets: stop reading
                        bucket_done: &mut |_: &str| {
                            merge_ended.store(true, Ordering::Relaxed);
                            Err("the bucket's records are all read".to_string())
                        },
                    },
                )
                .map_err(|e| format!("{set}: {e}"))
            });
        if let Err(e) = read {
            if !merge_ended.load(Ordering::Relaxed) {
                tracing::warn!(
                    bucket,
                    "Cannot read the previous gateway snapshot to its end; copying the objects \
                     after the last record read: {e}"
                );
            }
        }
    });
    records.into_iter()
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::test_record as record;
    use super::*;
    use std::collections::HashMap;

    fn listed(key: &str, size: u64, etag: &str) -> ListedObject {
        ListedObject {
            key: key.into(),
            size,
            etag: etag.into(),
        }
    }

    /// `objects` served in pages of `size`, the way a gateway pages a listing.
    fn paged(
        objects: Vec<ListedObject>,
        size: usize,
    ) -> Listing<impl FnMut(String) -> Result<ListPage, String>> {
        let pages: Vec<Vec<ListedObject>> = objects.chunks(size).map(<[_]>::to_vec).collect();
        let page_of = move |i: usize| ListPage {
            objects: pages.get(i).cloned().unwrap_or_default(),
            next: (i + 1 < pages.len()).then(|| pages[i].last().unwrap().key.clone()),
        };
        let first = page_of(0);
        let mut fetched = 0;
        Listing::new(first, move |marker: String| {
            fetched += 1;
            let page = page_of(fetched);
            assert!(
                page.objects.first().is_none_or(|o| o.key > marker),
                "pages resume after their marker"
            );
            Ok(page)
        })
    }

    fn plan(listing: Vec<ListedObject>, previous: Vec<ObjectRecord>, page: usize) -> Vec<Action> {
        merge(paged(listing, page), previous.into_iter())
            .collect::<Result<_, String>>()
            .unwrap()
    }

    #[test]
    fn only_new_or_changed_objects_are_copied() {
        let previous = vec![
            record("deleted", 3, "e4"),
            record("resized", 3, "e2"),
            record("rewritten", 3, "e3"),
            record("same", 3, "e1"),
        ];
        let actions = plan(
            vec![
                listed("new", 1, "e5"),
                listed("resized", 4, "e2"),
                listed("rewritten", 3, "e3-other"),
                listed("same", 3, "e1"),
            ],
            previous,
            2,
        );
        assert_eq!(
            actions,
            vec![
                Action::Copy(listed("new", 1, "e5")),
                Action::Copy(listed("resized", 4, "e2")),
                Action::Copy(listed("rewritten", 3, "e3-other")),
                Action::Unchanged(record("same", 3, "e1")),
            ]
        );
        assert!(plan(vec![listed("a", 0, "x")], vec![], 1)
            .iter()
            .all(|a| matches!(a, Action::Copy(_))));
    }

    /// 20,000 objects listed in pages of 1,000 against a previous snapshot that differs from
    /// the listing on both sides of every page boundary: added, overwritten (new ETag, new
    /// size) and deleted keys. The streamed plan equals the plan by lookup, object for object.
    #[test]
    fn a_paged_listing_of_20000_objects_merges_exactly() {
        const N: usize = 20_000;
        const PAGE: usize = 1_000;
        let key = |i: usize| format!("docker/registry/v2/blobs/{i:06}");
        let near_boundary = |i: usize| matches!(i % PAGE, 0 | 1 | 998 | 999);
        let mut previous = Vec::new();
        let mut listing = Vec::new();
        let (mut added, mut overwritten, mut deleted) = (0, 0, 0);
        for i in 0..N {
            let (size, etag) = (i as u64 % 97, format!("etag-{i}"));
            match (near_boundary(i), i / PAGE % 4) {
                (true, 0) => {
                    added += 1; // only listed
                    listing.push(listed(&key(i), size, &etag));
                }
                (true, 1) => {
                    overwritten += 1;
                    previous.push(record(&key(i), size, &etag));
                    listing.push(listed(&key(i), size, &format!("{etag}-new")));
                }
                (true, 2) => {
                    overwritten += 1;
                    previous.push(record(&key(i), size, &etag));
                    listing.push(listed(&key(i), size + 1, &etag));
                }
                (true, _) => {
                    deleted += 1; // only in the previous snapshot
                    previous.push(record(&key(i), size, &etag));
                }
                (false, _) => {
                    previous.push(record(&key(i), size, &etag));
                    listing.push(listed(&key(i), size, &etag));
                }
            }
        }
        // a deleted run longer than a page, and keys added after the previous snapshot's last
        previous.extend((0..1_500).map(|i| record(&format!("gone/{i:05}"), 1, "g")));
        listing.extend((0..3).map(|i| listed(&format!("zz/{i}"), 1, "z")));
        previous.sort_by(|a, b| a.key.cmp(&b.key));
        listing.sort_by(|a, b| a.key.cmp(&b.key));
        assert!(added > 0 && overwritten > 0 && deleted > 0);

        let by_key: HashMap<&str, &ObjectRecord> =
            previous.iter().map(|r| (r.key.as_str(), r)).collect();
        let expected: Vec<Action> = listing
            .iter()
            .map(|l| match by_key.get(l.key.as_str()) {
                Some(p) if p.size == l.size && p.etag == l.etag => Action::Unchanged((*p).clone()),
                _ => Action::Copy(l.clone()),
            })
            .collect();
        let actions = plan(listing.clone(), previous.clone(), PAGE);
        assert_eq!(actions.len(), listing.len());
        assert_eq!(actions, expected);
        let copies = actions
            .iter()
            .filter(|a| matches!(a, Action::Copy(_)))
            .count();
        assert_eq!(copies, added + overwritten + 3);
    }

    #[test]
    fn a_listing_error_ends_the_plan_after_it_is_reported() {
        let mut calls = 0;
        let listing = Listing::new(
            ListPage {
                objects: vec![listed("a", 1, "e")],
                next: Some("a".into()),
            },
            move |_: String| {
                calls += 1;
                assert_eq!(calls, 1, "a failed listing is not retried by the merge");
                Err::<ListPage, _>("page 2 failed")
            },
        );
        let out: Vec<_> = merge(listing, std::iter::empty()).collect();
        assert_eq!(
            out,
            vec![Ok(Action::Copy(listed("a", 1, "e"))), Err("page 2 failed")]
        );
    }

    #[test]
    fn an_unsorted_previous_snapshot_costs_copies_never_a_wrong_match() {
        let previous = vec![
            record("b", 1, "e"),
            record("a", 1, "e"),
            record("c", 1, "e"),
        ];
        let actions = plan(
            vec![
                listed("a", 1, "e"),
                listed("b", 1, "e"),
                listed("c", 1, "other"),
            ],
            previous,
            10,
        );
        assert_eq!(
            actions,
            vec![
                Action::Copy(listed("a", 1, "e")),
                Action::Unchanged(record("b", 1, "e")),
                Action::Copy(listed("c", 1, "other")),
            ]
        );
    }
}
