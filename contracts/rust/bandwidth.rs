//! Bandwidth vouchers (issue 19): what a downloader signs to pay a provider on a
//! `BandwidthChannels` channel, and what the provider checks before it serves past its free
//! allowance. A voucher is the EIP-712 struct `Voucher(bytes32 channel, uint256 cumulative)`
//! in the domain `("Vellum bandwidth", "1", chain id, channels contract)`: the total the payer
//! owes on that channel so far. The contract pays the increase over what was redeemed, so only
//! the highest voucher matters and none is paid twice. Signatures are 65 bytes (r, s, v with
//! v = 27 or 28) with a low s, as the contract requires.

use alloy::primitives::{Address, B256, Signature, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct};

alloy::sol! {
    /// The signed struct, as the contract hashes it.
    struct Voucher {
        bytes32 channel;
        uint256 cumulative;
    }
}

/// Bytes of a voucher's signature.
pub const SIGNATURE_BYTES: usize = 65;

/// Why a voucher is refused off the chain (the contract refuses the same).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoucherError {
    /// Not 65 bytes, a high s, a bad v, or no signer recovered.
    #[error("malformed voucher signature")]
    Malformed,
    /// Signed by someone other than the channel's payer.
    #[error("voucher signed by {0}, not the channel's payer")]
    WrongSigner(Address),
    /// At or below what the provider already holds.
    #[error("voucher for {cumulative} does not exceed the {held} already held")]
    NotIncreasing {
        /// The voucher's amount.
        cumulative: U256,
        /// The highest amount held before.
        held: U256,
    },
    /// Above the channel's deposit.
    #[error("voucher for {cumulative} exceeds the channel's deposit of {deposit}")]
    OverBudget {
        /// The voucher's amount.
        cumulative: U256,
        /// The deposit.
        deposit: U256,
    },
}

/// The id the contract gives the `count`-th channel (from 0) `payer` opens to `provider`:
/// `keccak256(abi.encode(chainid, contract, payer, provider, count))`.
pub fn channel_id(chain_id: u64, contract: Address, payer: Address, provider: Address, count: U256) -> B256 {
    use alloy::sol_types::SolValue;
    alloy::primitives::keccak256((U256::from(chain_id), contract, payer, provider, count).abi_encode())
}

/// Where vouchers are valid: one channels contract on one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoucherDomain {
    /// The chain id.
    pub chain_id: u64,
    /// The `BandwidthChannels` contract.
    pub contract: Address,
}

impl VoucherDomain {
    fn eip712(&self) -> Eip712Domain {
        alloy::sol_types::eip712_domain! {
            name: "Vellum bandwidth",
            version: "1",
            chain_id: self.chain_id,
            verifying_contract: self.contract,
        }
    }

    /// The digest the payer signs for `cumulative` on `channel` (the contract's `voucherDigest`).
    pub fn digest(&self, channel: B256, cumulative: U256) -> B256 {
        Voucher { channel, cumulative }.eip712_signing_hash(&self.eip712())
    }

    /// Signs a voucher; the signature's wire form (r ‖ s ‖ v).
    pub fn sign(
        &self,
        signer: &PrivateKeySigner,
        channel: B256,
        cumulative: U256,
    ) -> Result<[u8; SIGNATURE_BYTES], alloy::signers::Error> {
        let sig = signer.sign_hash_sync(&self.digest(channel, cumulative))?;
        Ok(sig.as_bytes())
    }

    /// The address that signed a voucher, if its signature is well formed (65 bytes, low s,
    /// v of 27 or 28).
    pub fn signer(&self, channel: B256, cumulative: U256, signature: &[u8]) -> Result<Address, VoucherError> {
        if signature.len() != SIGNATURE_BYTES || !matches!(signature[64], 27 | 28) {
            return Err(VoucherError::Malformed);
        }
        let sig = Signature::try_from(signature).map_err(|_| VoucherError::Malformed)?;
        if sig.normalize_s().is_some() {
            return Err(VoucherError::Malformed); // a high s: the malleable twin
        }
        sig.recover_address_from_prehash(&self.digest(channel, cumulative)).map_err(|_| VoucherError::Malformed)
    }

    /// Checks a voucher as the contract would redeem it, given the channel's payer, its deposit
    /// and the highest amount the provider already holds.
    pub fn check(
        &self,
        channel: B256,
        cumulative: U256,
        signature: &[u8],
        payer: Address,
        deposit: U256,
        held: U256,
    ) -> Result<(), VoucherError> {
        if cumulative <= held {
            return Err(VoucherError::NotIncreasing { cumulative, held });
        }
        if cumulative > deposit {
            return Err(VoucherError::OverBudget { cumulative, deposit });
        }
        let who = self.signer(channel, cumulative, signature)?;
        if who != payer {
            return Err(VoucherError::WrongSigner(who));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain() -> VoucherDomain {
        VoucherDomain { chain_id: 31337, contract: Address::repeat_byte(0x42) }
    }

    #[test]
    fn signed_vouchers_check_and_others_do_not() {
        let payer = PrivateKeySigner::random();
        let other = PrivateKeySigner::random();
        let channel = B256::repeat_byte(7);
        let d = domain();
        let amount = U256::from(500u64);
        let sig = d.sign(&payer, channel, amount).expect("signs");
        assert_eq!(d.signer(channel, amount, &sig), Ok(payer.address()));
        let deposit = U256::from(1000u64);
        assert_eq!(d.check(channel, amount, &sig, payer.address(), deposit, U256::ZERO), Ok(()));
        // Another amount, channel, contract or chain: another digest, another signer.
        assert_ne!(d.signer(channel, U256::from(501u64), &sig), Ok(payer.address()));
        assert_ne!(d.signer(B256::repeat_byte(8), amount, &sig), Ok(payer.address()));
        let moved = VoucherDomain { contract: Address::repeat_byte(0x43), ..d };
        assert_ne!(moved.signer(channel, amount, &sig), Ok(payer.address()));
        let forked = VoucherDomain { chain_id: 1, ..d };
        assert_ne!(forked.signer(channel, amount, &sig), Ok(payer.address()));
        // Stale, over budget, or by someone else.
        assert!(matches!(
            d.check(channel, amount, &sig, payer.address(), deposit, amount),
            Err(VoucherError::NotIncreasing { .. })
        ));
        assert!(matches!(
            d.check(channel, amount, &sig, payer.address(), U256::from(499u64), U256::ZERO),
            Err(VoucherError::OverBudget { .. })
        ));
        let forged = d.sign(&other, channel, amount).expect("signs");
        assert_eq!(
            d.check(channel, amount, &forged, payer.address(), deposit, U256::ZERO),
            Err(VoucherError::WrongSigner(other.address()))
        );
    }

    #[test]
    fn malformed_signatures_are_refused() {
        let payer = PrivateKeySigner::random();
        let d = domain();
        let channel = B256::repeat_byte(7);
        let amount = U256::from(5u64);
        let sig = d.sign(&payer, channel, amount).expect("signs");
        assert_eq!(d.signer(channel, amount, &sig[..64]), Err(VoucherError::Malformed));
        let mut bad_v = sig;
        bad_v[64] = 29;
        assert_eq!(d.signer(channel, amount, &bad_v), Err(VoucherError::Malformed));
        // The malleable twin: s' = n − s, v flipped.
        let order: U256 =
            "0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141".parse().expect("the order");
        let s = U256::from_be_slice(&sig[32..64]);
        let mut twin = sig;
        twin[32..64].copy_from_slice(&(order - s).to_be_bytes::<32>());
        twin[64] = if sig[64] == 27 { 28 } else { 27 };
        assert_eq!(d.signer(channel, amount, &twin), Err(VoucherError::Malformed));
    }
}
