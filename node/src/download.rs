//! Streams a dataset's bytes to a reader: straight from a complete data file, or following a
//! fetch job, sending each stretch as soon as its blocks are in. Reads go in 1 MiB pieces on the
//! blocking pool, so memory per download is one piece whatever the dataset's size.
//!
//! A stream that cannot go on (its fetch failed, a read failed) yields an error and ends: the
//! HTTP server then aborts the response, so the client sees a failed body, never a clean one
//! that is merely short.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::watch;
use tracing::warn;

use crate::content::encryption::Decryptor;
use crate::fetch::{FetchJob, FetchState};

const LOG: &str = "vellum::download";
const PIECE: u64 = 1 << 20;

type BoxStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// A dataset's bytes as a stream of pieces.
pub struct DatasetStream(BoxStream);

impl std::fmt::Debug for DatasetStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatasetStream")
    }
}

struct Cursor {
    file: Arc<File>,
    pos: u64,
    size: u64,
    block_size: u64,
    progress: Option<watch::Receiver<FetchState>>,
    job: Option<Arc<FetchJob>>,
}

impl Cursor {
    /// How far the file can be read now, waiting for the fetch if it must.
    async fn readable_end(&mut self) -> io::Result<u64> {
        let Some(rx) = self.progress.as_mut() else { return Ok(self.size) };
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                FetchState::Done => return Ok(self.size),
                FetchState::Failed(reason) => return Err(io::Error::other(reason)),
                FetchState::Running(blocks) => {
                    let end = (blocks * self.block_size).min(self.size);
                    if end > self.pos {
                        return Ok(end);
                    }
                }
            }
            if rx.changed().await.is_err() {
                // The job ended without a final word; only trust a complete count.
                return match &*rx.borrow() {
                    FetchState::Done => Ok(self.size),
                    _ => Err(io::Error::other("fetch stopped")),
                };
            }
        }
    }

    /// Waits until the fetch job has committed the dataset, so that a reader who saw the last
    /// byte can rely on the node holding it.
    async fn committed(&mut self) -> io::Result<()> {
        match self.job.take() {
            Some(job) => job.finished().await.map_err(io::Error::other),
            None => Ok(()),
        }
    }

    /// Ends the stream with `error` (the next poll yields nothing).
    fn fail(mut self, error: io::Error) -> Option<(io::Result<Bytes>, Self)> {
        warn!(target: LOG, sent = self.pos, size = self.size, %error, "download cut short by an error");
        self.pos = self.size;
        self.job = None;
        Some((Err(error), self))
    }

    async fn next_piece(mut self) -> Option<(io::Result<Bytes>, Self)> {
        if self.pos >= self.size {
            return match self.committed().await {
                Ok(()) => None,
                Err(e) => self.fail(e),
            };
        }
        let end = match self.readable_end().await {
            Ok(e) => e,
            Err(e) => return self.fail(e),
        };
        let len = (end - self.pos).min(PIECE);
        if self.pos + len == self.size
            && let Err(e) = self.committed().await
        {
            // The last byte goes out only once the node has committed the dataset: an HTTP
            // body with a length is complete at its last byte, so a client that has it may
            // at once rely on the node holding the data.
            return self.fail(e);
        }
        let file = Arc::clone(&self.file);
        let pos = self.pos;
        let read = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, pos).map(|()| Bytes::from(buf))
        })
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)));
        match read {
            Ok(b) => {
                self.pos += len;
                Some((Ok(b), self))
            }
            Err(e) => self.fail(e),
        }
    }
}

impl DatasetStream {
    /// The whole of a complete data file.
    pub fn local(file: Arc<File>, size: u64) -> Self {
        let cursor = Cursor { file, pos: 0, size, block_size: 1, progress: None, job: None };
        Self(Box::pin(futures::stream::unfold(cursor, Cursor::next_piece)))
    }

    /// A dataset still arriving: each stretch is sent once its blocks are in.
    pub fn following(job: &Arc<FetchJob>) -> Self {
        let cursor = Cursor {
            file: Arc::clone(&job.file),
            pos: 0,
            size: job.manifest.dataset_size,
            block_size: u64::from(job.manifest.block_size),
            progress: Some(job.state.clone()),
            job: Some(Arc::clone(job)),
        };
        Self(Box::pin(futures::stream::unfold(cursor, Cursor::next_piece)))
    }
}

impl DatasetStream {
    /// Pieces produced elsewhere (a rebuild from slots) and sent down a bounded channel.
    pub fn from_channel(rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>) -> Self {
        Self(Box::pin(futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })))
    }

    /// `first` (a piece already taken from this stream), then the rest.
    pub fn prepend(self, first: Option<io::Result<Bytes>>) -> Self {
        Self(Box::pin(futures::StreamExt::chain(futures::stream::iter(first), self)))
    }

    /// The plaintext of an encrypted dataset's stream: plaintext goes out only once its block
    /// has been authenticated. The first failure (a damaged block, a short stream) ends the
    /// stream with an error, and nothing after the failing block is released. Opening runs
    /// here, on the async side: AES-GCM opens a 1 MiB piece in about 0.13 ms on this project's
    /// machine, less than handing it to the blocking pool costs (and a piece allocated on one
    /// of many pool threads and freed on another kept ~100 MB more resident in a 1 GiB download).
    pub fn unsealed(self, decryptor: Decryptor) -> Self {
        struct Unsealing {
            inner: DatasetStream,
            decryptor: Option<Decryptor>,
        }
        async fn next(mut u: Unsealing) -> Option<(io::Result<Bytes>, Unsealing)> {
            loop {
                let mut d = u.decryptor.take()?;
                let piece = futures::StreamExt::next(&mut u.inner).await;
                let mut out = Vec::with_capacity(piece.as_ref().map_or(0, |p| p.as_ref().map_or(0, Bytes::len)));
                let opened = match piece {
                    Some(Ok(bytes)) => d.push(&bytes, &mut out).map(|()| Some(d)),
                    Some(Err(e)) => return Some((Err(e), u)),
                    None => d.finish(&mut out).map(|()| None),
                };
                match opened {
                    Ok(d) => {
                        let more = d.is_some();
                        u.decryptor = d;
                        if !out.is_empty() {
                            return Some((Ok(Bytes::from(out)), u));
                        }
                        if !more {
                            return None;
                        }
                    }
                    Err(e) => {
                        warn!(target: LOG, error = %e, "encrypted download stopped");
                        return Some((Err(io::Error::new(io::ErrorKind::InvalidData, e)), u));
                    }
                }
            }
        }
        let state = Unsealing { inner: self, decryptor: Some(decryptor) };
        Self(Box::pin(futures::stream::unfold(state, next)))
    }
}

impl Stream for DatasetStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx)
    }
}
