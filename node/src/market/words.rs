//! Conversions between the node's values and the contract's words: field elements as bytes32
//! (big-endian), ids as 0x hex, token amounts as decimal strings (the REST API's convention).

use alloy::primitives::B256;
use circuits::Fr;

/// A field element as the contract's big-endian `bytes32`.
pub(super) fn fr_word(x: &Fr) -> B256 {
    let mut be = circuits::fr_to_bytes(x);
    be.reverse();
    B256::from(be)
}

/// An id as the REST API writes it: 0x and 64 hex digits.
pub(super) fn id_hex(id: &B256) -> String {
    format!("{id:#x}")
}

/// Parses an id written with or without 0x (64 hex digits).
pub(super) fn parse_id(text: &str) -> Option<B256> {
    let hex = text.strip_prefix("0x").unwrap_or(text);
    if hex.len() != 64 {
        return None;
    }
    hex.parse::<B256>().ok()
}

/// Parses a non-negative decimal amount that fits in 128 bits.
pub(super) fn parse_amount(text: &str) -> Option<u128> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_amounts_round_trip() {
        let id = B256::from([0xab; 32]);
        assert_eq!(parse_id(&id_hex(&id)), Some(id));
        assert_eq!(parse_id(&id_hex(&id)[2..]), Some(id));
        assert_eq!(parse_id("0x12"), None);
        assert_eq!(parse_id(&"zz".repeat(32)), None);
        assert_eq!(parse_amount("120"), Some(120));
        for bad in ["", "-1", "1.5", "0x10", "340282366920938463463374607431768211456"] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
    }

    #[test]
    fn field_elements_are_big_endian_words() {
        let w = fr_word(&Fr::from(258u64));
        assert_eq!(w[31], 2);
        assert_eq!(w[30], 1);
        assert!(w[..30].iter().all(|b| *b == 0));
    }
}
