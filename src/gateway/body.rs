//! A request body that a blocking thread feeds chunk by chunk through a bounded channel, so
//! that an object goes up in one request while only a few chunks of it are in memory.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// The feeding end: `send` blocks while the channel is full; an `Err` aborts the request.
pub type BodySender = mpsc::Sender<io::Result<Bytes>>;

/// The body half, handed to the request ([`aws_sdk_s3::primitives::ByteStream::from_body_1_x`]).
pub struct ChannelBody {
    chunks: mpsc::Receiver<io::Result<Bytes>>,
    len: u64,
}

/// A body of exactly `len` bytes, and its sender; at most `depth` chunks wait in between.
pub fn channel_body(len: u64, depth: usize) -> (BodySender, ChannelBody) {
    let (tx, rx) = mpsc::channel(depth.max(1));
    (tx, ChannelBody { chunks: rx, len })
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(Frame::data)))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn chunks_arrive_in_order_and_an_error_ends_the_body() {
        crate::runtime::block_on(async {
            let (tx, body) = channel_body(6, 1);
            let feeder = std::thread::spawn(move || {
                tx.blocking_send(Ok(Bytes::from_static(b"abc"))).unwrap();
                tx.blocking_send(Ok(Bytes::from_static(b"def"))).unwrap();
            });
            assert_eq!(body.size_hint().exact(), Some(6));
            let all = body.collect().await.unwrap().to_bytes();
            assert_eq!(&all[..], b"abcdef");
            feeder.join().unwrap();

            let (tx, body) = channel_body(6, 2);
            tx.send(Ok(Bytes::from_static(b"abc"))).await.unwrap();
            tx.send(Err(io::Error::other("bytes do not match")))
                .await
                .unwrap();
            let err = body.collect().await.expect_err("the error ends the body");
            assert!(err.to_string().contains("do not match"), "{err}");
        });
    }
}
