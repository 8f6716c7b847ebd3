use proptest::prelude::*;

use super::*;

use crate::test_support::pseudo_random_bytes as bytes;

fn encode_to_vecs(layout: &SlotLayout, data: &[u8]) -> Vec<Vec<u8>> {
    let mut slots = vec![Vec::new(); layout.slot_count()];
    let stats = encode(layout, data, &mut slots).expect("encode");
    assert_eq!(stats.rows, layout.rows());
    for s in &slots {
        assert_eq!(s.len() as u64, layout.slot_size());
    }
    slots
}

fn decode_from(layout: &SlotLayout, slots: &[Option<Vec<u8>>]) -> Result<Vec<u8>, ErasureError> {
    let mut out = Vec::new();
    decode(layout, slots, &mut out, &|_, _, _| true)?;
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Any M slots may go; M + 1 gone is a clear error, never a panic.
    #[test]
    fn any_m_slots_may_be_lost(
        size in 0usize..(10 << 20),
        k in 1usize..=32,
        m in 1usize..=32,
        seed in any::<u64>(),
    ) {
        let layout = SlotLayout::new(k, m, DEFAULT_CELL_SIZE as usize, size as u64).expect("layout");
        let data = bytes(size, seed);
        let slots = encode_to_vecs(&layout, &data);

        // Drop M slots chosen by the seed (sometimes all parity, sometimes data).
        let mut order: Vec<usize> = (0..k + m).collect();
        let mut s = seed;
        for i in (1..order.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (s >> 33) as usize % (i + 1));
        }
        let mut present: Vec<Option<Vec<u8>>> = slots.into_iter().map(Some).collect();
        for &gone in &order[..m] {
            present[gone] = None;
        }
        prop_assert!(decode_from(&layout, &present).expect("decode") == data);

        present[order[m]] = None;
        let err = decode_from(&layout, &present).expect_err("M + 1 slots lost");
        prop_assert!(matches!(err, ErasureError::NotEnoughSlots { .. }), "{err}");
    }
}

#[test]
fn cells_land_in_their_interleaved_slots() {
    let layout = SlotLayout::new(3, 2, 4, 40).expect("layout");
    let data: Vec<u8> = (0..40).collect();
    let slots = encode_to_vecs(&layout, &data);
    assert_eq!(layout.rows(), 4); // 10 cells, padded to 12
    for cell in 0..10u64 {
        let (slot, row) = layout.locate(cell);
        let at = row as usize * 4;
        assert_eq!(&slots[slot][at..at + 4], &data[cell as usize * 4..cell as usize * 4 + 4]);
    }
    // Padding cells are zeros.
    assert_eq!(&slots[1][12..16], &[0, 0, 0, 0]);
    assert_eq!(&slots[2][12..16], &[0, 0, 0, 0]);
}

#[test]
fn a_damaged_cell_is_rebuilt() {
    let layout = SlotLayout::new(4, 2, 2048, 100_000).expect("layout");
    let data = bytes(100_000, 7);
    let slots = encode_to_vecs(&layout, &data);
    let sums: Vec<Vec<blake3::Hash>> = slots.iter().map(|s| s.chunks(2048).map(blake3::hash).collect()).collect();
    let mut present: Vec<Option<Vec<u8>>> = slots.into_iter().map(Some).collect();
    if let Some(slot) = present[2].as_mut() {
        slot[5 * 2048 + 17] ^= 0x40; // one byte of row 5 in data slot 2
    }
    let mut out = Vec::new();
    let stats = decode(&layout, &present, &mut out, &|slot, row, cell| sums[slot][row as usize] == blake3::hash(cell))
        .expect("decode");
    assert!(out == data);
    assert_eq!((stats.cells_damaged, stats.cells_rebuilt, stats.rows_repaired), (1, 1, 1));
}

#[test]
fn bad_parameters_are_refused() {
    assert!(SlotLayout::new(0, 1, 2048, 1).is_err());
    assert!(SlotLayout::new(1, 0, 2048, 1).is_err());
    assert!(SlotLayout::new(4, 4, 2047, 1).is_err());
    assert!(SlotLayout::new(40_000, 40_000, 2048, 1).is_err());
    let layout = SlotLayout::new(2, 1, 2048, 10_000).expect("layout");
    let mut slots = vec![Vec::new(); 3];
    assert!(matches!(encode(&layout, &[0u8; 100][..], &mut slots), Err(ErasureError::Truncated { .. })));
}
