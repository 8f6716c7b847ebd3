//! A slot written to disk as the node writes it (cells file and tree file), for the scenarios
//! that prove storage.

use std::path::Path;

use circuits::Fr;

/// Writes 2^depth pseudo-random cells to `<name>.cells` and their slot tree to `<name>.tree`
/// in `dir`; returns the slot root.
pub(crate) fn write_slot(dir: &Path, name: &str, depth: u32, cell_size: usize, seed: u8) -> Fr {
    let bytes: Vec<u8> =
        (0..(1usize << depth) * cell_size).map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 9) as u8).collect();
    let levels = circuits::tree_levels(&circuits::hash_cells(&bytes, cell_size, 1));
    let tree: Vec<u8> = levels.iter().flatten().flat_map(circuits::fr_to_bytes).collect();
    std::fs::write(dir.join(format!("{name}.cells")), &bytes).expect("cells");
    std::fs::write(dir.join(format!("{name}.tree")), tree).expect("tree");
    levels[levels.len() - 1][0]
}

/// A field element as 0x-prefixed big-endian hex (`uint256`), as the CLI and contracts take it.
pub(crate) fn fr_hex(x: &Fr) -> String {
    let mut be = circuits::fr_to_bytes(x);
    be.reverse();
    format!("0x{}", be.iter().map(|b| format!("{b:02x}")).collect::<String>())
}
