//! Encrypted datasets over the REST API: the upload option (`?encrypt=true`, the key answered
//! once, kept in a 0600 file only with `keepKey=true`) and the key a download gives in the
//! `X-Vellum-Key` header, never in the URL. Keys never reach a log line or an error message.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};

use super::ApiError;
use crate::content::encryption::{CryptError, DatasetKey, Decryptor};
use crate::content::manifest::EncryptionInfo;
use crate::content::{ContentId, Manifest};
use crate::fetch::blocking;
use crate::store::{BlockStore, StoreError};

/// The request header a download's key travels in.
pub const KEY_HEADER: &str = "x-vellum-key";

/// Query of the upload endpoints.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct UploadQuery {
    /// Encrypt on this node before storing (a Vellum extension): a fresh key is made, the
    /// answer is JSON with the CID and the key, and the node keeps no copy of the key unless
    /// `keepKey`. The file name and media type are not kept (hosts read manifests).
    pub encrypt: Option<bool>,
    /// With `encrypt`: keep the key in a file only this node's user can read, so that
    /// downloads from this node need no key header.
    pub keep_key: Option<bool>,
}

/// The answer to an encrypted upload.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct EncryptedUpload {
    /// The dataset's manifest CID.
    pub cid: String,
    /// The dataset's key, 64 hex digits: shown once, needed for every download.
    pub key: String,
}

impl From<CryptError> for ApiError {
    fn from(e: CryptError) -> Self {
        let status = match e {
            CryptError::MalformedKey => StatusCode::BAD_REQUEST,
            CryptError::WrongKey => StatusCode::FORBIDDEN,
            CryptError::Damaged(_) | CryptError::Truncated { .. } => StatusCode::BAD_GATEWAY,
            CryptError::Unsupported(_) => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError::new(status, e.to_string())
    }
}

fn key_path(store: &BlockStore, tree: &ContentId) -> PathBuf {
    store.root().join("keys").join(format!("{tree}.key"))
}

/// Keeps `key` for the dataset whose content tree is `tree`: written to a temporary file made
/// 0600 whatever the umask, synced and renamed, in a 0700 directory.
pub(super) async fn keep_key(store: Arc<BlockStore>, tree: ContentId, key: DatasetKey) -> Result<(), ApiError> {
    blocking(move || -> Result<(), StoreError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let path = key_path(&store, &tree);
        let dir = store.root().join("keys");
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(key.to_hex().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })
    .await?;
    Ok(())
}

/// The key a download of `manifest` uses: the header's, else one this node was asked to keep.
/// `None` for a dataset that is not encrypted (a key given for one is refused).
pub(super) async fn download_key(
    store: &Arc<BlockStore>,
    manifest: &Manifest,
    headers: &HeaderMap,
) -> Result<Option<(DatasetKey, EncryptionInfo)>, ApiError> {
    let given = match headers.get(KEY_HEADER) {
        Some(v) => Some(DatasetKey::parse(v.to_str().map_err(|_| CryptError::MalformedKey)?)?),
        None => None,
    };
    let Some(info) = manifest.encryption.clone() else {
        if given.is_some() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the dataset is not encrypted: send no {KEY_HEADER} header"),
            ));
        }
        return Ok(None);
    };
    if let Some(key) = given {
        return Ok(Some((key, info)));
    }
    let tree = manifest.tree()?;
    let store = Arc::clone(store);
    let kept = blocking(move || match std::fs::read_to_string(key_path(&store, &tree)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::from(e)),
    })
    .await?;
    match kept {
        Some(text) => Ok(Some((DatasetKey::parse(&text)?, info))),
        None => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the dataset is encrypted: send its key in the {KEY_HEADER} header"),
        )),
    }
}

/// A decryptor for `manifest`'s dataset under `key`; a wrong key is refused here.
pub(super) fn decryptor(manifest: &Manifest, key: &DatasetKey, info: &EncryptionInfo) -> Result<Decryptor, ApiError> {
    Ok(Decryptor::new(key, &info.scheme, &info.key_check, manifest.block_size, manifest.dataset_size)?)
}
