//! `vellum deploy` on a fresh anvil writes a deployment file that matches the chain (addresses,
//! start block, configuration, verifying key); it refuses to overwrite it, and reuses a token when
//! asked. A `vellum node` and a `vellum validator` given only `--deployment` (besides their key
//! files and the prover key, which the validator takes as its verifying key) come up on that
//! marketplace; files for another chain, without code at their marketplace address, or for
//! another prover key (a node's or a validator's) are refused with clear errors.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::providers::{Provider, ProviderBuilder};
use circuits::r1cs::ProofShape;
use contracts::deployment::{ConfigRecord, verifying_key_hash};
use contracts::{Anvil, DeploymentFile, Marketplace};
use prover::EvmVerifyingKey;
use vellum_testkit::{SHAPE, TestNode, ValidatorProcess, file_contains, strs, vellum_binary, wait_for, write_key_file};

/// How long one `vellum` command that should finish may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `vellum ARGS` to its end; returns whether it succeeded, its stdout and its stderr.
async fn vellum(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let child = tokio::process::Command::new(vellum_binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output()).await??;
    Ok((out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into()))
}

/// The path as a `&str` for the command line.
fn arg(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deploy_writes_a_file_that_nodes_and_validators_start_from() -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(150), scenario()).await?
}

async fn scenario() -> anyhow::Result<()> {
    let anvil = Anvil::start_with(Some(1))?;
    let endpoint = anvil.endpoint();
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let keys = prover::setup(&SHAPE)?;
    let vk = node::market::verifying_key_words(&EvmVerifyingKey::new(&keys.pk.vk));
    let (prover_key, _) = prover::write_keys(&keys, &dir.join("keys"))?;
    let (deployer, node_key, validator_key) =
        (write_key_file(dir, &anvil, 0)?, write_key_file(dir, &anvil, 1)?, write_key_file(dir, &anvil, 2)?);
    let file = dir.join("deployment.json");
    let deploy = |key: &Path, out: &Path| {
        vec![
            "deploy".to_owned(),
            "--eth-provider".into(),
            endpoint.clone(),
            "--eth-private-key-file".into(),
            arg(key).into(),
            "--prover-key".into(),
            arg(&prover_key).into(),
            "--period".into(),
            "6".into(),
            "--out".into(),
            arg(out).into(),
        ]
    };

    // One command deploys and writes the file.
    let (ok, stdout, stderr) = vellum(&strs(&deploy(&deployer, &file))).await?;
    anyhow::ensure!(ok, "vellum deploy failed: {stderr}");
    let d = DeploymentFile::read(&file)?;
    anyhow::ensure!(stdout.contains(&format!("{:#x}", d.contracts.marketplace)), "it prints the marketplace: {stdout}");
    anyhow::ensure!(d.chain_id == 31337, "chain id {}", d.chain_id);
    anyhow::ensure!(d.config.period_length == 6 && d.config.proof_timeout == 3, "the period flag: {:?}", d.config);
    anyhow::ensure!(d.verifying_key.hash == verifying_key_hash(&vk), "the verifying key's hash");
    let provider = ProviderBuilder::new().connect(&endpoint).await?;
    let market = Marketplace::new(d.contracts.marketplace, &provider);
    anyhow::ensure!(market.settlement().call().await? == d.contracts.settlement, "the settlement module");
    let channels = contracts::BandwidthChannels::new(
        d.contracts.bandwidth_channels.ok_or_else(|| anyhow::anyhow!("no bandwidth channels in the file"))?,
        &provider,
    );
    anyhow::ensure!(channels.token().call().await? == d.contracts.token, "channels pay in the marketplace's token");
    anyhow::ensure!(
        channels.closeDelay().call().await? == contracts::deployment::BANDWIDTH_CLOSE_DELAY,
        "the close delay"
    );
    anyhow::ensure!(ConfigRecord::from(&market.config().call().await?) == d.config, "the configuration on chain");
    let (token, verifier) = (market.token().call().await?, market.verifier().call().await?);
    anyhow::ensure!(token == d.contracts.token && verifier == d.contracts.verifier, "token and verifier");
    // The start block is the marketplace's creation: no code there the block before.
    let m = d.contracts.marketplace;
    anyhow::ensure!(!provider.get_code_at(m).number(d.start_block).await?.is_empty(), "code at the start block");
    anyhow::ensure!(provider.get_code_at(m).number(d.start_block - 1).await?.is_empty(), "none before it");

    // The file is not overwritten by accident; another deployment reuses the token.
    let (ok, _, stderr) = vellum(&strs(&deploy(&deployer, &file))).await?;
    anyhow::ensure!(!ok && stderr.contains("pass --force"), "an existing file is kept: {stderr}");
    let second = dir.join("second.json");
    let mut reuse = deploy(&deployer, &second);
    reuse.extend(["--token".into(), format!("{token:#x}")]);
    let (ok, _, stderr) = vellum(&strs(&reuse)).await?;
    anyhow::ensure!(ok, "vellum deploy --token failed: {stderr}");
    let d2 = DeploymentFile::read(&second)?;
    anyhow::ensure!(d2.contracts.token == token && d2.contracts.marketplace != m, "the token reused: {d2:?}");

    // A node and a validator given the file alone come up on the marketplace.
    let node_log = dir.join("node.log");
    let node_flags = |deployment: &Path, key: &Path| {
        vec![
            "--eth-provider".to_owned(),
            endpoint.clone(),
            "--eth-private-key-file".into(),
            arg(&node_key).into(),
            "--deployment".into(),
            arg(deployment).into(),
            "--prover-key".into(),
            arg(key).into(),
        ]
    };
    let node = TestNode::start_logged(&dir.join("node"), &strs(&node_flags(&file, &prover_key)), Some(&node_log))?;
    wait_for("the node's API", Duration::from_secs(20), || async { Ok(node.info().await?.get("id").is_some()) })
        .await?;
    let purchases = node.get("/storage/purchases").await?;
    anyhow::ensure!(purchases.status().is_success(), "persistence mode's API answers: {}", purchases.status());
    anyhow::ensure!(
        file_contains(&node_log, "persistence mode") && file_contains(&node_log, &m.to_string()),
        "the node follows the marketplace"
    );
    let validator_log = dir.join("validator.log");
    let validator_args = ["--data-dir", arg(&dir.join("validator")), "--eth-provider", &endpoint]
        .into_iter()
        .chain(["--eth-private-key-file", arg(&validator_key), "--deployment", arg(&file)])
        .chain(["--verifying-key", arg(&prover_key), "--listen-ip", "127.0.0.1"])
        .map(String::from)
        .collect::<Vec<_>>();
    let _validator = ValidatorProcess::spawn(&vellum_binary(), &validator_args, &validator_log, COMMAND_TIMEOUT)?;
    wait_for("the validator to follow the marketplace", Duration::from_secs(30), || async {
        Ok(file_contains(&validator_log, "validator started") && file_contains(&validator_log, &m.to_string()))
    })
    .await?;

    // Files for another chain, without code at their marketplace, or for another key: refused.
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(&file)?)?;
    let edited = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| -> anyhow::Result<PathBuf> {
        let mut value = original.clone();
        edit(&mut value);
        let path = dir.join(name);
        std::fs::write(&path, value.to_string())?;
        Ok(path)
    };
    let other_chain = edited("other-chain.json", &|v| v["chainId"] = 1.into())?;
    let (ok, _, stderr) = vellum(&[
        "validator",
        "--data-dir",
        arg(&dir.join("validator2")),
        "--eth-provider",
        &endpoint,
        "--eth-private-key-file",
        arg(&validator_key),
        "--deployment",
        arg(&other_chain),
        "--verifying-key",
        arg(&prover_key),
    ])
    .await?;
    anyhow::ensure!(
        !ok && stderr.contains("for chain id 1 but the endpoint serves chain id 31337"),
        "another chain refused: {stderr}"
    );
    let nowhere = Address::repeat_byte(0xde);
    let no_code = edited("no-code.json", &|v| v["contracts"]["marketplace"] = format!("{nowhere:#x}").into())?;
    let refused_node = |flags: Vec<String>| async move {
        let mut args = vec!["node".to_owned(), "--data-dir".into(), arg(&dir.join("node2")).into()];
        args.extend(["-i", "127.0.0.1", "--api-port", "0", "--udp-port", "0"].map(String::from));
        args.extend(flags);
        vellum(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
    };
    let (ok, _, stderr) = refused_node(node_flags(&no_code, &prover_key)).await?;
    anyhow::ensure!(!ok && stderr.contains(&format!("no contract at {nowhere} on chain 31337")), "no code: {stderr}");
    let other_keys = prover::setup(&ProofShape { samples: 2, ..SHAPE })?;
    let (other_key, _) = prover::write_keys(&other_keys, &dir.join("other-keys"))?;
    let (ok, _, stderr) = refused_node(node_flags(&file, &other_key)).await?;
    anyhow::ensure!(!ok && stderr.contains("verifying key hashes to"), "another prover key refused: {stderr}");
    // A validator checking proofs with another key than the deployment's is refused too.
    let (ok, _, stderr) = vellum(&[
        "validator",
        "--data-dir",
        arg(&dir.join("validator3")),
        "--eth-provider",
        &endpoint,
        "--eth-private-key-file",
        arg(&validator_key),
        "--deployment",
        arg(&file),
        "--verifying-key",
        arg(&other_key),
        "--listen-ip",
        "127.0.0.1",
    ])
    .await?;
    anyhow::ensure!(
        !ok && stderr.contains("verifying key hashes to"),
        "a validator with another key refused: {stderr}"
    );
    drop(node);
    Ok(())
}
