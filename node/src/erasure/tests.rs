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
    decode(layout, slots, &mut out, &trust_all)?;
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
    let stats = decode(&layout, &present, &mut out, &|slot, first, cells| {
        let cs = layout.cell_size;
        cells.chunks(cs).zip(first as usize..).map(|(cell, row)| sums[slot][row] == blake3::hash(cell)).collect()
    })
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

/// Per-row parity straight from the library: one call per row, the definition of the slot format.
fn parity_row_by_row(layout: &SlotLayout, data: &[u8]) -> Vec<Vec<u8>> {
    let (k, m, cs) = (layout.k, layout.m, layout.cell_size);
    let mut padded = data.to_vec();
    padded.resize(layout.rows() as usize * k * cs, 0);
    let mut encoder = reed_solomon_simd::ReedSolomonEncoder::new(k, m, cs).expect("encoder");
    let mut parity = vec![Vec::new(); m];
    for row in padded.chunks_exact(k * cs) {
        for cell in row.chunks_exact(cs) {
            encoder.add_original_shard(cell).expect("shard");
        }
        let result = encoder.encode().expect("encode");
        for (j, p) in parity.iter_mut().enumerate() {
            p.extend_from_slice(result.recovery(j).expect("parity"));
        }
    }
    parity
}

/// Coding many rows per library call changes nothing in the slots: every row is still its own
/// codeword, for cell sizes that batch (multiples of 64) and for those that do not; and decoding
/// runs of rows gives the same bytes whichever runs the damaged cells cut.
#[test]
fn batched_coding_equals_row_by_row() {
    for (k, m, cs, rows) in [(16, 16, 2048, 300), (64, 32, 2048, 9), (3, 5, 64, 5000), (5, 2, 96, 700), (1, 1, 2, 10)] {
        let size = rows * k * cs - 7;
        let layout = SlotLayout::new(k, m, cs, size as u64).expect("layout");
        let data = bytes(size, (k * 1000 + cs) as u64);
        let slots = encode_to_vecs(&layout, &data);
        assert_eq!(slots[k..], parity_row_by_row(&layout, &data)[..], "{k}+{m}, {cs} B cells");

        // Lose data slot 0 everywhere and damage a few cells of slot 1: runs of rows of
        // different lengths and patterns.
        let damaged_rows = [0u64, 1, 5, (rows / 2) as u64, rows as u64 - 1];
        let mut present: Vec<Option<Vec<u8>>> = slots.into_iter().map(Some).collect();
        present[0] = None;
        let intact = |slot: usize, first: u64, cells: &[u8]| -> Vec<bool> {
            let rows = (first..).take(cells.len() / cs);
            rows.map(|row| !(k > 1 && slot == 1 && damaged_rows.contains(&row))).collect()
        };
        let mut out = Vec::new();
        let stats = decode(&layout, &present, &mut out, &intact).expect("decode");
        assert!(out == data, "{k}+{m}, {cs} B cells: rebuilt bytes differ");
        assert_eq!(stats.rows_repaired, layout.rows());
        let damaged =
            if k > 1 { damaged_rows.iter().collect::<std::collections::BTreeSet<_>>().len() as u64 } else { 0 };
        assert_eq!(stats.cells_rebuilt, layout.rows() + damaged);
    }
}

/// A slot writer that fails partway: encode reports the error, and neither coder is left waiting
/// for a turn that never comes.
#[test]
fn a_failing_slot_writer_stops_both_coders() {
    struct FailsAfter(usize);
    impl std::io::Write for FailsAfter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if buf.len() > self.0 {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let layout = SlotLayout::new(4, 2, 2048, 8 << 20).expect("layout");
    let data = bytes(8 << 20, 5);
    let mut slots: Vec<FailsAfter> = (0..6).map(|i| FailsAfter(if i == 5 { 300_000 } else { usize::MAX })).collect();
    let result = encode(&layout, data.as_slice(), &mut slots);
    assert!(matches!(result, Err(ErasureError::Io(_))), "{result:?}");
}
