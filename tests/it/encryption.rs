//! Encrypted datasets through one node's REST API and the CLI: round trips at the block
//! boundaries and at 256 MiB, the manifest's record, a wrong, missing or malformed key refused,
//! a flipped ciphertext byte stopping the plaintext at its block, a kept key in a private file,
//! and no key in any log line.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use futures::StreamExt;
use vellum_testkit::{TestNode, test_bytes, vellum_binary};

const KEY_HEADER: &str = "x-vellum-key";
/// Plaintext bytes per 64 KiB block.
const CHUNK: usize = 65_536 - 16;

/// Uploads `data` with `?encrypt=true` (and `extra` query); returns (CID, key).
async fn upload_encrypted(node: &TestNode, data: Vec<u8>, extra: &str) -> anyhow::Result<(String, String)> {
    let resp = node
        .http
        .post(node.url(&format!("/data?encrypt=true{extra}")))
        .header("content-type", "application/octet-stream")
        .header("content-disposition", "attachment; filename=\"secret-plans.txt\"")
        .body(data)
        .send()
        .await?;
    let status = resp.status();
    let text = resp.text().await?;
    anyhow::ensure!(status == 200, "encrypted upload: {status} {text}");
    let v: serde_json::Value = serde_json::from_str(&text)?;
    let cid = v["cid"].as_str().unwrap_or_default().to_owned();
    let key = v["key"].as_str().unwrap_or_default().to_owned();
    anyhow::ensure!(!cid.is_empty() && key.len() == 64, "answer: {text}");
    Ok((cid, key))
}

/// GET `path` with an optional key: (status, body bytes received, whether the body failed).
async fn get_with_key(node: &TestNode, path: &str, key: Option<&str>) -> anyhow::Result<(u16, Vec<u8>, bool)> {
    let mut req = node.http.get(node.url(path));
    if let Some(k) = key {
        req = req.header(KEY_HEADER, k);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut failed = false;
    let mut stream = resp.bytes_stream();
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(b) => body.extend_from_slice(&b),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    Ok((status, body, failed))
}

fn data_file(node: &TestNode, tree: &str) -> anyhow::Result<std::path::PathBuf> {
    for entry in walk(&node.data_dir) {
        if entry.file_name().and_then(|n| n.to_str()) == Some(&format!("{tree}.data")) {
            return Ok(entry);
        }
    }
    anyhow::bail!("no data file for {tree} under {}", node.data_dir.display())
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn flip(path: &Path, at: u64) -> anyhow::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, at)?;
    b[0] ^= 0x40;
    f.write_all_at(&b, at)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_datasets_round_trip_and_refuse_bad_keys_and_damage() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("node.log");
    let node = TestNode::start_logged(&dir.path().join("node"), &[], Some(&log))?;
    let mut keys = Vec::new();

    // Round trips at the block boundaries.
    for (i, len) in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 100_000].into_iter().enumerate() {
        let data = test_bytes(len, i as u64);
        let (cid, key) = upload_encrypted(&node, data.clone(), "").await?;
        let (status, body, failed) = get_with_key(&node, &format!("/data/{cid}"), Some(&key)).await?;
        anyhow::ensure!(status == 200 && !failed && body == data, "{len} bytes: {status}, {} back", body.len());
        let item = node.get_json(&format!("/data/{cid}/network/manifest")).await?;
        let manifest = &item["manifest"];
        anyhow::ensure!(
            manifest["encryption"]["scheme"] == "aes256gcm-stream-v1"
                && manifest["encryption"]["plaintextSize"] == len
                && manifest["datasetSize"].as_u64() == Some(len as u64 + 16 * len.div_ceil(CHUNK).max(1) as u64),
            "the manifest records the scheme: {item}"
        );
        anyhow::ensure!(manifest["filename"].is_null(), "an encrypted dataset keeps no file name: {item}");
        keys.push(key);
    }

    // 256 MiB, streamed and compared by hash.
    let big = test_bytes(256 << 20, 99);
    let want = blake3::hash(&big);
    let (big_cid, big_key) = upload_encrypted(&node, big, "").await?;
    let resp = node.http.get(node.url(&format!("/download/{big_cid}"))).header(KEY_HEADER, &big_key).send().await?;
    anyhow::ensure!(resp.status() == 200, "256 MiB download: {}", resp.status());
    anyhow::ensure!(resp.content_length() == Some(256 << 20), "plaintext length: {:?}", resp.content_length());
    let mut hasher = blake3::Hasher::new();
    let mut stream = resp.bytes_stream();
    while let Some(piece) = stream.next().await {
        hasher.update(&piece?);
    }
    anyhow::ensure!(hasher.finalize() == want, "256 MiB round trip");
    keys.push(big_key.clone());

    // Keys: missing, wrong, malformed, and given for a plain dataset.
    // 3 MiB of a known pattern (the download streams it in 1 MiB pieces).
    let secret = b"attack at dawn; the password is hunter2. ".repeat(3 * 1024 * 1024 / 41);
    let (cid, key) = upload_encrypted(&node, secret.clone(), "").await?;
    keys.push(key.clone());
    let path = format!("/data/{cid}/network/stream");
    let (status, body, _) = get_with_key(&node, &path, None).await?;
    anyhow::ensure!(status == 403 && String::from_utf8_lossy(&body).contains(KEY_HEADER), "no key: {status}");
    let wrong = "ab".repeat(32);
    let (status, body, _) = get_with_key(&node, &path, Some(&wrong)).await?;
    let text = String::from_utf8_lossy(&body).into_owned();
    anyhow::ensure!(
        status == 403 && text.contains("wrong key") && !text.contains(&wrong),
        "wrong key: {status} {text}"
    );
    let (status, _, _) = get_with_key(&node, &path, Some("not-a-key")).await?;
    anyhow::ensure!(status == 400, "malformed key: {status}");
    let plain = node.upload(b"plain".to_vec()).await?;
    let (status, _, _) = get_with_key(&node, &format!("/data/{plain}"), Some(&key)).await?;
    anyhow::ensure!(status == 422, "a key for a plain dataset: {status}");
    for bad in ["/data?encrpyt=true", "/upload?keepKey=perhaps"] {
        let resp = node.http.post(node.url(bad)).body("x").send().await?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        anyhow::ensure!(
            status == 400 && body["message"].is_string(),
            "{bad}: a bad option is refused (not ignored) with a JSON error: {status} {body}"
        );
    }

    // Damage: a flipped byte in block 20 (in the second 1 MiB piece) stops the plaintext
    // before that block; in block 0, the answer is an error status.
    let item = node.get_json(&format!("/data/{cid}/network/manifest")).await?;
    let tree = item["manifest"]["treeCid"].as_str().unwrap_or_default().to_owned();
    let file = data_file(&node, &tree)?;
    flip(&file, 20 * 65_536 + 100)?;
    let (status, body, failed) = get_with_key(&node, &path, Some(&key)).await?;
    anyhow::ensure!(status == 200 && failed, "block 20 damaged: {status}, failed {failed}");
    anyhow::ensure!(
        !body.is_empty() && body.len() <= 20 * CHUNK && secret.starts_with(&body),
        "{} bytes released",
        body.len()
    );
    flip(&file, 100)?;
    let (status, body, _) = get_with_key(&node, &path, Some(&key)).await?;
    let text = String::from_utf8_lossy(&body).into_owned();
    anyhow::ensure!(status == 502 && text.contains("block 0"), "block 0 damaged: {status} {text}");

    // A kept key: in a file only the node's user can read; downloads need no header.
    let (kept_cid, kept_key) = upload_encrypted(&node, secret.clone(), "&keepKey=true").await?;
    keys.push(kept_key.clone());
    let key_file = walk(&node.data_dir)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .ok_or_else(|| anyhow::anyhow!("no key file kept"))?;
    anyhow::ensure!(std::fs::metadata(&key_file)?.permissions().mode() & 0o777 == 0o600, "key file mode");
    anyhow::ensure!(std::fs::read_to_string(&key_file)?.trim() == kept_key, "the kept key");
    let (status, body, _) = get_with_key(&node, &format!("/data/{kept_cid}"), None).await?;
    anyhow::ensure!(status == 200 && body == secret, "a kept key serves downloads: {status}");

    // The CLI: upload --encrypt prints the CID and the key; download --key-file decrypts.
    let file_in = dir.path().join("in.bin");
    let data = test_bytes(3 * CHUNK + 5, 7);
    std::fs::write(&file_in, &data)?;
    let api = node.process.api.clone();
    let out = Command::new(vellum_binary()).args(["upload", "--encrypt", "--api", &api]).arg(&file_in).output()?;
    anyhow::ensure!(out.status.success(), "vellum upload --encrypt: {}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = printed.lines().collect();
    anyhow::ensure!(lines.len() == 2 && lines[1].len() == 64, "CID and key: {printed}");
    keys.push(lines[1].to_owned());
    let key_path = dir.path().join("dataset.key");
    std::fs::write(&key_path, lines[1])?;
    let file_out = dir.path().join("out.bin");
    let out = Command::new(vellum_binary())
        .args(["download", lines[0], "--api", &api, "-o"])
        .arg(&file_out)
        .arg("--key-file")
        .arg(&key_path)
        .output()?;
    anyhow::ensure!(out.status.success(), "vellum download --key-file: {}", String::from_utf8_lossy(&out.stderr));
    anyhow::ensure!(std::fs::read(&file_out)? == data, "the CLI round trip");
    let out = Command::new(vellum_binary())
        .args(["download", lines[0], "--api", &api, "--key", &wrong, "-o"])
        .arg(dir.path().join("never.bin"))
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    anyhow::ensure!(!out.status.success() && err.contains("wrong key"), "the CLI with a wrong key: {err}");
    anyhow::ensure!(!dir.path().join("never.bin").exists(), "nothing written under a wrong key");

    // No key in the node's log.
    let log_text = std::fs::read_to_string(&log)?;
    anyhow::ensure!(log_text.contains("upload stored"), "the log is the node's");
    for key in &keys {
        anyhow::ensure!(!log_text.contains(key.as_str()), "a key reached the log");
    }
    Ok(())
}
