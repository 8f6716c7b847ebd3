//! Bytes to field elements: 31 bytes per element, little-endian, with `10*` byte padding.
//!
//! The input gets one 0x01 byte appended, then the fewest zero bytes that make its length a multiple
//! of 31; each 31-byte chunk, read as a little-endian integer (below 2^248 < p), is one element.
//! So `n` bytes always give `n / 31 + 1` elements (the empty input gives the single element 1, a
//! 2048-byte cell gives 67), the last element is never zero, and two different byte strings never
//! give the same element sequence. This is Codex's convention.

use crate::arith::Fe;
use ark_bn254::Fr;

/// Bytes carried by one field element.
pub const BYTES_PER_ELEMENT: usize = 31;

/// The number of elements that `byte_len` bytes pack into: `byte_len / 31 + 1`.
pub const fn packed_len(byte_len: usize) -> usize {
    byte_len / BYTES_PER_ELEMENT + 1
}

/// Packs `bytes` into field elements (see the module documentation).
pub fn pack_bytes(bytes: &[u8]) -> Vec<Fr> {
    let mut out = Vec::with_capacity(packed_len(bytes.len()));
    for_each_packed(bytes, |e| out.push(e.to_fr()));
    out
}

/// Calls `f` on each packed element in order, without allocating.
#[inline]
pub(crate) fn for_each_packed(bytes: &[u8], mut f: impl FnMut(Fe)) {
    let mut chunks = bytes.chunks_exact(BYTES_PER_ELEMENT);
    for chunk in &mut chunks {
        f(chunk_to_element(chunk));
    }
    let rest = chunks.remainder();
    let mut last = [0u8; BYTES_PER_ELEMENT];
    last[..rest.len()].copy_from_slice(rest);
    last[rest.len()] = 0x01;
    f(chunk_to_element(&last));
}

/// One chunk of at most 31 bytes, little-endian, in Montgomery form.
#[inline(always)]
fn chunk_to_element(chunk: &[u8]) -> Fe {
    let mut buf = [0u8; 32];
    buf[..chunk.len()].copy_from_slice(chunk);
    let mut limbs = [0u64; 4];
    for (limb, word) in limbs.iter_mut().zip(buf.chunks_exact(8)) {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        *limb = u64::from_le_bytes(w);
    }
    Fe::from_canonical_limbs(limbs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ark_ff::{Field, One, PrimeField, Zero};
    use proptest::prelude::*;

    /// The packing written the obvious way with ark-ff, as an oracle.
    fn pack_oracle(bytes: &[u8]) -> Vec<Fr> {
        let mut padded = bytes.to_vec();
        padded.push(1);
        while !padded.len().is_multiple_of(31) {
            padded.push(0);
        }
        padded.chunks(31).map(Fr::from_le_bytes_mod_order).collect()
    }

    #[test]
    fn lengths_and_edges() {
        for (n, elems) in [(0, 1), (1, 1), (30, 1), (31, 2), (32, 2), (61, 2), (62, 3), (2048, 67), (65536, 2115)] {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 7 + 3) as u8).collect();
            let packed = pack_bytes(&bytes);
            assert_eq!(packed.len(), elems, "{n} bytes");
            assert_eq!(packed_len(n), elems);
            assert_eq!(packed, pack_oracle(&bytes), "{n} bytes");
            assert!(!packed[elems - 1].is_zero());
        }
        assert_eq!(pack_bytes(&[]), vec![Fr::one()]);
        // 30 bytes: the marker lands in the last byte of the only chunk, bit 240.
        let p30 = pack_bytes(&[0u8; 30]);
        assert_eq!(p30, vec![Fr::from(2u64).pow([240u64])]);
        // 31 bytes: a full chunk, then a chunk holding only the marker.
        let p31 = pack_bytes(&[0xffu8; 31]);
        assert_eq!(p31[1], Fr::one());
        assert_eq!(p31[0], Fr::from(2u64).pow([248u64]) - Fr::one());
        // 32 bytes: the 32nd byte and the marker share the second element.
        assert_eq!(pack_bytes(&[5u8; 32])[1], Fr::from(5u64 + 256));
    }

    #[test]
    fn trailing_zeros_change_the_packing() {
        let a = pack_bytes(&[7u8; 30]);
        let mut b_in = vec![7u8; 30];
        b_in.push(0);
        assert_ne!(a, pack_bytes(&b_in));
        assert_ne!(pack_bytes(&[]), pack_bytes(&[0]));
        assert_ne!(pack_bytes(&[0u8; 31]), pack_bytes(&[0u8; 30]));
    }

    proptest! {
        #[test]
        fn matches_oracle(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(pack_bytes(&bytes), pack_oracle(&bytes));
        }
    }
}
