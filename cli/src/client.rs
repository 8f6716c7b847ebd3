//! `vellum upload` and `vellum download`: stream a file to or from a node's REST API, with a
//! progress bar on a terminal and plain lines otherwise.

use std::io::IsTerminal;

use anyhow::{Context, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

use super::{DownloadArgs, UploadArgs};

fn progress(total: Option<u64>, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(t) => ProgressBar::new(t),
        None => ProgressBar::new_spinner(),
    };
    let style = ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}

async fn error_message(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or(body);
    format!("{status}: {message}")
}

/// Uploads a file; prints its CID on stdout.
pub(super) async fn upload(args: UploadArgs) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(&args.file).await.with_context(|| format!("open {}", args.file.display()))?;
    let size = file.metadata().await?.len();
    let bar = progress(Some(size), "upload");
    let bar2 = bar.clone();
    let stream = ReaderStream::with_capacity(file, 1 << 20).inspect(move |chunk| {
        if let Ok(c) = chunk {
            bar2.inc(c.len() as u64);
        }
    });
    let query = match (args.encrypt, args.keep_key) {
        (false, _) => "",
        (true, false) => "?encrypt=true",
        (true, true) => "?encrypt=true&keepKey=true",
    };
    let mut request = reqwest::Client::new()
        .post(format!("{}/upload{query}", args.api.api.trim_end_matches('/')))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(stream));
    if let Some(name) = args.file.file_name().and_then(|n| n.to_str()) {
        request = request.header(reqwest::header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""));
    }
    let resp = request.send().await.context("could not reach the node")?;
    bar.finish_and_clear();
    if !resp.status().is_success() {
        bail!("upload failed: {}", error_message(resp).await);
    }
    if args.encrypt {
        let answer: serde_json::Value = resp.json().await.context("the node's answer is not JSON")?;
        let (Some(cid), Some(key)) = (answer["cid"].as_str(), answer["key"].as_str()) else {
            bail!("the node's answer has no CID and key");
        };
        println!("{cid}");
        println!("{key}");
        if std::io::stderr().is_terminal() {
            eprintln!("the second line is the dataset's key: without it the data cannot be read");
        }
        return Ok(());
    }
    let cid = resp.text().await?;
    println!("{}", cid.trim());
    Ok(())
}

/// Downloads a dataset into a file.
pub(super) async fn download(args: DownloadArgs) -> anyhow::Result<()> {
    let url = format!("{}/download/{}", args.api.api.trim_end_matches('/'), args.cid);
    let key = match (&args.key, &args.key_file) {
        (Some(k), _) => Some(k.trim().to_owned()),
        (None, Some(path)) => Some(
            tokio::fs::read_to_string(path)
                .await
                .with_context(|| format!("read the key file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    let mut request = reqwest::Client::new().get(url);
    if let Some(key) = key {
        request = request.header(node::api::KEY_HEADER, key);
    }
    let resp = request.send().await.context("could not reach the node")?;
    if !resp.status().is_success() {
        bail!("download failed: {}", error_message(resp).await);
    }
    let expected = resp.content_length();
    let bar = progress(expected, "download");
    let tmp = args.output.with_extension("vellum-partial");
    let mut out = tokio::fs::File::create(&tmp).await.with_context(|| format!("create {}", tmp.display()))?;
    let mut stream = resp.bytes_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                bail!("download interrupted after {written} bytes: {e}");
            }
        };
        out.write_all(&chunk).await?;
        written += chunk.len() as u64;
        bar.inc(chunk.len() as u64);
    }
    out.flush().await?;
    out.sync_all().await?;
    bar.finish_and_clear();
    if let Some(n) = expected
        && n != written
    {
        let _ = tokio::fs::remove_file(&tmp).await;
        bail!("download ended after {written} of {n} bytes");
    }
    tokio::fs::rename(&tmp, &args.output).await?;
    if !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        println!("{} bytes written to {}", written, args.output.display());
    }
    Ok(())
}
