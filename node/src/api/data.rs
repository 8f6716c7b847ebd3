//! Data endpoints: upload, download (local or from the network), list, delete, exists, space.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::encrypted::{self, EncryptedUpload, UploadQuery};
use super::schema::{DataItem, DataList, Exists, Space};
use super::{ApiError, AppState, ErrorBody};
use crate::content::encryption::{self, DatasetKey, Decryptor, Encryptor};
use crate::content::manifest::EncryptionInfo;
use crate::content::{ContentId, ContentKind, DEFAULT_BLOCK_SIZE, Manifest};
use crate::download::DatasetStream;
use crate::fetch::blocking;
use crate::server::UploadPolicy;
use crate::store::{DatasetWriter, StoreError};

const LOG: &str = "vellum::api";
/// Pieces queued between a slot rebuild and the HTTP body.
const REBUILD_QUEUE: usize = 4;
/// Body bytes gathered before they go to the disk writer (one blocking task per batch).
const UPLOAD_BATCH: usize = 512 * 1024;
/// The block timeout of an upload when no policy was attached (a router used without the guard).
const DEFAULT_UPLOAD_BLOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn parse_cid(text: &str) -> Result<ContentId, ApiError> {
    Ok(text.parse::<ContentId>()?)
}

/// Reads `filename` from a Content-Disposition header; `Err` when present but unusable.
fn filename_from(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_DISPOSITION) else { return Ok(None) };
    let value = value
        .to_str()
        .map_err(|_| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "content-disposition is not text"))?;
    let Some(pos) = value.find("filename=") else { return Ok(None) };
    let raw = value[pos + "filename=".len()..].split(';').next().unwrap_or_default().trim();
    let name = raw.trim_matches('"');
    if name.is_empty() || name.len() > 255 || name.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid filename {name:?}")));
    }
    Ok(Some(name.to_owned()))
}

/// Reads the media type; `application/octet-stream` means "none given".
fn mimetype_from(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else { return Ok(None) };
    let text =
        value.to_str().map_err(|_| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "content-type is not text"))?;
    let essence = text.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let valid = essence.len() <= 127
        && essence.split_once('/').is_some_and(|(t, s)| {
            let token =
                |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c));
            token(t) && token(s)
        });
    if !valid {
        return Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("invalid content-type {text:?}")));
    }
    Ok((essence != "application/octet-stream").then_some(essence))
}

/// The length the client declared for its body, if any.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Batches written at once by all uploads together: the API's share of the blocking pool (peers
/// are served with a share of their own, see `net::serve`).
static DISK_WRITES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(16);

/// The disk side of an upload: its writer and, for an encrypted upload, the sealer and the
/// buffer the sealed bytes pass through (one per upload, reused).
struct Sink {
    writer: DatasetWriter,
    seal: Option<Seal>,
}

struct Seal {
    encryptor: Encryptor,
    sealed: Vec<u8>,
    key_check: Vec<u8>,
}

impl Sink {
    fn new(writer: DatasetWriter, key: Option<&DatasetKey>) -> Self {
        let seal = key.map(|k| Seal {
            encryptor: Encryptor::new(k, DEFAULT_BLOCK_SIZE),
            sealed: Vec::with_capacity(UPLOAD_BATCH + UPLOAD_BATCH / 32),
            key_check: k.check(),
        });
        Sink { writer, seal }
    }

    fn write(&mut self, batch: &[u8]) -> Result<(), StoreError> {
        match &mut self.seal {
            None => self.writer.write(batch),
            Some(s) => {
                s.sealed.clear();
                s.encryptor.push(batch, &mut s.sealed);
                self.writer.write(&s.sealed)
            }
        }
    }

    /// Seals the final chunk of an encrypted upload and commits the dataset. An encrypted
    /// dataset's manifest keeps no name or media type, only the encryption record.
    fn finish(
        mut self,
        filename: Option<String>,
        mimetype: Option<String>,
    ) -> Result<(ContentId, Manifest), StoreError> {
        let Some(Seal { encryptor, mut sealed, key_check }) = self.seal.take() else {
            return self.writer.finish(filename, mimetype);
        };
        sealed.clear();
        let plaintext_size = encryptor.finish(&mut sealed);
        self.writer.write(&sealed)?;
        self.writer.finish_with(|m| {
            m.encryption = Some(EncryptionInfo { scheme: encryption::SCHEME.into(), plaintext_size, key_check });
        })
    }
}

/// A batch being written on the blocking pool; it gives the sink and the emptied buffer back.
type Write = tokio::task::JoinHandle<Result<(Sink, Vec<u8>), StoreError>>;

/// Starts writing `batch` (waits for a share of the blocking pool first).
async fn start_write(mut writer: Sink, mut batch: Vec<u8>) -> Result<Write, ApiError> {
    let permit = DISK_WRITES.acquire().await.map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let result = writer.write(&batch);
        batch.clear();
        result.map(|()| (writer, batch))
    }))
}

async fn finish_write(write: Write) -> Result<(Sink, Vec<u8>), ApiError> {
    Ok(write.await.map_err(|e| ApiError::internal(e.to_string()))??)
}

/// Drops a writer (which removes its files) off the async threads.
fn discard(writer: Sink) {
    drop(tokio::task::spawn_blocking(move || drop(writer)));
}

/// Stores an upload's body. The body is read here, on the async side, and handed to the disk a
/// batch at a time, so no blocking thread ever waits on a slow client; each 64 KiB must arrive
/// within the policy's block timeout or the upload is cut (408) and everything it wrote and
/// claimed is released. With `key`, the body is sealed before it reaches the disk.
async fn store_upload(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    policy: UploadPolicy,
    key: Option<&DatasetKey>,
) -> Result<(ContentId, Manifest), ApiError> {
    let filename = filename_from(headers)?;
    let mimetype = mimetype_from(headers)?;
    let declared = declared_length(headers);
    let stored = declared.map(|d| if key.is_some() { encryption::ciphertext_size(d, DEFAULT_BLOCK_SIZE) } else { d });
    let store = Arc::clone(&state.store);
    // Refused before any byte is read when the disk cannot hold what the client declares.
    let mut writer = Some(Sink::new(
        blocking(move || {
            store.check_free_space(stored)?;
            store.begin_upload(DEFAULT_BLOCK_SIZE)
        })
        .await?,
        key,
    ));
    let mut batch = Vec::with_capacity(UPLOAD_BATCH);
    // One batch is written while the next one is read (two buffers per upload at most).
    let mut in_flight: Option<Write> = None;
    let mut spare: Option<Vec<u8>> = None;
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    let mut mark = 0u64;
    let mut deadline = tokio::time::Instant::now() + policy.block_timeout;
    let outcome: Result<(), ApiError> = loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                break Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "upload cut after {received} bytes: no {} KiB within {} s",
                        DEFAULT_BLOCK_SIZE / 1024,
                        policy.block_timeout.as_secs()
                    ),
                ));
            }
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => {
                break Err(ApiError::bad_request(format!("upload interrupted after {received} bytes: {e}")));
            }
            Ok(Some(Ok(bytes))) => bytes,
        };
        received += chunk.len() as u64;
        if declared.is_some_and(|d| received > d) {
            break Err(ApiError::bad_request("upload longer than its Content-Length"));
        }
        if received - mark >= u64::from(DEFAULT_BLOCK_SIZE) {
            mark = received;
            deadline = tokio::time::Instant::now() + policy.block_timeout;
        }
        batch.extend_from_slice(&chunk);
        if batch.len() >= UPLOAD_BATCH {
            let w = match (in_flight.take(), writer.take()) {
                (Some(write), _) => match finish_write(write).await {
                    Ok((w, emptied)) => {
                        spare = Some(emptied);
                        w
                    }
                    Err(e) => break Err(e),
                },
                (None, Some(w)) => w,
                (None, None) => break Err(ApiError::internal("upload writer lost")),
            };
            let full = std::mem::replace(&mut batch, spare.take().unwrap_or_default());
            match start_write(w, full).await {
                Ok(write) => in_flight = Some(write),
                Err(e) => break Err(e),
            }
        }
    };
    let w = match (in_flight.take(), writer.take()) {
        (Some(write), _) => finish_write(write).await.map(|(w, _)| w),
        (None, Some(w)) => Ok(w),
        (None, None) => Err(ApiError::internal("upload writer lost")),
    };
    let w = match (outcome, w) {
        (Ok(()), Ok(w)) => w,
        (Err(e), Ok(w)) => {
            discard(w);
            return Err(e);
        }
        // The loop stopped for the writer's own error (a full disk, say), or for another cause
        // while a write was failing: the first error seen is the answer.
        (Err(e), Err(_)) | (Ok(()), Err(e)) => return Err(e),
    };
    let (w, _) = finish_write(start_write(w, batch).await?).await?;
    let (cid, manifest) = tokio::task::spawn_blocking(move || w.finish(filename, mimetype))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    state.metrics.uploads.inc();
    state.metrics.upload_bytes.inc_by(manifest.dataset_size);
    info!(target: LOG, %cid, bytes = manifest.dataset_size, encrypted = manifest.is_encrypted(), "upload stored");
    // Recorded as a provider before the answer, so that a peer told the CID finds us at once.
    let tree = manifest.tree()?;
    for key in [cid, tree] {
        if let Err(e) = state.net.provide(&key).await {
            warn!(target: LOG, %key, error = %e, "could not announce the upload in the DHT");
        }
    }
    Ok((cid, manifest))
}

/// Upload a file (the whitepaper's endpoint); answers its CID as text, or with `encrypt=true`
/// JSON with the CID and the key.
#[utoipa::path(post, path = "/upload", tag = "Data", operation_id = "uploadFile",
    params(("content-type" = Option<String>, Header, nullable = false, description = "The file's media type",
            example = "image/png"),
           ("content-disposition" = Option<String>, Header, nullable = false, description = "The file's name",
            example = "attachment; filename=\"codex.png\""),
           UploadQuery),
    request_body(content = inline(super::schema::Binary), content_type = "application/octet-stream"),
    responses((status = 200, description = "CID of the uploaded file; with `encrypt=true`, JSON with the CID and the key",
               content((String = "text/plain"), (EncryptedUpload = "application/json"))),
              (status = 400, description = "Upload interrupted, or an unknown query parameter", body = ErrorBody),
              (status = 408, description = "The body stalled", body = ErrorBody),
              (status = 422, description = "Invalid filename or content type", body = ErrorBody),
              (status = 500, description = "The upload could not be stored", body = ErrorBody),
              (status = 503, description = "Too many uploads at once; retry after the Retry-After seconds",
               body = ErrorBody),
              (status = 507, description = "Storage quota exceeded", body = ErrorBody)))]
pub(super) async fn upload(
    State(state): State<AppState>,
    policy: Option<Extension<UploadPolicy>>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let policy = policy.map_or(UploadPolicy { block_timeout: DEFAULT_UPLOAD_BLOCK_TIMEOUT }, |Extension(p)| p);
    if query.keep_key == Some(true) && query.encrypt != Some(true) {
        return Err(ApiError::bad_request("keepKey goes with encrypt=true"));
    }
    if query.encrypt != Some(true) {
        let (cid, _) = store_upload(&state, &headers, body, policy, None).await?;
        return Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], cid.to_string()).into_response());
    }
    let key = DatasetKey::generate();
    let (cid, manifest) = store_upload(&state, &headers, body, policy, Some(&key)).await?;
    if query.keep_key == Some(true) {
        encrypted::keep_key(Arc::clone(&state.store), manifest.tree()?, key.clone()).await?;
    }
    Ok(Json(EncryptedUpload { cid: cid.to_string(), key: key.to_hex() }).into_response())
}

/// Upload a file in a streaming manner; answers its CID as text (or, with `encrypt=true`,
/// JSON with the CID and the key).
#[utoipa::path(post, path = "/data", tag = "Data", operation_id = "upload",
    params(("content-type" = Option<String>, Header, nullable = false, description = "The file's media type",
            example = "image/png"),
           ("content-disposition" = Option<String>, Header, nullable = false, description = "The file's name",
            example = "attachment; filename=\"codex.png\""),
           UploadQuery),
    request_body(content = inline(super::schema::Binary), content_type = "application/octet-stream"),
    responses((status = 200, description = "CID of the uploaded file; with `encrypt=true`, JSON with the CID and the key",
               content((String = "text/plain"), (EncryptedUpload = "application/json"))),
              (status = 400, description = "Upload interrupted, or an unknown query parameter", body = ErrorBody),
              (status = 408, description = "The body stalled", body = ErrorBody),
              (status = 422, description = "Invalid filename or content type", body = ErrorBody),
              (status = 500, description = "The upload could not be stored", body = ErrorBody),
              (status = 503, description = "Too many uploads at once; retry after the Retry-After seconds",
               body = ErrorBody),
              (status = 507, description = "Storage quota exceeded", body = ErrorBody)))]
pub(super) async fn upload_data(
    state: State<AppState>,
    policy: Option<Extension<UploadPolicy>>,
    query: Result<Query<UploadQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    upload(state, policy, query, headers, body).await
}

/// List the datasets held completely by this node.
#[utoipa::path(get, path = "/data", tag = "Data", operation_id = "listData",
    responses((status = 200, description = "Datasets held locally", body = DataList),
              (status = 500, description = "The store could not be read", body = ErrorBody)))]
pub(super) async fn list(State(state): State<AppState>) -> Result<Json<DataList>, ApiError> {
    let store = Arc::clone(&state.store);
    let items = blocking(move || store.list()).await?;
    Ok(Json(DataList { content: items.iter().map(|(c, m)| DataItem::new(c, m)).collect() }))
}

/// `attachment` with the file's name: quoted-string escaped, and for a name that is not plain
/// ASCII an RFC 5987 `filename*` beside an ASCII fallback.
fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '_' })
        .flat_map(|c| if c == '"' || c == '\\' { vec!['\\', c] } else { vec![c] })
        .collect();
    if name.is_ascii() && !name.chars().any(|c| c.is_ascii_control()) {
        return format!("attachment; filename=\"{fallback}\"");
    }
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

fn stream_response(manifest: &Manifest, stream: DatasetStream) -> Response {
    let mut headers = HeaderMap::new();
    let ctype = manifest.mimetype.as_deref().unwrap_or("application/octet-stream");
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(ctype).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(manifest.dataset_size));
    if let Some(name) = &manifest.filename
        && let Ok(v) = HeaderValue::from_str(&content_disposition(name))
    {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    (headers, Body::from_stream(stream)).into_response()
}

/// The answer for a dataset's stream: as it is, or for an encrypted dataset its plaintext. The
/// first piece of plaintext is opened before the answer is sent, so that a damaged first
/// block is an error status rather than a cut body.
async fn respond(manifest: &Manifest, stream: DatasetStream, unseal: Option<Decryptor>) -> Result<Response, ApiError> {
    let Some(decryptor) = unseal else { return Ok(stream_response(manifest, stream)) };
    let mut plain = manifest.clone();
    plain.dataset_size = manifest.encryption.as_ref().map_or(0, |e| e.plaintext_size);
    let mut stream = stream.unsealed(decryptor);
    let first = match stream.next().await {
        Some(Err(e)) => {
            let crypt = e.get_ref().and_then(|inner| inner.downcast_ref::<encryption::CryptError>()).cloned();
            return Err(match crypt {
                Some(c) => c.into(),
                None => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
            });
        }
        first => first,
    };
    Ok(stream_response(&plain, stream.prepend(first)))
}

/// Streams a dataset, from the local store or, if `network`, fetching it from peers; an
/// encrypted one is decrypted with the key the request gives (or one kept here).
async fn serve_dataset(
    state: &AppState,
    cid_text: &str,
    network: bool,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let cid = parse_cid(cid_text)?;
    if cid.kind() == ContentKind::Tree {
        let store = Arc::clone(&state.store);
        let record = blocking(move || store.dataset(&cid)).await?.ok_or_else(|| {
            ApiError::not_found(format!("{cid} is a tree CID not held here; download by manifest CID"))
        })?;
        let manifest = Manifest::new(cid, record.block_size, record.dataset_size);
        let (file, _) = state.store.open_data(&cid)?;
        state.metrics.downloads.inc();
        return Ok(stream_response(&manifest, DatasetStream::local(Arc::new(file), manifest.dataset_size)));
    }
    let manifest = if network {
        state.fetcher.manifest(&cid).await?
    } else {
        let store = Arc::clone(&state.store);
        blocking(move || store.manifest(&cid))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("{cid} is not held locally")))?
    };
    // A missing or wrong key is refused before anything is fetched.
    let unseal = match encrypted::download_key(&state.store, &manifest, headers).await? {
        Some((key, info)) => Some(encrypted::decryptor(&manifest, &key, &info)?),
        None => None,
    };
    let tree = manifest.tree()?;
    let store = Arc::clone(&state.store);
    let local = blocking(move || store.dataset(&tree)).await?.is_some();
    state.metrics.downloads.inc();
    if local {
        let (file, _) = state.store.open_data(&tree)?;
        return respond(&manifest, DatasetStream::local(Arc::new(file), manifest.dataset_size), unseal).await;
    }
    if manifest.is_protected() {
        let store = Arc::clone(&state.store);
        let m = manifest.clone();
        let present =
            blocking(move || crate::slots::slots_present(&store, &m).map_err(|e| StoreError::Corrupt(e.to_string())))
                .await?;
        let k = manifest.erasure.as_ref().map_or(0, |e| e.ec_k as usize);
        if present >= k && present > 0 {
            return respond(&manifest, rebuild_stream(Arc::clone(&state.store), manifest.clone()), unseal).await;
        }
    }
    if !network {
        return Err(ApiError::not_found(format!("{cid} is not held locally")));
    }
    let published =
        manifest.erasure.as_ref().and_then(|e| e.verification.as_ref()).is_some_and(|v| !v.slot_cids.is_empty());
    if published {
        // Hosts keep slots, not the original blocks (and a provider record of the original may
        // outlive the client that announced it): decode from any K of the published slots.
        let fetched = crate::repair::fetch_k_slots(&state.fetcher, &state.store, &manifest, &[])
            .await
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
        info!(target: LOG, %cid, slots = fetched.slots.len(), bytes = fetched.bytes_fetched, "downloading from slots");
        return respond(&manifest, slot_decode_stream(manifest.clone(), fetched.slots), unseal).await;
    }
    match state.fetcher.fetch(cid, manifest.clone())? {
        Some(job) => {
            // A fetch that fails before its first block is an error status; once bytes are
            // out, only an aborted body can tell the client (the stream ends with the error).
            job.started().await.map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e))?;
            if manifest.dataset_size == 0 {
                // An empty body is never polled, so wait for the commit here.
                job.finished().await.map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e))?;
            }
            respond(&manifest, DatasetStream::following(&job), unseal).await
        }
        None => {
            let (file, _) = state.store.open_data(&tree)?;
            respond(&manifest, DatasetStream::local(Arc::new(file), manifest.dataset_size), unseal).await
        }
    }
}

/// Streams a protected dataset decoded from fetched slot files.
fn slot_decode_stream(manifest: Manifest, present: Vec<(usize, std::path::PathBuf)>) -> DatasetStream {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(REBUILD_QUEUE);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(1 << 20) };
        let result = crate::repair::decode_slots(&manifest, &present, &mut out)
            .map_err(std::io::Error::other)
            .and_then(|_| out.flush_piece());
        if let Err(e) = result {
            tracing::warn!(target: LOG, error = %e, "decoding a protected dataset from fetched slots failed");
            let _ = tx.blocking_send(Err(e));
        }
    });
    DatasetStream::from_channel(rx)
}

/// Streams a protected dataset rebuilt from its local slots.
fn rebuild_stream(store: Arc<crate::store::BlockStore>, manifest: Manifest) -> DatasetStream {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(REBUILD_QUEUE);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter { tx: tx.clone(), buf: Vec::with_capacity(1 << 20) };
        let result = crate::slots::rebuild(&store, &manifest, &mut out);
        let result = result.map_err(std::io::Error::other).and_then(|_| out.flush_piece());
        match result {
            Ok(()) => debug!(target: LOG, "protected dataset rebuilt from slots"),
            Err(e) => {
                tracing::warn!(target: LOG, error = %e, "rebuilding a protected dataset from its slots failed");
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    DatasetStream::from_channel(rx)
}

/// Sends what is written, in 1 MiB pieces, down a bounded channel (the HTTP body's source).
struct ChannelWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn flush_piece(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(1 << 20)));
        self.tx.blocking_send(Ok(piece)).map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 1 << 20 {
            self.flush_piece()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_piece()
    }
}

/// Most slots `POST /data/{cid}/protect` encodes into (each is a file open while encoding).
const MAX_PROTECT_SLOTS: usize = 256;

/// Query of `POST /data/{cid}/protect`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub(super) struct ProtectQuery {
    /// Slots in all (K + M), as in a storage request; default 3.
    nodes: Option<usize>,
    /// Slots that may be lost (M); default 1.
    tolerance: Option<usize>,
    /// Cell (shard) size in bytes; default 2048.
    cell_size: Option<usize>,
    /// Also publish every slot as a dataset of its own (as storage requests do), so that other
    /// nodes can fetch slots and rebuild the dataset from any K of them; default false.
    publish: Option<bool>,
}

/// Erasure-code a dataset held here into K = nodes − tolerance data and M = tolerance parity
/// slots with Poseidon2 slot trees (a Vellum extension; storage requests do this themselves).
#[utoipa::path(post, path = "/data/{cid}/protect", tag = "Data",
    params(("cid" = String, Path, description = "Manifest CID of a dataset held here"), ProtectQuery),
    responses((status = 200, description = "The protected manifest", body = DataItem),
              (status = 400, description = "Invalid CID", body = ErrorBody),
              (status = 404, description = "Not held here", body = ErrorBody),
              (status = 422, description = "Invalid erasure parameters", body = ErrorBody)))]
pub(super) async fn protect(
    State(state): State<AppState>,
    Path(cid): Path<String>,
    query: Result<axum::extract::Query<ProtectQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DataItem>, ApiError> {
    let axum::extract::Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let cid = manifest_cid(&cid)?;
    let (nodes, tolerance) = (q.nodes.unwrap_or(3), q.tolerance.unwrap_or(1));
    if tolerance == 0 || nodes <= tolerance {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("nodes ({nodes}) must exceed tolerance ({tolerance}), and tolerance must be at least 1"),
        ));
    }
    if nodes > MAX_PROTECT_SLOTS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("nodes ({nodes}) is more than the {MAX_PROTECT_SLOTS} slots a dataset may be encoded into"),
        ));
    }
    let store = Arc::clone(&state.store);
    let manifest = blocking(move || store.manifest(&cid))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("{cid} is not held here")))?;
    let store = Arc::clone(&state.store);
    let cell_size = q.cell_size.unwrap_or(crate::erasure::DEFAULT_CELL_SIZE as usize);
    let publish = q.publish.unwrap_or(false);
    let (pcid, protected) = tokio::task::spawn_blocking(move || {
        let (pcid, protected) = crate::slots::protect(
            &store,
            &manifest,
            crate::slots::Protection::new(nodes - tolerance, tolerance, cell_size),
            2,
        )?;
        if publish { crate::slots::publish(&store, &protected) } else { Ok((pcid, protected)) }
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| match e {
        crate::slots::SlotError::Erasure(crate::erasure::ErasureError::InvalidParams(m)) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m)
        }
        crate::slots::SlotError::Manifest(m) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, m),
        crate::slots::SlotError::Store(s) => s.into(),
        other => ApiError::internal(other.to_string()),
    })?;
    if publish {
        // Announce the protected manifest and every slot, so nodes can fetch them.
        let mut announced = vec![pcid];
        let count = protected.erasure.as_ref().and_then(|e| e.verification.as_ref()).map_or(0, |v| v.slot_cids.len());
        announced.extend((0..count).filter_map(|i| crate::slots::slot_cid(&protected, i).ok()));
        for cid in announced {
            let _ = state.net.provide(&cid).await;
            if let Ok(Some(m)) = state.store.manifest(&cid)
                && let Ok(tree) = m.tree()
            {
                let _ = state.net.provide(&tree).await;
            }
        }
    }
    Ok(Json(DataItem::new(&pcid, &protected)))
}

/// Download a dataset by CID (the whitepaper's endpoint); fetched from the network if not local.
#[utoipa::path(get, path = "/download/{cid}", tag = "Data", operation_id = "downloadFile",
    params(("cid" = String, Path, description = "Manifest CID"),
           ("x-vellum-key" = Option<String>, Header, nullable = false,
             description = "The key of an encrypted dataset (64 hex digits; Vellum extension)")),
    responses((status = 200, description = "The content, in the media type it was uploaded with, else octet-stream",
               content((inline(super::schema::Binary) = "application/octet-stream"),
                       (inline(super::schema::Binary) = "*/*"))),
              (status = 400, description = "Invalid CID", body = ErrorBody),
              (status = 403, description = "An encrypted dataset without its key, or with a wrong one", body = ErrorBody),
              (status = 404, description = "Not found locally or in the network", body = ErrorBody),
              (status = 500, description = "The store failed", body = ErrorBody),
              (status = 502, description = "Peers failed to deliver it", body = ErrorBody)))]
pub(super) async fn download(
    State(state): State<AppState>,
    Path(cid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_dataset(&state, &cid, true, &headers).await
}

/// Download a dataset from the network in a streaming manner.
#[utoipa::path(get, path = "/data/{cid}/network/stream", tag = "Data", operation_id = "downloadNetworkStream",
    params(("cid" = String, Path, description = "Manifest CID"),
           ("x-vellum-key" = Option<String>, Header, nullable = false,
             description = "The key of an encrypted dataset (64 hex digits; Vellum extension)")),
    responses((status = 200, description = "The content, in the media type it was uploaded with, else octet-stream",
               content((inline(super::schema::Binary) = "application/octet-stream"),
                       (inline(super::schema::Binary) = "*/*"))),
              (status = 400, description = "Invalid CID", body = ErrorBody),
              (status = 403, description = "An encrypted dataset without its key, or with a wrong one", body = ErrorBody),
              (status = 404, description = "Not found", body = ErrorBody),
              (status = 500, description = "The store failed", body = ErrorBody),
              (status = 502, description = "Peers failed to deliver it", body = ErrorBody)))]
pub(super) async fn download_network_stream(
    State(state): State<AppState>,
    Path(cid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_dataset(&state, &cid, true, &headers).await
}

/// Download a dataset held locally; 404 if it is not.
#[utoipa::path(get, path = "/data/{cid}", tag = "Data", operation_id = "downloadLocal",
    params(("cid" = String, Path, description = "Manifest or tree CID"),
           ("x-vellum-key" = Option<String>, Header, nullable = false,
             description = "The key of an encrypted dataset (64 hex digits; Vellum extension)")),
    responses((status = 200, description = "The content, in the media type it was uploaded with, else octet-stream",
               content((inline(super::schema::Binary) = "application/octet-stream"),
                       (inline(super::schema::Binary) = "*/*"))),
              (status = 400, description = "Invalid CID", body = ErrorBody),
              (status = 403, description = "An encrypted dataset without its key, or with a wrong one", body = ErrorBody),
              (status = 404, description = "Not held locally", body = ErrorBody),
              (status = 500, description = "The store failed", body = ErrorBody)))]
pub(super) async fn download_local(
    State(state): State<AppState>,
    Path(cid): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_dataset(&state, &cid, false, &headers).await
}

/// Delete a dataset (by manifest or tree CID) from this node.
#[utoipa::path(delete, path = "/data/{cid}", tag = "Data", operation_id = "deleteLocal",
    params(("cid" = String, Path, description = "Manifest or tree CID")),
    responses((status = 204, description = "Deleted (or was not here)"),
              (status = 400, description = "Invalid CID", body = ErrorBody),
              (status = 500, description = "The store failed", body = ErrorBody)))]
pub(super) async fn delete(State(state): State<AppState>, Path(cid): Path<String>) -> Result<StatusCode, ApiError> {
    let cid = parse_cid(&cid)?;
    let store = Arc::clone(&state.store);
    let removed = blocking(move || store.delete(&cid)).await?;
    debug!(target: LOG, %cid, removed, "delete");
    Ok(StatusCode::NO_CONTENT)
}

/// Start fetching a dataset from the network in the background.
#[utoipa::path(post, path = "/data/{cid}/network", tag = "Data", operation_id = "downloadNetwork",
    params(("cid" = String, Path, description = "Manifest CID")),
    responses((status = 200, description = "Fetch started (or already complete)", body = DataItem),
              (status = 400, description = "Invalid CID", body = ErrorBody),
              (status = 404, description = "Manifest not found", body = ErrorBody),
              (status = 500, description = "The store failed", body = ErrorBody),
              (status = 502, description = "Peers failed to deliver the manifest", body = ErrorBody)))]
pub(super) async fn fetch_background(
    State(state): State<AppState>,
    Path(cid): Path<String>,
) -> Result<Json<DataItem>, ApiError> {
    let cid = manifest_cid(&cid)?;
    let manifest = state.fetcher.manifest(&cid).await?;
    state.fetcher.fetch(cid, manifest.clone())?;
    Ok(Json(DataItem::new(&cid, &manifest)))
}

/// Fetch only a dataset's manifest.
#[utoipa::path(get, path = "/data/{cid}/network/manifest", tag = "Data", operation_id = "downloadNetworkManifest",
    params(("cid" = String, Path, description = "Manifest CID")),
    responses((status = 200, description = "The manifest", body = DataItem),
              (status = 400, description = "Invalid CID", body = ErrorBody),
              (status = 404, description = "Manifest not found", body = ErrorBody),
              (status = 500, description = "The store failed", body = ErrorBody),
              (status = 502, description = "Peers failed to deliver the manifest", body = ErrorBody)))]
pub(super) async fn fetch_manifest(
    State(state): State<AppState>,
    Path(cid): Path<String>,
) -> Result<Json<DataItem>, ApiError> {
    let cid = manifest_cid(&cid)?;
    let manifest = state.fetcher.manifest(&cid).await?;
    Ok(Json(DataItem::new(&cid, &manifest)))
}

fn manifest_cid(text: &str) -> Result<ContentId, ApiError> {
    let cid = parse_cid(text)?;
    if cid.kind() != ContentKind::Manifest {
        return Err(ApiError::bad_request(format!("{cid} is not a manifest CID")));
    }
    Ok(cid)
}

/// Whether this node holds the dataset (manifest or tree CID) completely.
#[utoipa::path(get, path = "/data/{cid}/exists", tag = "Data", operation_id = "hasBlock",
    params(("cid" = String, Path, description = "Manifest or tree CID")),
    responses((status = 200, description = "Whether it is held", body = inline(Exists)),
              (status = 400, description = "Invalid CID", body = ErrorBody),
              (status = 500, description = "The store failed", body = ErrorBody)))]
pub(super) async fn exists(State(state): State<AppState>, Path(cid): Path<String>) -> Result<Json<Exists>, ApiError> {
    let cid = parse_cid(&cid)?;
    let store = Arc::clone(&state.store);
    let has = blocking(move || store.has_complete(&cid)).await?;
    Ok(Json(Exists { has }))
}

/// Storage space summary.
#[utoipa::path(get, path = "/space", tag = "Data", operation_id = "space",
    responses((status = 200, description = "Space in use", body = Space),
              (status = 500, description = "The store failed", body = ErrorBody)))]
pub(super) async fn space(State(state): State<AppState>) -> Result<Json<Space>, ApiError> {
    let store = Arc::clone(&state.store);
    let s = blocking(move || store.space()).await?;
    Ok(Json(Space {
        total_blocks: s.total_blocks,
        quota_max_bytes: s.quota_max_bytes,
        quota_used_bytes: s.quota_used_bytes,
        quota_reserved_bytes: s.quota_reserved_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_escaped_in_content_disposition() {
        assert_eq!(content_disposition("a.txt"), "attachment; filename=\"a.txt\"");
        assert_eq!(content_disposition("a\"b\\c.txt"), "attachment; filename=\"a\\\"b\\\\c.txt\"");
        assert_eq!(
            content_disposition("résumé \".pdf"),
            "attachment; filename=\"r_sum_ \\\".pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22.pdf"
        );
        for name in ["x\"; filename=evil.sh", "ünï\u{7f}"] {
            assert!(HeaderValue::from_str(&content_disposition(name)).is_ok(), "{name}");
        }
    }
}
