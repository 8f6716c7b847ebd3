//! Bandwidth vouchers across the Rust/Solidity boundary, on anvil: the digest the node computes
//! is the contract's, a voucher signed by `contracts::bandwidth` is redeemed for its increase,
//! and one the Rust check refuses (forged, stale, over budget) is refused on chain too.

use alloy::primitives::{Address, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use contracts::bandwidth::{VoucherDomain, VoucherError};
use contracts::{Anvil, BandwidthChannels, TestToken};

fn wallet(anvil: &Anvil, i: usize) -> (PrivateKeySigner, DynProvider) {
    let signer: PrivateKeySigner = anvil.keys()[i].parse().expect("dev key");
    let url = anvil.endpoint().parse().expect("url");
    (signer.clone(), ProviderBuilder::new().wallet(signer).connect_http(url).erased())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_signed_vouchers_redeem_on_chain_and_bad_ones_do_not() -> anyhow::Result<()> {
    let anvil = Anvil::start()?;
    let (payer_key, payer) = wallet(&anvil, 1);
    let (provider_key, provider) = wallet(&anvil, 2);
    let token = TestToken::deploy(payer.clone(), "Vellum test token".to_owned(), "VTT".to_owned()).await?;
    let channels = BandwidthChannels::deploy(payer.clone(), *token.address(), 600).await?;
    token.mint(payer_key.address(), U256::from(1_000_000u64)).send().await?.get_receipt().await?;
    token.approve(*channels.address(), U256::MAX).send().await?.get_receipt().await?;
    let opened = channels.open(provider_key.address(), U256::from(1000u64)).send().await?.get_receipt().await?;
    anyhow::ensure!(opened.status(), "open reverted");
    let id = opened
        .inner
        .logs()
        .iter()
        .find_map(|l| l.log_decode::<BandwidthChannels::ChannelOpened>().ok())
        .map(|e| e.inner.data.id)
        .ok_or_else(|| anyhow::anyhow!("no ChannelOpened"))?;

    let domain = VoucherDomain { chain_id: payer.get_chain_id().await?, contract: *channels.address() };
    let predicted = contracts::bandwidth::channel_id(
        domain.chain_id,
        *channels.address(),
        payer_key.address(),
        provider_key.address(),
        U256::ZERO,
    );
    anyhow::ensure!(predicted == id, "the channel id is predicted as the contract makes it");
    let amount = U256::from(400u64);
    let on_chain = channels.voucherDigest(id, amount).call().await?;
    anyhow::ensure!(on_chain == domain.digest(id, amount), "the digest is the contract's");

    let sig = domain.sign(&payer_key, id, amount)?;
    let deposit = U256::from(1000u64);
    domain.check(id, amount, &sig, payer_key.address(), deposit, U256::ZERO)?;
    let by_provider = BandwidthChannels::new(*channels.address(), provider.clone());
    let r = by_provider.redeem(id, amount, Bytes::from(sig.to_vec())).send().await?.get_receipt().await?;
    anyhow::ensure!(r.status(), "redeem reverted");
    anyhow::ensure!(token.balanceOf(provider_key.address()).call().await? == amount, "paid 400");

    // Refused by both sides: stale, over budget, forged.
    let refused_on_chain = |cumulative: U256, sig: [u8; 65]| {
        let by_provider = by_provider.clone();
        async move { by_provider.redeem(id, cumulative, Bytes::from(sig.to_vec())).call().await.is_err() }
    };
    anyhow::ensure!(
        matches!(
            domain.check(id, amount, &sig, payer_key.address(), deposit, amount),
            Err(VoucherError::NotIncreasing { .. })
        ) && refused_on_chain(amount, sig).await,
        "a replayed voucher"
    );
    let over = U256::from(1001u64);
    let over_sig = domain.sign(&payer_key, id, over)?;
    anyhow::ensure!(
        matches!(
            domain.check(id, over, &over_sig, payer_key.address(), deposit, amount),
            Err(VoucherError::OverBudget { .. })
        ) && refused_on_chain(over, over_sig).await,
        "an over-budget voucher"
    );
    let forger = PrivateKeySigner::random();
    let forged = domain.sign(&forger, id, U256::from(900u64))?;
    anyhow::ensure!(
        domain.check(id, U256::from(900u64), &forged, payer_key.address(), deposit, amount)
            == Err(VoucherError::WrongSigner(forger.address()))
            && refused_on_chain(U256::from(900u64), forged).await,
        "a forged voucher"
    );
    let elsewhere = VoucherDomain { contract: Address::repeat_byte(9), ..domain };
    let misplaced = elsewhere.sign(&payer_key, id, U256::from(900u64))?;
    anyhow::ensure!(refused_on_chain(U256::from(900u64), misplaced).await, "a voucher for another deployment");
    Ok(())
}
