//! The devnet's summary: the chain read once to its head (every block's transactions, receipts,
//! marketplace logs and hashes), gas used per kind of call from every transaction the chain
//! mined (the marketplace's and the token's calls named by their selectors, contract creations as
//! deploys), and the table it prints. The proof economics read the same record (`economics.rs`).

use std::collections::BTreeMap;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256, Bytes, FixedBytes};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Log;
use alloy::sol_types::SolCall;
use contracts::{BandwidthChannels, Marketplace, TestToken};

/// One mined transaction with what its receipt says.
#[derive(Debug, Clone)]
pub(super) struct Mined {
    /// Its block.
    pub(super) block: u64,
    /// Its index in the block.
    pub(super) index: u64,
    /// Its block's timestamp.
    pub(super) time: u64,
    /// Its sender.
    pub(super) from: Address,
    /// Its recipient (`None`: a contract creation).
    pub(super) to: Option<Address>,
    /// Its calldata.
    pub(super) input: Bytes,
    /// Gas it used.
    pub(super) gas: u64,
    /// Whether it succeeded.
    pub(super) ok: bool,
    /// Its receipt's logs, every contract's, in order.
    pub(super) logs: Vec<Log>,
}

/// The chain from block 0 to its head, as the summary reads it.
#[derive(Debug, Clone, Default)]
pub(super) struct ChainRecord {
    /// Every mined transaction, in chain order.
    pub(super) txs: Vec<Mined>,
    /// Every block's hash, by number.
    pub(super) hashes: BTreeMap<u64, B256>,
    /// The head block's timestamp.
    pub(super) end: u64,
}

/// Reads blocks `0..=head` with their transactions and receipts.
pub(super) async fn read_chain(provider: &DynProvider) -> anyhow::Result<ChainRecord> {
    use alloy::consensus::Transaction as _;
    use alloy::network::TransactionResponse as _;
    let head = provider.get_block_number().await?;
    let mut record = ChainRecord::default();
    for n in 0..=head {
        let Some(block) = provider.get_block_by_number(BlockNumberOrTag::Number(n)).full().await? else { continue };
        let time = block.header.inner.timestamp;
        record.hashes.insert(n, block.header.hash);
        record.end = record.end.max(time);
        if block.transactions.is_empty() {
            continue;
        }
        let receipts = provider.get_block_receipts(n.into()).await?.unwrap_or_default();
        for (index, (tx, receipt)) in (0u64..).zip(block.transactions.txns().zip(receipts)) {
            record.txs.push(Mined {
                block: n,
                index,
                time,
                from: tx.from(),
                to: tx.to(),
                input: tx.input().clone(),
                gas: receipt.gas_used,
                ok: receipt.status(),
                logs: receipt.logs().to_vec(),
            });
        }
    }
    Ok(record)
}

/// Gas of one kind of call.
#[derive(Debug, Default, Clone)]
pub(super) struct GasLine {
    pub(super) calls: u64,
    pub(super) total: u64,
    pub(super) used: Vec<u64>,
}

impl GasLine {
    /// The median gas of one call.
    pub(super) fn median(&self) -> u64 {
        let mut v = self.used.clone();
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0)
    }
}

fn call_names() -> Vec<(FixedBytes<4>, &'static str)> {
    vec![
        (Marketplace::requestStorageCall::SELECTOR.into(), "requestStorage"),
        (Marketplace::reserveSlotCall::SELECTOR.into(), "reserveSlot"),
        (Marketplace::fillSlotCall::SELECTOR.into(), "fillSlot"),
        (Marketplace::submitProofCall::SELECTOR.into(), "submitProof"),
        (Marketplace::accuseMissingProofCall::SELECTOR.into(), "accuseMissingProof"),
        (Marketplace::defendProofCall::SELECTOR.into(), "defendProof"),
        (Marketplace::settleAccusationCall::SELECTOR.into(), "settleAccusation"),
        (Marketplace::anchorPeriodsCall::SELECTOR.into(), "anchorPeriods"),
        (Marketplace::freeSlotCall::SELECTOR.into(), "freeSlot"),
        (Marketplace::withdrawFundsCall::SELECTOR.into(), "withdrawFunds"),
        (Marketplace::claimEthCall::SELECTOR.into(), "claimEth"),
        (TestToken::approveCall::SELECTOR.into(), "approve (token)"),
        (TestToken::mintCall::SELECTOR.into(), "mint (token)"),
        (BandwidthChannels::openCall::SELECTOR.into(), "open (bandwidth)"),
        (BandwidthChannels::redeemCall::SELECTOR.into(), "redeem (bandwidth)"),
        (BandwidthChannels::requestCloseCall::SELECTOR.into(), "requestClose (bandwidth)"),
        (BandwidthChannels::reclaimCall::SELECTOR.into(), "reclaim (bandwidth)"),
    ]
}

/// Gas per call kind over every mined transaction.
pub(super) fn gas_by_call(record: &ChainRecord) -> BTreeMap<&'static str, GasLine> {
    let names = call_names();
    let mut out: BTreeMap<&'static str, GasLine> = BTreeMap::new();
    for tx in &record.txs {
        let kind = match (tx.to, tx.input.get(..4)) {
            (None, _) => "deploy",
            (Some(_), None) => "other",
            (Some(_), Some(selector)) => {
                let selector = FixedBytes::<4>::from_slice(selector);
                names.iter().find(|(s, _)| *s == selector).map_or("other", |(_, name)| *name)
            }
        };
        let line = out.entry(kind).or_default();
        line.calls = line.calls.saturating_add(1);
        line.total = line.total.saturating_add(tx.gas);
        line.used.push(tx.gas);
    }
    out
}

/// The gas table, one line per call kind, in the order calls happen in a request's life.
pub(super) fn gas_table(gas: &BTreeMap<&'static str, GasLine>) -> String {
    const ORDER: [&str; 19] = [
        "deploy",
        "mint (token)",
        "approve (token)",
        "requestStorage",
        "reserveSlot",
        "fillSlot",
        "anchorPeriods",
        "submitProof",
        "accuseMissingProof",
        "defendProof",
        "settleAccusation",
        "claimEth",
        "freeSlot",
        "withdrawFunds",
        "open (bandwidth)",
        "redeem (bandwidth)",
        "requestClose (bandwidth)",
        "reclaim (bandwidth)",
        "other",
    ];
    let mut text = format!("  {:<24} {:>6} {:>13} {:>12}\n", "call", "calls", "gas (median)", "gas (total)");
    for name in ORDER {
        if let Some(line) = gas.get(name) {
            text.push_str(&format!(
                "  {:<24} {:>6} {:>13} {:>12}\n",
                name,
                line.calls,
                thousands(line.median()),
                thousands(line.total)
            ));
        }
    }
    text
}

/// `1234567` as `1,234,567`.
pub(super) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An address as the timeline prints it.
pub(super) fn short(a: Address) -> String {
    let s = format!("{a:#x}");
    format!("{}…{}", &s[..6], &s[s.len() - 4..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(298_407), "298,407");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let line = GasLine { calls: 3, total: 6, used: vec![3, 1, 2] };
        assert_eq!(line.median(), 2);
        let line = GasLine { calls: 4, total: 10, used: vec![4, 1, 3, 2] };
        assert_eq!(line.median(), 3);
        assert_eq!(GasLine::default().median(), 0);
    }

    fn mined(to: Option<Address>, input: Vec<u8>, gas: u64) -> Mined {
        Mined {
            block: 1,
            index: 0,
            time: 1,
            from: Address::repeat_byte(1),
            to,
            input: input.into(),
            gas,
            ok: true,
            logs: vec![],
        }
    }

    #[test]
    fn calls_are_named_by_their_selectors() {
        let market = Some(Address::repeat_byte(0x4d));
        let id = B256::repeat_byte(2);
        let proof = [alloy::primitives::U256::from(1); 8];
        let period = alloy::primitives::U256::from(3);
        let record = ChainRecord {
            txs: vec![
                mined(None, vec![0x60, 0x80], 1_000_000),
                mined(market, Marketplace::defendProofCall { id, period, proof }.abi_encode(), 270_000),
                mined(market, Marketplace::defendProofCall { id, period, proof }.abi_encode(), 280_000),
                mined(market, Marketplace::claimEthCall {}.abi_encode(), 30_000),
                mined(market, vec![1, 2, 3], 21_000),
                mined(market, vec![9, 9, 9, 9], 22_000),
            ],
            ..ChainRecord::default()
        };
        let gas = gas_by_call(&record);
        let calls = |name: &str| gas.get(name).map(|line| (line.calls, line.total));
        assert_eq!(calls("deploy"), Some((1, 1_000_000)));
        assert_eq!(calls("defendProof"), Some((2, 550_000)));
        assert_eq!(calls("claimEth"), Some((1, 30_000)));
        assert_eq!(calls("other"), Some((2, 43_000)), "short calldata and an unknown selector");
        let table = gas_table(&gas);
        let defend = table.find("defendProof").unwrap_or(usize::MAX);
        let claim = table.find("claimEth").unwrap_or(0);
        assert!(defend < claim, "{table}");
    }

    #[test]
    fn table_lists_calls_in_life_order() {
        let mut gas = BTreeMap::new();
        gas.insert("submitProof", GasLine { calls: 2, total: 400, used: vec![200, 200] });
        gas.insert("fillSlot", GasLine { calls: 1, total: 300_000, used: vec![300_000] });
        let table = gas_table(&gas);
        let fill = table.find("fillSlot").unwrap_or(usize::MAX);
        let proof = table.find("submitProof").unwrap_or(0);
        assert!(fill < proof, "{table}");
        assert!(table.contains("300,000"), "{table}");
    }
}
