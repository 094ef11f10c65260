//! Server-side copy of a staged gateway object to its address: one CopyObject up to the copy
//! limit (S3 allows 5 GiB), above it a multipart upload at the address whose parts are
//! UploadPartCopy ranges of the staged object.
//!
//! Nothing half-copied is ever visible at an address: an incomplete multipart upload is not an
//! object, any failure aborts it, and one left by a killed run is aborted by the start-up
//! sweep once no gateway writer is alive (see [`super::sweep`]).

use super::bucket::Bucket;
use super::layout::MAX_PARTS;
use super::S3Error;
use crate::config::{MAX_COPY_LIMIT, MIN_COPY_LIMIT};
use std::ops::RangeInclusive;

/// The byte ranges (inclusive) that copy an object of `size` bytes in parts of `limit` bytes,
/// or larger ones when 10,000 parts of `limit` would not cover it. Every part but the last is
/// at least 5 MiB, none is over 5 GiB; `None` when even 10,000 parts of 5 GiB are too few.
pub fn copy_ranges(size: u64, limit: u64) -> Option<Vec<RangeInclusive<u64>>> {
    let part = limit
        .max(MIN_COPY_LIMIT)
        .max(size.div_ceil(MAX_PARTS as u64));
    if part > MAX_COPY_LIMIT {
        return None;
    }
    Some(
        (0..size)
            .step_by(part as usize)
            .map(|first| first..=(first + part).min(size) - 1)
            .collect(),
    )
}

/// Copies the staged object `from` (`size` bytes) to `to`: with CopyObject when `size` is at
/// most `limit`, else as a multipart copy in parts of [`copy_ranges`], aborted on any failure.
pub async fn copy_to_address(
    bucket: &Bucket,
    from: &str,
    to: &str,
    size: u64,
    limit: u64,
) -> Result<(), S3Error> {
    if size <= limit {
        return bucket.copy(from, to, size).await;
    }
    let ranges = copy_ranges(size, limit).ok_or_else(|| S3Error::TooLarge {
        bucket: bucket.name().into(),
        key: to.into(),
        max: MAX_PARTS,
    })?;
    tracing::debug!(key = %to, size, parts = ranges.len(), "Copying a large object to its address in parts.");
    let upload_id = bucket.create_upload(to).await?;
    let result = async {
        let mut parts = Vec::with_capacity(ranges.len());
        for (number, range) in (1..).zip(ranges) {
            parts.push(
                bucket
                    .copy_part(from, to, &upload_id, number, range)
                    .await?,
            );
        }
        bucket.complete_upload(to, &upload_id, parts).await
    }
    .await;
    if result.is_err() {
        if let Err(e) = bucket.abort_upload(to, &upload_id).await {
            tracing::warn!("Could not abort the multipart copy to an object's address (the next start sweeps it): {e}");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Checks that `ranges` cover `0..size` exactly, in order, within S3's part rules.
    fn assert_s3_parts(size: u64, ranges: &[RangeInclusive<u64>]) {
        assert!(
            !ranges.is_empty() && ranges.len() <= 10_000,
            "{}",
            ranges.len()
        );
        let mut next = 0;
        for (i, r) in ranges.iter().enumerate() {
            assert_eq!(
                *r.start(),
                next,
                "part {} starts where the last ended",
                i + 1
            );
            let len = r.end() - r.start() + 1;
            assert!(len <= 5 << 30, "part {} of {len} bytes", i + 1);
            if i + 1 < ranges.len() {
                assert!(len >= 5 * MIB, "part {} of {len} bytes", i + 1);
            }
            next = r.end() + 1;
        }
        assert_eq!(next, size, "the parts end at the last byte");
    }

    #[test]
    fn ranges_cover_the_object_with_the_last_part_short() {
        let size = 17 * MIB + 12_345;
        let ranges = copy_ranges(size, 5 * MIB).unwrap();
        assert_eq!(
            ranges,
            vec![
                0..=5 * MIB - 1,
                5 * MIB..=10 * MIB - 1,
                10 * MIB..=15 * MIB - 1,
                15 * MIB..=size - 1,
            ]
        );
        assert_s3_parts(size, &ranges);
    }

    #[test]
    fn an_exact_multiple_has_no_empty_last_part() {
        let ranges = copy_ranges(15 * MIB, 5 * MIB).unwrap();
        assert_eq!(ranges.len(), 3);
        assert_eq!(ranges[2], 10 * MIB..=15 * MIB - 1);
        assert_s3_parts(15 * MIB, &ranges);
        let one_more = copy_ranges(15 * MIB + 1, 5 * MIB).unwrap();
        assert_eq!(one_more.len(), 4);
        assert_eq!(one_more[3], 15 * MIB..=15 * MIB);
    }

    #[test]
    fn default_limit_copies_in_parts_of_5_gib() {
        let size = (6 << 30) + 7;
        let ranges = copy_ranges(size, 5 << 30).unwrap();
        assert_eq!(ranges, vec![0..=(5 << 30) - 1, 5 << 30..=size - 1]);
        assert_s3_parts(size, &ranges);
    }

    #[test]
    fn parts_grow_to_stay_within_10000() {
        // 100 GiB in parts of 5 MiB would be 20,480 parts
        let size = 100 << 30;
        let ranges = copy_ranges(size, 5 * MIB).unwrap();
        assert!(ranges.len() <= 10_000, "{}", ranges.len());
        assert_s3_parts(size, &ranges);
        // S3's largest object (5 TiB) fits at any limit
        let max = 5 << 40;
        for limit in [5 * MIB, 64 * MIB, 5 << 30] {
            assert_s3_parts(max, &copy_ranges(max, limit).unwrap());
        }
        // beyond 10,000 parts of 5 GiB there is no way
        assert!(copy_ranges(10_000 * (5 << 30) + 1, 5 * MIB).is_none());
        assert_s3_parts(
            10_000 * (5 << 30),
            &copy_ranges(10_000 * (5 << 30), 5 * MIB).unwrap(),
        );
    }

    #[test]
    fn a_limit_below_5_mib_still_gives_5_mib_parts() {
        let ranges = copy_ranges(12 * MIB, 1).unwrap();
        assert_eq!(ranges.len(), 3);
        assert_s3_parts(12 * MIB, &ranges);
    }
}
