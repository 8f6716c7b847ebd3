//! A node whose disk fills: its data dir is a small tmpfs in a mount namespace of its own. Uploads
//! that do not fit answer 507 (early when they declare their size, mid-body otherwise) and leave
//! no file and no quota behind; once space is freed, uploads work again without a restart.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vellum_testkit::{TestNode, test_bytes, vellum_binary};

const TMPFS_MIB: u64 = 24;

/// A script that runs `vellum ARGS…` with `data_dir` mounted as a tmpfs of [`TMPFS_MIB`] MiB in a
/// private mount namespace; `None` where this machine cannot make one (not root, no unshare).
fn tmpfs_wrapper(work: &Path, data_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let probe = std::process::Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg(format!("mount -t tmpfs -o size=1m tmpfs {}", data_dir.display()))
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!("SKIP: cannot mount a tmpfs here: {}", String::from_utf8_lossy(&out.stderr));
            return Ok(None);
        }
        Err(e) => {
            eprintln!("SKIP: no unshare here: {e}");
            return Ok(None);
        }
    }
    let script = work.join("vellum-on-tmpfs.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec unshare -m sh -c 'mount -t tmpfs -o size={TMPFS_MIB}m tmpfs \"{dir}\" && exec \"{bin}\" \"$@\"' sh \"$@\"\n",
            dir = data_dir.display(),
            bin = vellum_binary().display()
        ),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(Some(script))
}

/// The node's view of a path in its data dir (inside its mount namespace).
fn inside(node: &TestNode, rel: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{}/root{}/{rel}", node.process.pid(), node.data_dir.display()))
}

fn names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut out: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<anyhow::Result<_>>()?;
    out.sort();
    Ok(out)
}

async fn used(node: &TestNode) -> anyhow::Result<u64> {
    let space = node.get_json("/space").await?;
    space["quotaUsedBytes"].as_u64().ok_or_else(|| anyhow::anyhow!("no quotaUsedBytes in {space}"))
}

/// Uploads `data` as a chunked body (no declared size), or with its Content-Length when
/// `declare`; returns the status and the answer. The body is written beside reading the answer,
/// since a node refusing an upload answers (and closes) before the client has sent it all.
async fn upload_raw(node: &TestNode, data: Vec<u8>, declare: bool) -> anyhow::Result<(u16, String)> {
    let authority = node.process.api.trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
    let stream = tokio::net::TcpStream::connect(&authority).await?;
    let (mut reader, mut writer) = stream.into_split();
    let framing = if declare { format!("Content-Length: {}", data.len()) } else { "Transfer-Encoding: chunked".into() };
    let head =
        format!("POST /api/codex/v1/data HTTP/1.1\r\nHost: {authority}\r\n{framing}\r\nConnection: close\r\n\r\n");
    let send = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        for piece in data.chunks(256 * 1024) {
            if declare {
                writer.write_all(piece).await?;
            } else {
                writer.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).await?;
                writer.write_all(piece).await?;
                writer.write_all(b"\r\n").await?;
            }
        }
        if !declare {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        // Dropping the write half would send FIN, which the server takes for a client gone.
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(())
    });
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer)).await??;
    send.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status =
        text.get(9..12).and_then(|c| c.parse().ok()).ok_or_else(|| anyhow::anyhow!("no status in {text:?}"))?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, body))
}

async fn upload_chunked(node: &TestNode, data: Vec<u8>) -> anyhow::Result<(u16, String)> {
    upload_raw(node, data, false).await
}

#[tokio::test]
async fn a_full_disk_answers_507_loses_nothing_and_recovers_without_a_restart() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("data");
    std::fs::create_dir(&data_dir)?;
    let Some(wrapper) = tmpfs_wrapper(work.path(), &data_dir)? else { return Ok(()) };
    let log = work.path().join("node.log");
    let args: Vec<String> =
        ["--log-level", "info", "--storage-quota", "1GiB"].iter().map(|s| (*s).to_owned()).collect();
    let node = TestNode::spawn(&wrapper, &data_dir, &args, Some(&log), Duration::from_secs(30))?;

    let first = test_bytes(8 << 20, 1);
    let (status, first_cid) = upload_chunked(&node, first.clone()).await?;
    assert_eq!(status, 200, "{first_cid}");
    let after_first = used(&node).await?;
    let files_after_first = names(&inside(&node, "datasets"))?;

    // Larger than what is left, size undeclared: the disk fills mid-body.
    let (status, text) = upload_chunked(&node, test_bytes(20 << 20, 2)).await?;
    assert_eq!(status, 507, "{text}");
    assert_eq!(used(&node).await?, after_first, "the failed upload's quota is given back");
    assert_eq!(names(&inside(&node, "datasets"))?, files_after_first, "no file of the failed upload kept");
    assert!(names(&inside(&node, "tmp"))?.is_empty(), "nothing left in tmp/");

    // Declared larger than the free space: refused before the body.
    let (status, text) = upload_raw(&node, vec![0u8; 30 << 20], true).await?;
    assert_eq!(status, 507, "{text}");
    assert!(text.contains("not enough disk space"), "{text}");
    assert_eq!(used(&node).await?, after_first);

    // Reads still work, and after freeing space writes work again, without a restart.
    let (_, hash) = node.download_hash(&format!("/data/{}", first_cid.trim())).await?;
    assert_eq!(hash, blake3::hash(&first));
    let r = node.http.delete(node.url(&format!("/data/{}", first_cid.trim()))).send().await?;
    assert!(r.status().is_success(), "delete: {}", r.status());
    assert_eq!(used(&node).await?, 0);
    let second = test_bytes(12 << 20, 3);
    let (status, second_cid) = upload_chunked(&node, second.clone()).await?;
    assert_eq!(status, 200, "{second_cid}");
    let (_, hash) = node.download_hash(&format!("/data/{}", second_cid.trim())).await?;
    assert_eq!(hash, blake3::hash(&second));
    assert_eq!(names(&inside(&node, "datasets"))?.len(), 2, "one data and one tree file");
    Ok(())
}
