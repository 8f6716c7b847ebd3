//! The off-chain proof rule ([`contracts::rules`]) against the contract's own views on a local
//! chain: a request of several slots, filled with the verifier's code replaced by one that
//! accepts every proof, then period after period (anchored in advance, as a validator does) the
//! rule's challenge of each slot must equal `getChallenge` and its entropy `entropyAt`, and
//! whether the rule says a proof is owed must equal `isProofRequired` (this period) and
//! `willProofBeRequired` (the next one), up to and past the request's last period.

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use contracts::Marketplace::{Ask, Content, Request};
use contracts::rules::{challenge, entropy, owes_proof, seed_from_anchor, selected};
use contracts::{Anvil, Marketplace, TestToken, VerifyingKeyWords, deploy, dev_config};

/// EVM code that returns `true` for every call: the verifier accepts any proof.
const ACCEPT_ALL: [u8; 10] = [0x60, 0x01, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3];
const PERIOD: u64 = 60;
const SLOTS: u16 = 6;
const PROBABILITY: u32 = 2;

fn wallet(anvil: &Anvil, i: usize) -> anyhow::Result<(Address, DynProvider)> {
    let signer: PrivateKeySigner = anvil.keys()[i].parse()?;
    let address = signer.address();
    Ok((address, ProviderBuilder::new().wallet(signer).connect_http(anvil.endpoint().parse()?).erased()))
}

async fn mine(provider: &DynProvider, timestamp: Option<u64>) -> anyhow::Result<()> {
    if let Some(t) = timestamp {
        provider.raw_request::<_, serde_json::Value>("evm_setNextBlockTimestamp".into(), (t,)).await?;
    }
    provider.raw_request::<_, serde_json::Value>("evm_mine".into(), ()).await?;
    Ok(())
}

/// Anchors the periods' seeds and mines a block so that the anchor block's hash exists.
async fn anchor(market: &Marketplace::MarketplaceInstance<DynProvider>) -> anyhow::Result<()> {
    let r = market.anchorPeriods().send().await?.get_receipt().await?;
    anyhow::ensure!(r.status(), "anchorPeriods reverted");
    mine(market.provider(), None).await
}

/// The seed of `period` as the rule reads it (from the anchor block's hash), if it is known and
/// was anchored in advance.
async fn seed(market: &Marketplace::MarketplaceInstance<DynProvider>, period: u64) -> anyhow::Result<(U256, bool)> {
    let (ready, late, anchor_block) = market.periodSeed(U256::from(period)).call().await?.into();
    anyhow::ensure!(ready, "period {period}'s seed is not known");
    let block = market
        .provider()
        .get_block_by_number(BlockNumberOrTag::Number(anchor_block.saturating_to()))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no anchor block {anchor_block}"))?;
    Ok((seed_from_anchor(block.header.hash), late))
}

#[tokio::test]
async fn the_rule_matches_the_contract_views() -> anyhow::Result<()> {
    let anvil = Anvil::start()?;
    let (_, deployer) = wallet(&anvil, 0)?;
    let (client, client_p) = wallet(&anvil, 1)?;
    let (host, host_p) = wallet(&anvil, 2)?;
    // Any key: the verifier's code is replaced right after.
    let vk = VerifyingKeyWords {
        alpha: [[1; 32]; 2],
        beta: [[2; 32]; 4],
        gamma: [[3; 32]; 4],
        delta: [[4; 32]; 4],
        ic: vec![[[5; 32]; 2]; 4],
    };
    let d = deploy(&deployer, &vk, dev_config).await?;
    deployer
        .raw_request::<_, serde_json::Value>("anvil_setCode".into(), (d.verifier, Bytes::from(ACCEPT_ALL.to_vec())))
        .await?;
    let plenty = U256::from(10u64).pow(U256::from(24u64));
    for (who, p) in [(client, &client_p), (host, &host_p)] {
        let token = TestToken::new(d.token, p.clone());
        token.mint(who, plenty).send().await?.get_receipt().await?;
        token.approve(d.marketplace, plenty).send().await?.get_receipt().await?;
    }

    // A request that ends about three periods after it starts, a proof every other period.
    let request = Request {
        client,
        expiry: PERIOD,
        ask: Ask {
            slots: SLOTS,
            slotSize: 1024,
            duration: 3 * PERIOD + PERIOD / 2,
            proofProbability: PROBABILITY,
            maxSlotLoss: 0,
            repairThreshold: 1,
            pricePerBytePerSecond: 1,
            collateralPerByte: 1,
        },
        content: Content { cid: Bytes::from_static(b"rules"), merkleRoot: B256::with_last_byte(7) },
        nonce: B256::repeat_byte(3),
    };
    let client_market = Marketplace::new(d.marketplace, client_p.clone());
    // Start a period afresh, so that the request, the anchor and the fills below all fall in one
    // period however slow the machine (the wall clock would otherwise cross into the next).
    let now: u64 = client_market.currentPeriod().call().await?.saturating_to();
    mine(&deployer, Some((now + 1) * PERIOD + 1)).await?;
    let id = client_market.requestStorage(request.clone()).call().await?;
    anyhow::ensure!(client_market.requestStorage(request).send().await?.get_receipt().await?.status());
    let host_market = Marketplace::new(d.marketplace, host_p.clone());
    anchor(&host_market).await?;
    let mut slot_ids = Vec::new();
    for index in 0..u64::from(SLOTS) {
        anyhow::ensure!(host_market.reserveSlot(id, index).send().await?.get_receipt().await?.status(), "reserve");
        anyhow::ensure!(
            host_market.fillSlot(id, index, [U256::ZERO; 8]).send().await?.get_receipt().await?.status(),
            "fill"
        );
        slot_ids.push(host_market.slotId(id, index).call().await?);
    }
    let (started_at, ends_at, _) = host_market.requestTimes(id).call().await?.into();
    anyhow::ensure!(started_at > 0, "the request started");

    let (mut checked, mut required) = (0, 0);
    let mut period: u64 = host_market.currentPeriod().call().await?.saturating_to();
    let last = ends_at / PERIOD + 1;
    while period <= last {
        // Into the next period, anchored in advance (this call also anchors the one after).
        mine(&deployer, Some((period + 1) * PERIOD + 1)).await?;
        period += 1;
        anchor(&host_market).await?;
        anyhow::ensure!(host_market.currentPeriod().call().await? == U256::from(period), "one period on");
        let (now_seed, now_late) = seed(&host_market, period).await?;
        let (next_seed, next_late) = seed(&host_market, period + 1).await?;
        anyhow::ensure!(!now_late && !next_late, "the periods were anchored in advance");
        for slot in &slot_ids {
            assert_eq!(host_market.getChallenge(*slot).call().await?, challenge(now_seed, *slot, period), "challenge");
            // the entropy a validator checks an off-chain proof against
            assert_eq!(
                host_market.entropyAt(*slot, U256::from(period)).call().await?,
                entropy(now_seed, *slot, period),
                "entropyAt"
            );
            let filled_at: u64 = host_market.slotFilledAt(*slot).call().await?.saturating_to();
            let owed = |q: u64, seed: U256| {
                owes_proof(q, started_at, filled_at, ends_at, PERIOD) && selected(seed, *slot, q, PROBABILITY)
            };
            let now = owed(period, now_seed);
            assert_eq!(host_market.isProofRequired(*slot).call().await?, now, "isProofRequired in period {period}");
            assert_eq!(
                host_market.willProofBeRequired(*slot).call().await?,
                owed(period + 1, next_seed),
                "willProofBeRequired in period {period}"
            );
            checked += 1;
            required += usize::from(now);
        }
    }
    assert!(required > 0 && required < checked, "some but not all: {required} of {checked}");
    Ok(())
}
