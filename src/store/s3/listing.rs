//! Listing a bucket: one folder level, every key under a prefix, the open multipart uploads;
//! each following every page.

use super::bucket::{to_chrono, Bucket};
use super::S3Error;
use chrono::{DateTime, Utc};

/// One level of a listing with delimiter `/`.
#[derive(Debug, Default)]
pub struct Folder {
    /// Common prefixes (`.../name/`).
    pub folders: Vec<String>,
    /// Objects directly in the folder, with their last-modified time.
    pub objects: Vec<(String, Option<DateTime<Utc>>)>,
}

/// One key of a flat listing.
#[derive(Debug, Clone)]
pub struct ListedKey {
    pub key: String,
    pub size: u64,
    pub last_modified: Option<DateTime<Utc>>,
    /// Changes whenever the object is rewritten.
    pub etag: Option<String>,
}

/// An open multipart upload.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<DateTime<Utc>>,
}

impl Bucket {
    /// One level under `prefix` (which ends with `/`), every page.
    pub async fn list_folder(&self, prefix: &str) -> Result<Folder, S3Error> {
        let mut folder = Folder::default();
        let mut token = None;
        loop {
            let page = self
                .sdk()
                .list_objects_v2()
                .bucket(self.name())
                .prefix(prefix)
                .delimiter("/")
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.failed("list", prefix, e))?;
            folder.folders.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
            folder.objects.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| Some((o.key()?.to_owned(), to_chrono(o.last_modified())))),
            );
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(folder),
            }
        }
    }

    /// Every key under `prefix` with its size and last-modified time, page by page, handed to
    /// `visit` (memory: one page); an error from `visit` stops the listing.
    pub async fn for_each_key<E: From<S3Error>>(
        &self,
        prefix: &str,
        mut visit: impl FnMut(ListedKey) -> Result<(), E>,
    ) -> Result<(), E> {
        self.for_each_key_while(prefix, |key| visit(key).map(|()| true))
            .await
    }

    /// Like [`Bucket::for_each_key`], in key order, stopping (without listing further pages)
    /// as soon as `visit` returns `false`.
    pub async fn for_each_key_while<E: From<S3Error>>(
        &self,
        prefix: &str,
        mut visit: impl FnMut(ListedKey) -> Result<bool, E>,
    ) -> Result<(), E> {
        let mut token = None;
        loop {
            let page = self
                .sdk()
                .list_objects_v2()
                .bucket(self.name())
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.failed("list", prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let go_on = visit(ListedKey {
                    key: key.to_owned(),
                    size: object.size().unwrap_or_default().max(0) as u64,
                    last_modified: to_chrono(object.last_modified()),
                    etag: object.e_tag().map(str::to_owned),
                })?;
                if !go_on {
                    return Ok(());
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(()),
            }
        }
    }

    /// Every key under `prefix`, every page.
    pub async fn list_all(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let mut keys = Vec::new();
        self.for_each_key(prefix, |listed| {
            keys.push(listed.key);
            Ok::<(), S3Error>(())
        })
        .await?;
        Ok(keys)
    }

    /// Every open multipart upload under `prefix`, every page.
    pub async fn list_uploads(&self, prefix: &str) -> Result<Vec<Upload>, S3Error> {
        let mut uploads = Vec::new();
        let (mut key_marker, mut id_marker) = (None, None);
        loop {
            let page = self
                .sdk()
                .list_multipart_uploads()
                .bucket(self.name())
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| self.failed("list multipart uploads under", prefix, e))?;
            uploads.extend(page.uploads().iter().filter_map(|u| {
                Some(Upload {
                    key: u.key()?.to_owned(),
                    upload_id: u.upload_id()?.to_owned(),
                    initiated: to_chrono(u.initiated()),
                })
            }));
            if page.is_truncated() != Some(true) {
                return Ok(uploads);
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            id_marker = page.next_upload_id_marker().map(str::to_owned);
            if key_marker.is_none() {
                return Ok(uploads);
            }
        }
    }
}
