//! The rest of the REST surface and the CLI: the generated OpenAPI document, metadata kept from
//! upload headers, listing, existence, background fetch, delete, space, SPR and peer id in both
//! forms, log level, metrics, and `vellum upload` / `vellum download`.

use std::time::Duration;

use vellum_testkit::{TestNode, test_bytes, vellum_binary};

const DOCUMENTED_PATHS: [&str; 15] = [
    "/upload",
    "/download/{cid}",
    "/connect/{peerId}",
    "/info",
    "/data",
    "/data/{cid}",
    "/data/{cid}/network",
    "/data/{cid}/network/stream",
    "/data/{cid}/network/manifest",
    "/data/{cid}/exists",
    "/space",
    "/spr",
    "/peerid",
    "/debug/info",
    "/debug/chronicles/loglevel",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_surface_and_cli() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let a = TestNode::start(&dir.path().join("a"), &["--metrics", "--metrics-port", "0"])?;
    let b = TestNode::start_bootstrapped(&dir.path().join("b"), &a, &[]).await?;

    let doc: serde_json::Value = a.get("/openapi.json").await?.json().await?;
    for path in DOCUMENTED_PATHS {
        assert!(doc["paths"].get(path).is_some(), "OpenAPI lacks {path}");
    }

    // Metadata from the upload's headers is kept and listed.
    let data = test_bytes(150_000, 21);
    let resp = a
        .http
        .post(format!("{}/data", a.process.api))
        .header("content-type", "image/png")
        .header("content-disposition", "attachment; filename=\"codex.png\"")
        .body(data.clone())
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let cid = resp.text().await?;
    let list: serde_json::Value = a.get("/data").await?.json().await?;
    let item = &list["content"][0];
    assert_eq!(item["cid"], cid.as_str());
    assert_eq!(item["manifest"]["datasetSize"], 150_000);
    assert_eq!(item["manifest"]["blockSize"], 65_536);
    assert_eq!(item["manifest"]["protected"], false);
    assert_eq!(item["manifest"]["filename"], "codex.png");
    assert_eq!(item["manifest"]["mimetype"], "image/png");
    let resp = a.get(&format!("/data/{cid}")).await?;
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert!(resp.headers()["content-disposition"].to_str()?.contains("codex.png"));

    // Manifest only, then a background fetch, on node b.
    let m: serde_json::Value = b.get(&format!("/data/{cid}/network/manifest")).await?.json().await?;
    assert_eq!(m["manifest"]["treeCid"], item["manifest"]["treeCid"]);
    let exists: serde_json::Value = b.get(&format!("/data/{cid}/exists")).await?.json().await?;
    assert_eq!(exists["has"], false);
    let resp = b.http.post(format!("{}/data/{cid}/network", b.process.api)).send().await?;
    assert_eq!(resp.status(), 200);
    let mut has = false;
    for _ in 0..600 {
        let e: serde_json::Value = b.get(&format!("/data/{cid}/exists")).await?.json().await?;
        if e["has"] == true {
            has = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(has, "background fetch did not complete");
    assert!(b.download(&format!("/data/{cid}")).await? == data);
    let space: serde_json::Value = b.get("/space").await?.json().await?;
    assert_eq!(space["totalBlocks"], 3);
    assert!(space["quotaUsedBytes"].as_u64().unwrap_or(0) >= 150_000);

    // Delete: gone locally, space returned; 204 again for something absent.
    let resp = b.http.delete(format!("{}/data/{cid}", b.process.api)).send().await?;
    assert_eq!(resp.status(), 204);
    assert_eq!(b.get(&format!("/data/{cid}")).await?.status(), 404);
    let space: serde_json::Value = b.get("/space").await?.json().await?;
    assert_eq!(space["quotaUsedBytes"], 0);
    assert_eq!(space["totalBlocks"], 0);

    // SPR and peer id, as text and as JSON.
    let info = a.info().await?;
    assert_eq!(a.get("/spr").await?.text().await?, info["spr"].as_str().unwrap_or_default());
    let spr: serde_json::Value =
        a.http.get(format!("{}/spr", a.process.api)).header("accept", "application/json").send().await?.json().await?;
    assert_eq!(spr["spr"], info["spr"]);
    assert_eq!(a.get("/peerid").await?.text().await?, info["id"].as_str().unwrap_or_default());
    let dbg = a.debug_info().await?;
    for field in ["id", "addrs", "repo", "spr", "announceAddresses", "table", "codex"] {
        assert!(dbg.get(field).is_some(), "debug/info lacks {field}");
    }
    assert!(dbg["table"]["nodes"].as_array().is_some_and(|n| !n.is_empty()), "b is in a's table: {dbg}");

    // Log level.
    let ok = a.http.post(format!("{}/debug/chronicles/loglevel?level=DEBUG", a.process.api)).send().await?;
    assert_eq!(ok.status(), 200);
    let bad = a.http.post(format!("{}/debug/chronicles/loglevel?level=%5B%5B", a.process.api)).send().await?;
    assert_eq!(bad.status(), 400);

    // Metrics.
    let metrics_url = a.process.metrics.clone().unwrap_or_default();
    let text = reqwest::get(&metrics_url).await?.text().await?;
    assert!(text.contains("vellum_uploads_total 1"), "{text}");
    assert!(text.contains("vellum_blocks_served_total 3"), "{text}");

    // The CLI client: upload to a, download through b.
    let file = dir.path().join("cli-in.bin");
    let payload = test_bytes(70_000, 22);
    std::fs::write(&file, &payload)?;
    let out = std::process::Command::new(vellum_binary())
        .args(["upload", file.to_str().unwrap_or_default(), "--api", &a.process.api])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli_cid = String::from_utf8(out.stdout)?.trim().to_owned();
    let target = dir.path().join("cli-out.bin");
    let out = std::process::Command::new(vellum_binary())
        .args(["download", &cli_cid, "-o", target.to_str().unwrap_or_default(), "--api", &b.process.api])
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&target)? == payload);
    let out = std::process::Command::new(vellum_binary())
        .args(["download", "not-a-cid", "-o", target.to_str().unwrap_or_default(), "--api", &b.process.api])
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid CID"));
    Ok(())
}
