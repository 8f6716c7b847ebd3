//! The public API end to end, as the node will use it: hash a slot's cells, build the tree level by
//! level from chunks, prove a few cells and check the proofs against the slot and dataset roots.

use circuits::{
    DEFAULT_CELL_SIZE, Fr, MerklePath, TREE_ARITY, dataset_root, fr_from_bytes, fr_to_bytes, hash_cell, hash_cells,
    level_sizes, merkle_proof, merkle_root, parent_level, tree_levels, verify_dataset_path, verify_path,
};

#[test]
fn slot_to_dataset_root() {
    let cells = 75usize;
    let data: Vec<u8> = (0..cells * DEFAULT_CELL_SIZE).map(|i| (i % 251) as u8).collect();
    let leaves = hash_cells(&data, DEFAULT_CELL_SIZE, 2);

    // Streamed: each level in chunks of 2 * TREE_ARITY nodes, the last chunk short.
    let mut levels = vec![leaves.clone()];
    while levels.len() == 1 || levels[levels.len() - 1].len() > 1 {
        let below = &levels[levels.len() - 1];
        let mut next = Vec::new();
        for chunk in below.chunks(2 * TREE_ARITY) {
            next.extend(parent_level(chunk, levels.len() == 1));
        }
        levels.push(next);
    }
    assert_eq!(levels, tree_levels(&leaves));
    let sizes: Vec<u64> = levels.iter().map(|l| l.len() as u64).collect();
    assert_eq!(sizes, level_sizes(cells as u64));
    let slot_root = merkle_root(&leaves);
    assert_eq!(levels[levels.len() - 1], vec![slot_root]);

    for index in [0u64, 8, 63, 64, 74] {
        let path = merkle_proof(&levels, index).expect("index in range");
        let wire = path.to_bytes();
        let path = MerklePath::from_bytes(&wire).expect("round trip");
        let cell = &data[index as usize * DEFAULT_CELL_SIZE..][..DEFAULT_CELL_SIZE];
        assert!(verify_path(&slot_root, cells as u64, index, &hash_cell(cell), &path));
        let mut damaged = cell.to_vec();
        damaged[17] ^= 1;
        assert!(!verify_path(&slot_root, cells as u64, index, &hash_cell(&damaged), &path));
    }

    let slot_roots = vec![slot_root, Fr::from(2u64), Fr::from(3u64)];
    let dataset = dataset_root(&slot_roots);
    let dataset_levels = circuits::TreeKind::Dataset.levels(&slot_roots);
    let path = merkle_proof(&dataset_levels, 0).expect("slot 0");
    assert!(verify_dataset_path(&dataset, 3, 0, &slot_root, &path));
    assert_eq!(fr_from_bytes(&fr_to_bytes(&dataset)), Some(dataset));
}
