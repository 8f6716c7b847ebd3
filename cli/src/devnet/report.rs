//! The devnet's summary: gas used per kind of call, from every transaction the chain mined (the
//! marketplace's and the token's calls named by their selectors, contract creations as deploys),
//! and the table it prints.

use std::collections::BTreeMap;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, FixedBytes};
use alloy::providers::{DynProvider, Provider};
use alloy::sol_types::SolCall;
use contracts::{Marketplace, TestToken};

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
        (Marketplace::settleAccusationCall::SELECTOR.into(), "settleAccusation"),
        (Marketplace::anchorPeriodsCall::SELECTOR.into(), "anchorPeriods"),
        (Marketplace::freeSlotCall::SELECTOR.into(), "freeSlot"),
        (Marketplace::withdrawFundsCall::SELECTOR.into(), "withdrawFunds"),
        (TestToken::approveCall::SELECTOR.into(), "approve (token)"),
        (TestToken::mintCall::SELECTOR.into(), "mint (token)"),
    ]
}

/// Gas per call kind over blocks `0..=head`.
pub(super) async fn gas_by_call(provider: &DynProvider) -> anyhow::Result<BTreeMap<&'static str, GasLine>> {
    let names = call_names();
    let head = provider.get_block_number().await?;
    let mut out: BTreeMap<&'static str, GasLine> = BTreeMap::new();
    for n in 0..=head {
        let Some(block) = provider.get_block_by_number(BlockNumberOrTag::Number(n)).full().await? else { continue };
        if block.transactions.is_empty() {
            continue;
        }
        let receipts = provider.get_block_receipts(n.into()).await?.unwrap_or_default();
        for (tx, receipt) in block.transactions.txns().zip(receipts) {
            use alloy::consensus::Transaction as _;
            let input = tx.input();
            let kind = match tx.to() {
                None => "deploy",
                Some(_) if input.len() < 4 => "other",
                Some(_) => {
                    let selector = FixedBytes::<4>::from_slice(&input[..4]);
                    names.iter().find(|(s, _)| *s == selector).map_or("other", |(_, name)| *name)
                }
            };
            let line = out.entry(kind).or_default();
            line.calls += 1;
            line.total += receipt.gas_used;
            line.used.push(receipt.gas_used);
        }
    }
    Ok(out)
}

/// The gas table, one line per call kind, in the order calls happen in a request's life.
pub(super) fn gas_table(gas: &BTreeMap<&'static str, GasLine>) -> String {
    const ORDER: [&str; 13] = [
        "deploy",
        "mint (token)",
        "approve (token)",
        "requestStorage",
        "reserveSlot",
        "fillSlot",
        "anchorPeriods",
        "submitProof",
        "accuseMissingProof",
        "settleAccusation",
        "freeSlot",
        "withdrawFunds",
        "other",
    ];
    let mut text = format!("  {:<20} {:>6} {:>13} {:>12}\n", "call", "calls", "gas (median)", "gas (total)");
    for name in ORDER {
        if let Some(line) = gas.get(name) {
            text.push_str(&format!(
                "  {:<20} {:>6} {:>13} {:>12}\n",
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
