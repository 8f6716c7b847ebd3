//! Validators on anvil: two `vellum validator` processes split the slots into two groups. A host
//! fills both slots of a request with real proofs, then proves slot 0 every period and never
//! slot 1. The validator whose group holds slot 1 accuses each of its missing proofs once, with a
//! bond, and settles each accusation once the response window has passed (also across a restart
//! of that validator while an accusation is open), until the slot is lost after three misses; it
//! is paid exactly three rewards and gets its bonds back; the other validator accuses nothing,
//! and slot 0 is never accused.

use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::primitives::{B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::sol_types::SolEvent;
use circuits::Fr;
use circuits::r1cs::{build_inputs, dataset_path};
use contracts::MarketEvent;
use contracts::Marketplace::{self, Ask, Content, Request};
use contracts::proof_words;
use prover::{DiskSlot, EvmProof, Prover};
use vellum_testkit::{MarketNet, SHAPE, ValidatorProcess, file_contains, wait_for};

use crate::slot_files::write_slot;

fn fr_word(x: &Fr) -> B256 {
    let mut be = circuits::fr_to_bytes(x);
    be.reverse();
    B256::from(be)
}

/// Accusations so far: (slot, period, accuser).
async fn accusations(net: &MarketNet) -> anyhow::Result<Vec<(B256, u64, alloy::primitives::Address)>> {
    let filter = Filter::new()
        .address(net.deployment.marketplace)
        .event_signature(Marketplace::ProofAccused::SIGNATURE_HASH)
        .from_block(0u64);
    let mut out = Vec::new();
    for log in net.deployer.get_logs(&filter).await? {
        let Some(MarketEvent::ProofAccused { slot_id, period, accuser, .. }) = MarketEvent::decode(&log) else {
            anyhow::bail!("not a ProofAccused log: {log:?}");
        };
        out.push((slot_id, period, accuser));
    }
    Ok(out)
}

/// Missed proofs so far (accusations settled): (slot, period, validator).
async fn marks(net: &MarketNet) -> anyhow::Result<Vec<(B256, u64, alloy::primitives::Address)>> {
    let filter = Filter::new()
        .address(net.deployment.marketplace)
        .event_signature(Marketplace::ProofMissed::SIGNATURE_HASH)
        .from_block(0u64);
    let mut out = Vec::new();
    for log in net.deployer.get_logs(&filter).await? {
        let Some(MarketEvent::ProofMissed { slot_id, period, validator, .. }) = MarketEvent::decode(&log) else {
            anyhow::bail!("not a ProofMissed log: {log:?}");
        };
        out.push((slot_id, period, validator));
    }
    Ok(out)
}

/// Wallet `i`, reading its nonce afresh for each transaction. alloy's default caches the nonce
/// and takes the next one even for a send refused at its gas estimate (a proof that a new period
/// made stale), so the wallet's later transactions waited behind the gap for good and the
/// scenario hung until its timeout.
fn wallet_reading_nonces(net: &MarketNet, i: usize) -> anyhow::Result<DynProvider> {
    Ok(ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(net.signer(i)?))
        .connect_http(net.anvil.endpoint().parse()?)
        .erased())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validators_accuse_and_settle_missed_proofs_of_their_group_once_each() -> anyhow::Result<()> {
    let net = MarketNet::start().await?;
    let outcome = tokio::time::timeout(Duration::from_secs(240), scenario(&net)).await;
    net.report(outcome)
}

async fn scenario(net: &MarketNet) -> anyhow::Result<()> {
    let dir = net.dir().to_path_buf();
    let roots: Vec<Fr> =
        (0..2u8).map(|i| write_slot(&dir, &format!("s{i}"), SHAPE.slot_depth, SHAPE.cell_size, i)).collect();
    let slots: Vec<DiskSlot> = (0..2)
        .map(|i| {
            let (c, t) = (dir.join(format!("s{i}.cells")), dir.join(format!("s{i}.tree")));
            DiskSlot::open(&c, &t, SHAPE.cell_size, SHAPE.slot_cells())
        })
        .collect::<Result<_, _>>()?;
    let prover = Prover::new(prover::read_proving_key(&net.prover_key)?);
    let dataset_root = circuits::dataset_root(&roots);

    // The client asks for two slots, a proof every period.
    let client = Marketplace::new(net.deployment.marketplace, net.wallet(1));
    let slot_size = SHAPE.slot_cells() * SHAPE.cell_size as u64;
    let request = Request {
        client: net.address(1),
        expiry: 300,
        ask: Ask {
            slots: 2,
            slotSize: slot_size,
            duration: 3_600,
            proofProbability: 1,
            maxSlotLoss: 1,
            repairThreshold: 1,
            pricePerBytePerSecond: 1,
            collateralPerByte: 10,
        },
        content: Content { cid: Bytes::from_static(b"zDvZ-validator-test"), merkleRoot: fr_word(&dataset_root) },
        nonce: B256::repeat_byte(9),
    };
    let payment = U256::from(2 * slot_size * 3_600);
    net.fund(1, payment).await?;
    let token = contracts::TestToken::new(net.deployment.token, net.wallet(1));
    token.approve(net.deployment.marketplace, payment).send().await?.get_receipt().await?;
    let request_id = client.requestStorage(request.clone()).call().await?;
    client.requestStorage(request).send().await?.get_receipt().await?;
    let ids: Vec<B256> = vec![client.slotId(request_id, 0).call().await?, client.slotId(request_id, 1).call().await?];
    let owner = (0..2u64).find(|g| validator::challenge::in_group(ids[1], 2, *g)).unwrap_or(0);

    // Two validators (wallets 3 and 4), groups 0 and 1.
    let vdirs: Vec<_> = (0..2).map(|g| dir.join(format!("validator{g}"))).collect();
    let vlogs: Vec<_> = (0..2).map(|g| dir.join(format!("validator{g}.log"))).collect();
    let mut validators = Vec::new();
    for g in 0..2u64 {
        validators.push(ValidatorProcess::start(net, 3 + g as usize, (2, g), &vdirs[g as usize], &vlogs[g as usize])?);
    }

    // The host fills both slots (once a validator has anchored the period), with collateral.
    let collateral = U256::from(slot_size * 10);
    net.fund(2, collateral * U256::from(2)).await?;
    let host = Marketplace::new(net.deployment.marketplace, wallet_reading_nonces(net, 2)?);
    contracts::TestToken::new(net.deployment.token, net.wallet(2))
        .approve(net.deployment.marketplace, collateral * U256::from(2))
        .send()
        .await?
        .get_receipt()
        .await?;
    let prove = |index: usize, entropy: U256| -> anyhow::Result<[U256; 8]> {
        let e = prover::entropy_from_block_hash(&entropy.to_be_bytes::<32>());
        let inputs =
            build_inputs(&SHAPE, &slots[index], dataset_path(&roots, index as u64), dataset_root, e, index as u64)?;
        Ok(proof_words(&EvmProof::new(&prover.prove(&inputs)?).words()))
    };
    let host_address = net.address(2);
    for (index, id) in ids.iter().enumerate() {
        // Fair dispersal: the slot opens to this host within a period.
        let deadline = Instant::now() + Duration::from_secs(30);
        while host.reserveSlot(request_id, index as u64).call().await.is_err() {
            anyhow::ensure!(Instant::now() < deadline, "could not reserve slot {index}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        anyhow::ensure!(
            host.reserveSlot(request_id, index as u64).send().await?.get_receipt().await?.status(),
            "reserveSlot reverted"
        );
        loop {
            anyhow::ensure!(Instant::now() < deadline, "could not fill slot {index}");
            let Ok(entropy) = host.fillEntropy(*id, host_address).call().await else {
                tokio::time::sleep(Duration::from_millis(300)).await; // no seed yet
                continue;
            };
            let words = prove(index, entropy)?;
            // A proof made in one period fails in the next, also between the check and the send's
            // gas estimate: a refused send is proven again, as a node would.
            if host.fillSlot(request_id, index as u64, words).call().await.is_ok()
                && let Ok(pending) = host.fillSlot(request_id, index as u64, words).send().await
                && pending.get_receipt().await?.status()
            {
                break;
            }
        }
    }
    anyhow::ensure!(
        contracts::RequestState::try_from(host.requestState(request_id).call().await?)?
            == contracts::RequestState::Started,
        "the request started"
    );

    // The host proves slot 0 whenever required, never slot 1; the owning validator restarts
    // while its first accusation is open (it must settle it after the restart).
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut restarted = false;
    while host.getHost(ids[1]).call().await? != alloy::primitives::Address::ZERO {
        anyhow::ensure!(Instant::now() < deadline, "slot 1 was not lost in time: marks {:?}", marks(net).await?);
        if host.isProofRequired(ids[0]).call().await.unwrap_or(false)
            && let Ok(entropy) = host.getEntropy(ids[0]).call().await
        {
            let words = prove(0, entropy)?;
            // (a new period between the check and the send refuses it: the loop proves again)
            if host.submitProof(ids[0], words).call().await.is_ok()
                && let Ok(pending) = host.submitProof(ids[0], words).send().await
            {
                pending.get_receipt().await?;
            }
        }
        if !restarted && accusations(net).await?.len() > marks(net).await?.len() {
            drop(validators.remove(owner as usize));
            validators.insert(
                owner as usize,
                ValidatorProcess::start(
                    net,
                    3 + owner as usize,
                    (2, owner),
                    &vdirs[owner as usize],
                    &vlogs[owner as usize],
                )?,
            );
            restarted = true;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }

    let all = marks(net).await?;
    let owner_address = net.address(3 + owner as usize);
    anyhow::ensure!(all.len() == 3, "three misses lose the slot: {all:?}");
    anyhow::ensure!(
        all.iter().all(|(s, _, v)| *s == ids[1] && *v == owner_address),
        "only slot 1, only its group's validator: {all:?}"
    );
    let periods: std::collections::BTreeSet<u64> = all.iter().map(|(_, p, _)| *p).collect();
    anyhow::ensure!(periods.len() == 3, "each period missed once");
    // Each missed proof was accused once, by the owner; one more accusation may have been made
    // while the third miss was being settled (it only returns the bond).
    let accused = accusations(net).await?;
    let accused_periods: std::collections::BTreeSet<u64> = accused.iter().map(|(_, p, _)| *p).collect();
    anyhow::ensure!(
        (3..=4).contains(&accused.len())
            && accused_periods.len() == accused.len()
            && accused.iter().all(|(s, _, v)| *s == ids[1] && *v == owner_address),
        "one accusation per period, each by the owner, of slot 1: {accused:?}"
    );
    anyhow::ensure!(periods.is_subset(&accused_periods), "every missed period was accused: {accused:?}");
    let slash = collateral * U256::from(10u64) / U256::from(100u64);
    let reward = slash * U256::from(50u64) / U256::from(100u64);
    anyhow::ensure!(net.balance(owner_address).await? == reward * U256::from(3u64), "the owner earned three rewards");
    anyhow::ensure!(net.balance(net.address(4 - owner as usize)).await? == U256::ZERO, "the other earned nothing");
    // Every accusation gets settled and every bond comes back: the marketplace keeps no ether.
    wait_for("every bond back", Duration::from_secs(30), || async {
        Ok(net.deployer.get_balance(net.deployment.marketplace).await? == U256::ZERO)
    })
    .await?;
    anyhow::ensure!(restarted && file_contains(&vlogs[owner as usize], "validator started"), "the owner restarted");
    anyhow::ensure!(file_contains(&vlogs[owner as usize], "period checked"), "the owner reports its periods");
    // Its metrics count the marks of both its runs and the rewards they earned.
    let owner_process = &validators[owner as usize];
    let expected_rewards: f64 = (reward * U256::from(3u64)).to::<u128>() as f64;
    wait_for("the owner's metrics to count three marks", Duration::from_secs(20), || async {
        Ok(owner_process.metric("vellum_validator_marks_total").await? == Some(3.0)
            && owner_process.metric("vellum_validator_accusations_total").await? == Some(accused.len() as f64)
            && owner_process.metric("vellum_validator_rewards").await? == Some(expected_rewards))
    })
    .await?;
    anyhow::ensure!(
        owner_process.metric("vellum_validator_periods_checked_total").await?.unwrap_or(0.0) >= 1.0,
        "the owner counts the periods it checked"
    );
    let other = &validators[1 - owner as usize];
    anyhow::ensure!(other.metric("vellum_validator_marks_total").await? == Some(0.0), "the other marked nothing");
    anyhow::ensure!(
        other.metric("vellum_validator_accusations_total").await? == Some(0.0),
        "the other accused nothing"
    );
    let in_other_group = ids.iter().filter(|id| validator::challenge::in_group(**id, 2, 1 - owner)).count();
    anyhow::ensure!(
        other.metric("vellum_validator_slots_watched").await? == Some(in_other_group as f64),
        "the other watches its group's slots"
    );
    Ok(())
}
