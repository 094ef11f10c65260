//! Reading an object as a `std::io::Read`: one body chunk at a time, through the shared runtime.

use super::bucket::ObjectBody;
use super::S3Error;
use crate::runtime::block_on;
use bytes::{Buf, Bytes};
use std::io::{self, Read};

/// The body of a GetObject as a blocking reader; holds one network chunk at most.
pub struct ObjectReader {
    body: ObjectBody,
    chunk: Bytes,
    bucket: String,
    key: String,
    done: bool,
}

impl ObjectReader {
    pub fn new(body: ObjectBody, bucket: &str, key: String) -> Self {
        Self {
            body,
            chunk: Bytes::new(),
            bucket: bucket.into(),
            key,
            done: false,
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        while self.chunk.is_empty() {
            if self.done {
                return Ok(0);
            }
            match block_on(self.body.stream.next()) {
                None => self.done = true,
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(source)) => {
                    return Err(io::Error::other(S3Error::Body {
                        endpoint: self.body.endpoint.clone(),
                        bucket: self.bucket.clone(),
                        key: self.key.clone(),
                        source,
                    }))
                }
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}
