//! The field BN254 Fr as bytes: the canonical 32-byte little-endian encoding, and a compile-time
//! parser for the big-endian hex strings in which the Poseidon2 constants are written.

use ark_bn254::Fr;
use ark_ff::{BigInt, PrimeField};

/// Encodes `x` as 32 bytes, little-endian, canonical (the integer in `[0, p)`).
pub fn fr_to_bytes(x: &Fr) -> [u8; 32] {
    let limbs = x.into_bigint().0;
    let mut out = [0u8; 32];
    for (chunk, limb) in out.chunks_exact_mut(8).zip(limbs) {
        chunk.copy_from_slice(&limb.to_le_bytes());
    }
    out
}

/// Decodes 32 little-endian bytes; `None` unless they encode an integer below the modulus (so
/// every element has exactly one accepted encoding).
pub fn fr_from_bytes(bytes: &[u8; 32]) -> Option<Fr> {
    let mut limbs = [0u64; 4];
    for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *limb = u64::from_le_bytes(word);
    }
    Fr::from_bigint(BigInt(limbs))
}

/// Reduces 32 little-endian bytes modulo p (for entropy such as a block hash, where any 32 bytes
/// must map to a field element).
pub fn fr_from_bytes_mod_order(bytes: &[u8; 32]) -> Fr {
    Fr::from_le_bytes_mod_order(bytes)
}

/// Parses `"0x"` followed by exactly 64 hex digits (big-endian) into a field element at compile
/// time. Only used on the constants written in this crate: a malformed string or a value not below
/// the modulus stops the build.
pub(crate) const fn fr_from_hex(s: &str) -> Fr {
    let b = s.as_bytes();
    assert!(b.len() == 66 && b[0] == b'0' && b[1] == b'x', "constant must be 0x + 64 hex digits");
    let mut limbs = [0u64; 4];
    let mut i = 0;
    while i < 64 {
        let c = b[2 + i];
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("constant has a non-hex digit"),
        };
        // Digit i (from the most significant end) lands in bits 4*(63-i) .. 4*(63-i)+3.
        let bit = 4 * (63 - i);
        limbs[bit / 64] |= (v as u64) << (bit % 64);
        i += 1;
    }
    let p = Fr::MODULUS.0;
    let mut k = 4;
    let mut below = false;
    while k > 0 {
        k -= 1;
        if limbs[k] != p[k] {
            below = limbs[k] < p[k];
            break;
        }
    }
    assert!(below, "constant is not below the modulus");
    Fr::new(BigInt(limbs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{One, Zero};
    use proptest::prelude::*;

    #[test]
    fn hex_parser_matches_small_integers() {
        assert_eq!(fr_from_hex("0x0000000000000000000000000000000000000000000000000000000000000000"), Fr::zero());
        assert_eq!(fr_from_hex("0x0000000000000000000000000000000000000000000000000000000000000001"), Fr::one());
        assert_eq!(
            fr_from_hex("0x00000000000000000000000000000000000000000000000100000000000000ff"),
            Fr::from(u64::MAX) + Fr::from(256u64)
        );
        // p - 1
        assert_eq!(fr_from_hex("0x30644e72e131a029b85045b68181585d2833e84879b9709143e1f593f0000000"), -Fr::one());
    }

    #[test]
    fn byte_encoding_is_little_endian() {
        let b = fr_to_bytes(&Fr::from(0x0102u64));
        assert_eq!(b[0], 2);
        assert_eq!(b[1], 1);
        assert!(b[2..].iter().all(|&x| x == 0));
        assert_eq!(fr_to_bytes(&-Fr::one())[31], 0x30);
    }

    #[test]
    fn non_canonical_encodings_are_rejected() {
        // p itself, p + 1 and 2^256 - 1 are not canonical.
        let mut p = [0u8; 32];
        for (chunk, limb) in p.chunks_exact_mut(8).zip(Fr::MODULUS.0) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        assert_eq!(fr_from_bytes(&p), None);
        let mut p1 = p;
        p1[0] += 1;
        assert_eq!(fr_from_bytes(&p1), None);
        assert_eq!(fr_from_bytes(&[0xff; 32]), None);
        // p - 1 is.
        let mut pm1 = p;
        pm1[0] -= 1;
        assert_eq!(fr_from_bytes(&pm1), Some(-Fr::one()));
        assert_eq!(fr_from_bytes_mod_order(&p), Fr::zero());
        assert_eq!(fr_from_bytes_mod_order(&p1), Fr::one());
    }

    proptest! {
        #[test]
        fn bytes_round_trip(limbs in any::<[u64; 4]>()) {
            let x = Fr::from_bigint(BigInt(limbs)).unwrap_or_else(|| Fr::from(limbs[0]));
            prop_assert_eq!(fr_from_bytes(&fr_to_bytes(&x)), Some(x));
            prop_assert_eq!(fr_from_bytes_mod_order(&fr_to_bytes(&x)), x);
        }
    }
}
