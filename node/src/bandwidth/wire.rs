//! Paid bandwidth's messages on the block exchange ([`crate::net::exchange`]) and their
//! conversion to chain types: amounts travel as big-endian bytes of at most 32, ids as 32 bytes,
//! addresses as 20; anything else is malformed and refused.

use alloy::primitives::{Address, B256, U256};
use contracts::bandwidth::VoucherDomain;

pub use crate::net::exchange::{PaymentTerms, Voucher as WireVoucher};

use super::ledger::Terms;

/// An amount from its wire form.
pub(crate) fn amount(bytes: &[u8]) -> Option<U256> {
    if bytes.len() > 32 {
        return None;
    }
    Some(U256::from_be_slice(bytes))
}

/// An amount's wire form (no leading zero bytes).
pub(crate) fn amount_bytes(value: U256) -> Vec<u8> {
    let full = value.to_be_bytes::<32>();
    let first = full.iter().position(|b| *b != 0).unwrap_or(32);
    full[first..].to_vec()
}

impl WireVoucher {
    /// A voucher for `cumulative` on `channel`.
    pub fn new(channel: B256, cumulative: U256, signature: &[u8]) -> Self {
        Self { channel: channel.to_vec(), cumulative: amount_bytes(cumulative), signature: signature.to_vec() }
    }

    /// Its channel and amount, if well formed.
    pub fn parts(&self) -> Option<(B256, U256)> {
        let channel = B256::try_from(self.channel.as_slice()).ok()?;
        Some((channel, amount(&self.cumulative)?))
    }
}

/// Terms as a payer reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferedTerms {
    /// The price, allowance and credit.
    pub terms: Terms,
    /// Where the provider takes vouchers.
    pub domain: VoucherDomain,
    /// The provider's wallet.
    pub provider: Address,
}

impl PaymentTerms {
    /// The terms of a provider whose wallet is `provider`, with what the request lacked:
    /// `needed` more than it holds from the peer in all, and the voucher `held` on `channel`.
    pub fn new(
        terms: &Terms,
        domain: VoucherDomain,
        provider: Address,
        needed: U256,
        (held, channel): (U256, Option<B256>),
        refused: Option<String>,
    ) -> Self {
        Self {
            channel: channel.map(|c| c.to_vec()).unwrap_or_default(),
            price_per_byte: amount_bytes(terms.price_per_byte),
            free_bytes: terms.free_bytes,
            credit: amount_bytes(terms.credit),
            chain_id: domain.chain_id,
            contract: domain.contract.to_vec(),
            provider: provider.to_vec(),
            needed: if refused.is_some() { Vec::new() } else { amount_bytes(needed) },
            held: amount_bytes(held),
            refused,
        }
    }

    /// The channel the provider has the peer paying through, if any (and well formed).
    pub fn bound_channel(&self) -> Option<B256> {
        B256::try_from(self.channel.as_slice()).ok()
    }

    /// The terms, if well formed.
    pub fn offered(&self) -> Option<OfferedTerms> {
        let terms = Terms {
            price_per_byte: amount(&self.price_per_byte)?,
            free_bytes: self.free_bytes,
            credit: amount(&self.credit)?,
        };
        let contract = Address::try_from(self.contract.as_slice()).ok()?;
        let provider = Address::try_from(self.provider.as_slice()).ok()?;
        Some(OfferedTerms { terms, domain: VoucherDomain { chain_id: self.chain_id, contract }, provider })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_trip_and_oversized_ones_are_refused() {
        for v in [U256::ZERO, U256::from(1u64), U256::from(256u64), U256::MAX] {
            assert_eq!(amount(&amount_bytes(v)), Some(v));
        }
        assert_eq!(amount_bytes(U256::from(256u64)), vec![1, 0]);
        assert_eq!(amount(&[1u8; 33]), None);
        let v = WireVoucher { channel: vec![1; 31], cumulative: vec![1], signature: vec![] };
        assert_eq!(v.parts(), None, "a short channel id");
    }
}
