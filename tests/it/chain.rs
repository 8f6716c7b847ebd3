//! The marketplace on a local chain with real proofs: anvil (the pinned one from
//! `contracts/node_modules`), the contracts deployed from their committed artifacts with a
//! verifying key fresh from `prover`, a client that requests storage, a host that fills both
//! slots with proofs against the chain's challenges and proves one of them in the next period, and
//! a validator that accuses the other's missing proof with a bond, waits out the response window
//! and settles the accusation: it gets its bond back and is paid the reward. Balances are checked
//! to the unit.

use alloy::primitives::{Address, Bytes, FixedBytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use circuits::Fr;
use circuits::r1cs::{ProofShape, build_inputs, dataset_path};
use contracts::Marketplace::{Ask, Content, Request};
use contracts::{Anvil, Marketplace, TestToken, deploy, dev_config, proof_words};
use prover::{DiskSlot, EvmProof, EvmVerifyingKey, Prover};

use crate::slot_files::write_slot;

fn fr_word(x: &Fr) -> FixedBytes<32> {
    let mut be = circuits::fr_to_bytes(x);
    be.reverse();
    FixedBytes::from_slice(&be)
}

fn wallet(anvil: &Anvil, i: usize) -> (Address, DynProvider) {
    let signer: PrivateKeySigner = anvil.keys()[i].parse().expect("dev key");
    let address = signer.address();
    let url = anvil.endpoint().parse().expect("url");
    (address, ProviderBuilder::new().wallet(signer).connect_http(url).erased())
}

/// Mines a block one second into the period after `period` (of `length` seconds).
async fn next_period(provider: &DynProvider, period: U256, length: u64) -> anyhow::Result<()> {
    let start = (period.to::<u64>() + 1) * length + 1;
    provider.raw_request::<_, serde_json::Value>("evm_setNextBlockTimestamp".into(), (start,)).await?;
    provider.raw_request::<_, serde_json::Value>("evm_mine".into(), ()).await?;
    Ok(())
}

/// What a validator does each period: anchors the periods' seeds (see ProofPeriods.sol), then a
/// block is mined so that the seed (the anchor block's hash) can be read.
async fn anchor_periods(market: &Marketplace::MarketplaceInstance<DynProvider>) -> anyhow::Result<()> {
    let r = market.anchorPeriods().send().await?.get_receipt().await?;
    anyhow::ensure!(r.status(), "anchorPeriods reverted");
    market.provider().raw_request::<_, serde_json::Value>("evm_mine".into(), ()).await?;
    Ok(())
}

/// Mines a block at `timestamp`.
async fn mine_at(provider: &DynProvider, timestamp: u64) -> anyhow::Result<()> {
    provider.raw_request::<_, serde_json::Value>("evm_setNextBlockTimestamp".into(), (timestamp,)).await?;
    provider.raw_request::<_, serde_json::Value>("evm_mine".into(), ()).await?;
    Ok(())
}

/// Proves slot `index` against the chain's current challenge for it and submits through `send`:
/// a fill proof (`fillSlot`, its entropy bound to the `filler`'s address) or a periodic proof
/// (`submitProof`, `filler` None); a challenge that moved on between reading it and the
/// transaction (a new period) makes the proof fail, and the host proves again, as a node would.
#[allow(clippy::too_many_arguments)]
async fn prove_and_send<F, Fut>(
    market: &Marketplace::MarketplaceInstance<DynProvider>,
    prover: &Prover,
    slot: &DiskSlot,
    roots: &[Fr],
    slot_id: FixedBytes<32>,
    index: u64,
    filler: Option<Address>,
    send: F,
) -> anyhow::Result<()>
where
    F: Fn([U256; 8]) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let shape = prover.keys().shape;
    let dataset_root = circuits::dataset_root(roots);
    let mut last = None;
    for _ in 0..6 {
        let entropy_word = match filler {
            Some(filler) => market.fillEntropy(slot_id, filler).call().await?,
            None => market.getEntropy(slot_id).call().await?,
        };
        let entropy = prover::entropy_from_block_hash(&entropy_word.to_be_bytes::<32>());
        let inputs = build_inputs(&shape, slot, dataset_path(roots, index), dataset_root, entropy, index)?;
        let proof = prover.prove(&inputs)?;
        match send(proof_words(&EvmProof::new(&proof).words())).await {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_request_filled_proven_and_missed_proof_accused_and_settled() -> anyhow::Result<()> {
    // A transaction that never gets mined would leave a receipt wait hanging: bound the scenario.
    tokio::time::timeout(std::time::Duration::from_secs(180), scenario()).await?
}

async fn scenario() -> anyhow::Result<()> {
    let anvil = Anvil::start()?;
    let (_, deployer) = wallet(&anvil, 0);
    let (client, client_p) = wallet(&anvil, 1);
    let (host, host_p) = wallet(&anvil, 2);
    let (validator, validator_p) = wallet(&anvil, 3);

    // Keys for a small proof shape, and a dataset of two slots on disk.
    let shape = ProofShape { samples: 3, slot_depth: 3, dataset_levels: 1, cell_size: 64 };
    let keys = prover::setup(&shape)?;
    let vk = node::market::verifying_key_words(&EvmVerifyingKey::new(&keys.pk.vk));
    let prover = Prover::new(keys);
    let dir = tempfile::tempdir()?;
    let roots: Vec<Fr> =
        (0..2u8).map(|i| write_slot(dir.path(), &format!("s{i}"), shape.slot_depth, shape.cell_size, i)).collect();
    let slots: Vec<DiskSlot> = (0..2)
        .map(|i| {
            let (c, t) = (dir.path().join(format!("s{i}.cells")), dir.path().join(format!("s{i}.tree")));
            DiskSlot::open(&c, &t, shape.cell_size, shape.slot_cells())
        })
        .collect::<Result<_, _>>()?;

    let d = deploy(&deployer, &vk, dev_config).await?;
    let token = |p: &DynProvider| TestToken::new(d.token, p.clone());
    let market = |p: &DynProvider| Marketplace::new(d.marketplace, p.clone());

    // The client asks for two slots of 512 bytes for an hour, a proof every period.
    let slot_size = (shape.slot_cells() * shape.cell_size as u64) as u128;
    let (price, collateral_per_byte, duration) = (3u128, 1_000u128, 3_600u64);
    let request = Request {
        client,
        expiry: 600,
        ask: Ask {
            slots: 2,
            slotSize: slot_size as u64,
            duration,
            proofProbability: 1,
            maxSlotLoss: 1,
            repairThreshold: 1,
            pricePerBytePerSecond: price,
            collateralPerByte: collateral_per_byte,
        },
        content: Content {
            cid: Bytes::from_static(b"zDvZ-test-dataset"),
            merkleRoot: fr_word(&circuits::dataset_root(&roots)),
        },
        nonce: FixedBytes::from([7u8; 32]),
    };
    let payment = U256::from(2 * slot_size * price * duration as u128);
    token(&client_p).mint(client, payment).send().await?.get_receipt().await?;
    token(&client_p).approve(d.marketplace, payment).send().await?.get_receipt().await?;
    let request_id = market(&client_p).requestStorage(request.clone()).call().await?;
    let receipt = market(&client_p).requestStorage(request).send().await?.get_receipt().await?;
    assert!(receipt.status(), "requestStorage reverted");
    assert_eq!(token(&client_p).balanceOf(d.marketplace).call().await?, payment);

    // The host fills both slots with proofs and collateral: each reservation takes a deposit
    // of 10 % of the collateral, and the fill the rest.
    let collateral = U256::from(slot_size * collateral_per_byte);
    let deposit = collateral * U256::from(10u64) / U256::from(100u64);
    token(&host_p).mint(host, collateral * U256::from(2)).send().await?.get_receipt().await?;
    token(&host_p).approve(d.marketplace, collateral * U256::from(2)).send().await?.get_receipt().await?;
    let host_market = market(&host_p);
    let validator_market = market(&validator_p);
    // Nobody anchored this period in advance: the validator's call anchors it late (its seed
    // serves the fills, no proof is required in it) and anchors the next period. The period is
    // started afresh first, so that the fills land in it however slow the machine.
    next_period(&deployer, validator_market.currentPeriod().call().await?, 60).await?;
    anchor_periods(&validator_market).await?;
    let mut slot_ids = Vec::new();
    for index in 0..2u64 {
        let r = host_market.reserveSlot(request_id, index).send().await?.get_receipt().await?;
        anyhow::ensure!(r.status(), "reserveSlot reverted");
        let left = collateral * U256::from(2 - index) - deposit;
        assert_eq!(token(&host_p).balanceOf(host).call().await?, left, "the reservation took the deposit");
        let (holder, _) = host_market.reservation(request_id, index).call().await?.into();
        assert_eq!(holder, host, "the host holds the reservation alone");
        let other = market(&validator_p).reserveSlot(request_id, index).call().await;
        assert!(other.is_err(), "a second host reserved a reserved slot");
        let slot_id = host_market.slotId(request_id, index).call().await?;
        slot_ids.push(slot_id);
        // a fill proof made for another address is refused: the entropy binds the filler
        let entropy = host_market.fillEntropy(slot_id, validator).call().await?;
        let inputs = build_inputs(
            &shape,
            &slots[index as usize],
            dataset_path(&roots, index),
            circuits::dataset_root(&roots),
            prover::entropy_from_block_hash(&entropy.to_be_bytes::<32>()),
            index,
        )?;
        let copied = proof_words(&EvmProof::new(&prover.prove(&inputs)?).words());
        assert!(
            host_market.fillSlot(request_id, index, copied).call().await.is_err(),
            "a fill proof for another filler"
        );
        prove_and_send(&host_market, &prover, &slots[index as usize], &roots, slot_id, index, Some(host), |words| {
            let m = host_market.clone();
            async move {
                let r = m.fillSlot(request_id, index, words).send().await?.get_receipt().await?;
                anyhow::ensure!(r.status(), "fillSlot reverted");
                Ok(())
            }
        })
        .await?;
    }
    assert_eq!(
        contracts::RequestState::try_from(market(&client_p).requestState(request_id).call().await?)?,
        contracts::RequestState::Started
    );
    assert_eq!(market(&client_p).reservationsTaken(request_id).call().await?, U256::from(2u64), "one per fill");
    assert_eq!(token(&host_p).balanceOf(host).call().await?, U256::ZERO);

    // Next period: a proof is required of both; the host proves slot 0 only.
    let fill_period = host_market.currentPeriod().call().await?;
    let (ready, late, _) = host_market.periodSeed(fill_period).call().await?.into();
    assert!(ready && late, "the fill period was anchored late");
    assert!(!host_market.isProofRequired(slot_ids[0]).call().await?);
    assert!(host_market.willProofBeRequired(slot_ids[0]).call().await?, "the next period's seed is known");
    next_period(&deployer, fill_period, 60).await?;
    anchor_periods(&validator_market).await?;
    assert!(host_market.isProofRequired(slot_ids[0]).call().await?);
    let period = host_market.currentPeriod().call().await?;
    prove_and_send(&host_market, &prover, &slots[0], &roots, slot_ids[0], 0, None, |words| {
        let m = host_market.clone();
        let id = slot_ids[0];
        async move {
            let r = m.submitProof(id, words).send().await?.get_receipt().await?;
            anyhow::ensure!(r.status(), "submitProof reverted");
            Ok(())
        }
    })
    .await?;
    // A proof for the wrong slot is refused (slot 1's challenge, slot 0's proof).
    // (Probes that must revert are calls, not transactions: a transaction refused at gas
    // estimation would still use up a nonce in the provider's nonce cache.)
    let refused = host_market.submitProof(slot_ids[1], [U256::from(1u64); 8]).call().await;
    assert!(refused.is_err(), "a junk proof was accepted");

    // After the period: the validator accuses slot 1's missing proof with the bond; slot 0's
    // proof cannot be accused, nor can an accusation come without the exact bond.
    next_period(&deployer, period, 60).await?;
    anchor_periods(&validator_market).await?;
    let bond = U256::from(1_000_000_000_000_000u64);
    assert!(validator_market.accuseMissingProof(slot_ids[0], period).value(bond).call().await.is_err());
    assert!(validator_market.accuseMissingProof(slot_ids[1], period).call().await.is_err(), "no bond");
    let ether_before = validator_p.get_balance(validator).await?;
    let r = validator_market.accuseMissingProof(slot_ids[1], period).value(bond).send().await?.get_receipt().await?;
    assert!(r.status(), "accuseMissingProof reverted");
    let mut gas = u128::from(r.gas_used) * r.effective_gas_price;
    let (accuser, deadline) = validator_market.accusation(slot_ids[1], period).call().await?.into();
    assert_eq!(accuser, validator);
    assert_eq!(validator_p.get_balance(d.marketplace).await?, bond, "the marketplace holds the bond");
    // Within the response window the accusation cannot be settled; after it, anyone can.
    assert!(validator_market.settleAccusation(slot_ids[1], period).call().await.is_err(), "window open");
    mine_at(&deployer, deadline + 1).await?;
    let r = validator_market.settleAccusation(slot_ids[1], period).send().await?.get_receipt().await?;
    assert!(r.status(), "settleAccusation reverted");
    gas += u128::from(r.gas_used) * r.effective_gas_price;
    assert_eq!(host_market.missingProofs(slot_ids[1]).call().await?, U256::from(1u64), "one missed proof");
    let slashed = collateral * U256::from(10u64) / U256::from(100u64);
    let reward = slashed * U256::from(50u64) / U256::from(100u64);
    // the validator's gas is paid in ether and its bond came back: its token balance is the
    // reward, to the unit, and its ether balance is down by the gas only
    assert_eq!(token(&validator_p).balanceOf(validator).call().await?, reward);
    assert_eq!(validator_p.get_balance(validator).await?, ether_before - U256::from(gas), "the bond came back");
    assert_eq!(validator_p.get_balance(d.marketplace).await?, U256::ZERO, "no ether left in the marketplace");
    assert_eq!(validator_market.ethCredit(validator).call().await?, U256::ZERO, "nothing left to claim");
    assert_eq!(
        token(&validator_p).balanceOf(d.marketplace).call().await?,
        payment + collateral * U256::from(2) - reward,
        "the marketplace holds the payment and both collaterals (deposits included), less the validator's reward"
    );
    Ok(())
}
