//! Helpers for Vellum's end-to-end tests: start `vellum node` processes on loopback and talk to
//! them over their REST API, as a user with curl would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::NodeProcess;
use anyhow::{Context, bail};
use futures::StreamExt;

/// The `vellum` binary built beside the test executable (`target/<profile>/vellum`).
pub fn vellum_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("VELLUM_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/it-<hash> → target/<profile>/vellum
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    profile_dir.join("vellum")
}

/// A running node with its data dir.
#[derive(Debug)]
pub struct TestNode {
    /// The process.
    pub process: NodeProcess,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// HTTP client.
    pub http: reqwest::Client,
}

impl TestNode {
    /// Starts `vellum node --data-dir DIR -i 127.0.0.1` on free ports, plus `extra` flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        Self::start_logged(data_dir, extra, None)
    }

    /// Like [`TestNode::start`], appending the node's log to `log` when given.
    pub fn start_logged(data_dir: &Path, extra: &[&str], log: Option<&Path>) -> anyhow::Result<Self> {
        let mut args: Vec<String> = vec![
            "--data-dir".into(),
            data_dir.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "--api-port".into(),
            "0".into(),
            "--udp-port".into(),
            "0".into(),
            "--log-level".into(),
            "info,vellum::fetch=debug".into(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let binary = vellum_binary();
        if !binary.exists() {
            bail!("{} is missing: run `cargo build --workspace --bins` first", binary.display());
        }
        let process = NodeProcess::spawn_logging_to(&binary, &args, Duration::from_secs(30), log)?;
        Ok(Self { process, data_dir: data_dir.to_path_buf(), http: reqwest::Client::new() })
    }

    /// Starts a node that bootstraps from `other`'s SPR.
    pub async fn start_bootstrapped(data_dir: &Path, other: &TestNode, extra: &[&str]) -> anyhow::Result<Self> {
        let spr = other.info().await?["spr"].as_str().context("no spr")?.to_owned();
        let mut args = vec!["--bootstrap-node", spr.as_str()];
        args.extend_from_slice(extra);
        Self::start(data_dir, &args)
    }

    /// `GET {api}{path}`.
    pub async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self.http.get(format!("{}{}", self.process.api, path)).send().await?)
    }

    /// `GET /info` as JSON.
    pub async fn info(&self) -> anyhow::Result<serde_json::Value> {
        Ok(self.get("/info").await?.error_for_status()?.json().await?)
    }

    /// `GET /debug/info` as JSON.
    pub async fn debug_info(&self) -> anyhow::Result<serde_json::Value> {
        Ok(self.get("/debug/info").await?.error_for_status()?.json().await?)
    }

    /// Uploads bytes the way the whitepaper's curl does; returns the CID.
    pub async fn upload(&self, data: Vec<u8>) -> anyhow::Result<String> {
        let len = data.len() as u64;
        self.post_upload(reqwest::Body::from(data), len).await
    }

    /// Uploads a file by streaming it; returns the CID.
    pub async fn upload_file(&self, path: &Path) -> anyhow::Result<String> {
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20));
        self.post_upload(body, len).await
    }

    async fn post_upload(&self, body: reqwest::Body, len: u64) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(format!("{}/upload", self.process.api))
            .header("content-type", "application/octet-stream")
            .header("content-length", len)
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("upload failed: {status} {text}");
        }
        Ok(text.trim().to_owned())
    }

    /// Downloads `path` (e.g. `/download/CID`) and returns (length, BLAKE3 hash) of the body.
    pub async fn download_hash(&self, path: &str) -> anyhow::Result<(u64, blake3::Hash)> {
        let resp = self.get(path).await?;
        let status = resp.status();
        if !status.is_success() {
            bail!("download {path} failed: {status} {}", resp.text().await.unwrap_or_default());
        }
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            len += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((len, hasher.finalize()))
    }

    /// Downloads `path` into memory.
    pub async fn download(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let resp = self.get(path).await?;
        let status = resp.status();
        if !status.is_success() {
            bail!("download {path} failed: {status} {}", resp.text().await.unwrap_or_default());
        }
        Ok(resp.bytes().await?.to_vec())
    }
}

/// Deterministic, incompressible test bytes.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while out.len() < len {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `len` test bytes to `path` in pieces; returns their BLAKE3 hash.
pub fn write_test_file(path: &Path, len: u64, seed: u64) -> anyhow::Result<blake3::Hash> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hasher = blake3::Hasher::new();
    let piece = 1 << 20;
    let mut done = 0u64;
    let mut i = 0u64;
    while done < len {
        let n = (len - done).min(piece) as usize;
        let bytes = test_bytes(n, seed.wrapping_add(i));
        f.write_all(&bytes)?;
        hasher.update(&bytes);
        done += n as u64;
        i += 1;
    }
    f.flush()?;
    Ok(hasher.finalize())
}
