//! A `vellum node` process on loopback and its REST API, used as a user with curl would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;

use crate::process::NodeProcess;
use crate::vellum_binary;

/// How long [`TestNode::start`] waits for a node's API.
pub const NODE_START: Duration = Duration::from_secs(30);

/// The log level of the scenarios' nodes (block fetching in detail).
const TEST_LOG_LEVEL: &str = "info,vellum::fetch=debug";

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
        let binary = vellum_binary();
        if !binary.exists() {
            bail!("{} is missing: run `cargo build --workspace --bins` first", binary.display());
        }
        let mut args: Vec<String> = vec!["--log-level".into(), TEST_LOG_LEVEL.into()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self::spawn(&binary, data_dir, &args, log, NODE_START)
    }

    /// Starts a node that bootstraps from `other`'s SPR.
    pub async fn start_bootstrapped(data_dir: &Path, other: &TestNode, extra: &[&str]) -> anyhow::Result<Self> {
        let spr = other.spr().await?;
        let mut args = vec!["--bootstrap-node", spr.as_str()];
        args.extend_from_slice(extra);
        Self::start(data_dir, &args)
    }

    /// The general form: `binary node --data-dir DIR -i 127.0.0.1 --api-port 0 --udp-port 0`
    /// followed by `args` (a flag given twice takes its last value, so `args` may override the
    /// defaults), its log appended to `log` (else inherited), waiting up to `timeout` for its API.
    /// It blocks the calling thread while it waits.
    pub fn spawn(
        binary: &Path,
        data_dir: &Path,
        args: &[String],
        log: Option<&Path>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut all: Vec<String> = vec![
            "--data-dir".into(),
            data_dir.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "--api-port".into(),
            "0".into(),
            "--udp-port".into(),
            "0".into(),
        ];
        all.extend_from_slice(args);
        let process = NodeProcess::spawn_logging_to(binary, &all, timeout, log)?;
        Ok(Self { process, data_dir: data_dir.to_path_buf(), http: reqwest::Client::new() })
    }

    /// `{api}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.process.api)
    }

    /// `GET {api}{path}`.
    pub async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        Ok(self.http.get(self.url(path)).send().await?)
    }

    /// `GET {api}{path}` as JSON; an error status is an error with the answer's text.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        crate::json(self.get(path).await?).await.with_context(|| format!("GET {path}"))
    }

    /// `POST {api}{path}` with a JSON body; returns the answer's text (an error status is an
    /// error with that text).
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<String> {
        let resp = self.http.post(self.url(path)).json(body).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("POST {path}: {status} {text}");
        }
        Ok(text)
    }

    /// `GET /info` as JSON.
    pub async fn info(&self) -> anyhow::Result<serde_json::Value> {
        Ok(self.get("/info").await?.error_for_status()?.json().await?)
    }

    /// `GET /debug/info` as JSON.
    pub async fn debug_info(&self) -> anyhow::Result<serde_json::Value> {
        Ok(self.get("/debug/info").await?.error_for_status()?.json().await?)
    }

    /// The node's signed peer record (`spr:…`, from `/info`).
    pub async fn spr(&self) -> anyhow::Result<String> {
        Ok(self.info().await?["spr"].as_str().context("no spr in /info")?.to_owned())
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
            .post(self.url("/upload"))
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
        self.download_hash_with(path, None).await
    }

    /// Like [`TestNode::download_hash`], sending `header` (name, value) with the request, such
    /// as an encrypted dataset's key.
    pub async fn download_hash_with(
        &self,
        path: &str,
        header: Option<(&str, &str)>,
    ) -> anyhow::Result<(u64, blake3::Hash)> {
        let mut request = self.http.get(self.url(path));
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let resp = request.send().await?;
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

    /// A metric's value from the node's metrics endpoint (None when absent); an error when the
    /// node serves no metrics or the endpoint does not answer.
    pub async fn metric(&self, name: &str) -> anyhow::Result<Option<f64>> {
        let Some(url) = &self.process.metrics else { bail!("the node serves no metrics (start it with --metrics)") };
        crate::logs::scrape_metric(&self.http, url, name).await
    }

    /// Stops the node (SIGKILL: as abrupt as a host going away).
    pub fn kill(&mut self) {
        self.process.kill();
    }
}
