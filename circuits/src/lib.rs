//! # circuits
//!
//! Poseidon2 over the BN254 scalar field and what Vellum builds from it: bytes packed into field
//! elements, whole cells hashed by a sponge, and 8-ary keyed Merkle trees over cell hashes (slot
//! trees) and over slot roots (the dataset tree). The native code here is the single definition:
//! the R1CS gadgets (next issue) must reproduce it bit for bit, using the constants exported by
//! [`poseidon2`] and the conventions below.
//!
//! ## Map
//!
//! | module | job |
//! | --- | --- |
//! | [`poseidon2`] (`poseidon2/mod.rs`, `t3.rs`, `t8.rs`, `t12.rs`, `t16.rs`) | the permutation and its reference constants at t = 3, 8, 12, 16, with known-answer tests |
//! | `arith.rs` | lazily reduced, branch-free Montgomery arithmetic (the scalar path) |
//! | `ifma.rs` | the cell sponge on eight cells at once with AVX-512 IFMA (run-time dispatch) |
//! | `lanes.rs` | eight-lane radix-2^52 Montgomery arithmetic (AVX-512 IFMA), shared with the prover's MSM |
//! | `field.rs` | [`fr_to_bytes`] / [`fr_from_bytes`] (canonical 32-byte little-endian) |
//! | `pack.rs` | [`pack_bytes`]: 31 bytes per element, `10*` byte padding |
//! | `sponge.rs` | [`hash_elements`]: the t = 16, rate-15 sponge with a length-and-domain IV |
//! | `cells.rs` | [`hash_cell`], [`hash_cells`] (threaded) |
//! | `compress.rs` | [`compress`], [`node_key`]: t = 12 keyed compression of 8 children |
//! | `tree.rs` | [`parent_level`], [`merkle_root`], [`dataset_root`], [`merkle_proof`], [`verify_path`] |
//!
//! ## Definitions (what the circuit must match)
//!
//! - **Permutation:** Poseidon2, x^5, R_F = 8, R_P = 56 (t = 3) or 57 (t = 8, 12, 16), with the
//!   current HorizenLabs reference constants (= `zkhash` 0.2.0 = `taceo-poseidon2` 0.3.1), not
//!   Codex's older t = 3 set.
//! - **Packing:** append 0x01, then zeros to a multiple of 31 bytes; each 31-byte chunk is a
//!   little-endian integer. `n` bytes → `n/31 + 1` elements; a 2 KiB cell → 67.
//! - **Cell hash (leaf):** sponge over the packed elements with Poseidon2 t = 16: rate lanes 0–14,
//!   capacity lane 15 initialised to `n·2^64 + 16·2^16 + 15·2^8 + 1` (`n` = element count,
//!   1 = [`DOMAIN_CELL`]); blocks of 15 added into the rate then permuted, the last block zero
//!   padded; the hash is lane 0. A 2 KiB cell takes 5 permutations.
//! - **Tree node:** `Poseidon2_12(c0..c7, key, 0, 0, 0)[0]` over 8 children, where the key is
//!   `bottom + 2·missing + 32·dataset` (bit 0: children are leaves; bits 1–4: children missing from
//!   the short last group of a level, which is zero padded; bit 5: dataset tree). Levels are folded
//!   until one node remains, and at least once.
//! - **Proof:** per level, the 7 other children of the node's group (zeros where padded); index
//!   digits are base 8, least significant first.
//!
//! ## Why these widths
//!
//! The cell sponge is t = 16 (rate 15) and the tree is 8-ary on t = 12 (8 children + key + 3 spare
//! lanes), chosen for the circuit; natively every width costs about the same per byte (table
//! below), because per absorbed element all widths need about the same number of field products
//! (t = 16: 1,467 products per permutation / 15 elements; t = 3: 240 / 2).
//!
//! **R1CS per sample at slot depth 19** (2^19 cells of 2 KiB; a permutation costs
//! 3·(8t + R_P): t = 3: 240, t = 8: 363, t = 12: 459, t = 16: 555):
//!
//! | part | cost |
//! | --- | --- |
//! | cell: ⌈67/15⌉ = 5 permutations t = 16 | 5 · 555 = 2,775 |
//! | path: ⌈19/3⌉ = 7 levels t = 12 | 7 · 459 = 3,213 |
//! | placing the node among its 8 children (7 muxes on the 3 index bits) and the level's key | 7 · ~10 ≈ 70 |
//! | index derivation share (one t = 16 permutation squeezes 16 elements; a 254-bit decomposition of each yields 13 indices of 19 bits) | ≈ 25 |
//! | **total, every sample walking to the root** | **≈ 6,083** |
//! | **with the root formed once per proof**: 2^19 = 8^6 · 2, so the top node has only 2 children; compute it once from both, and let each sample stop after 6 levels and pick one of the 2 (1 constraint) | **≈ 2,775 + 6 · 469 + 1 + 25 ≈ 5,615 per sample, + 459 per proof** |
//!
//! So the chosen pair fits the 6,000 budget (≈ 5,615 per sample plus a fixed ≈ 459) once the
//! circuit computes the shared root node once per proof; sharing the top two levels (16 nodes, one
//! 16-way selection per sample) would bring it to ≈ 5,160. The alternatives are worse: Codex's
//! t = 3 rate-2 sponge plus binary tree costs 8,160 + 19 · 241 ≈ 12,700; a t = 12 sponge
//! 7 · 459 = 3,213 per cell; a 4-ary tree on t = 8 (4 children + key) 10 · 368 ≈ 3,680 per path; an
//! 8-ary tree on t = 16 7 · 555 = 3,885. (A 16-ary tree on t = 16 would need a 17th lane for the
//! key.)
//!
//! **Native speed** (`cargo run -p circuits --release --example hash_speed -- 16 7`, this 2-vCPU
//! Xeon at ~3 GHz, medians of 7 wall-clock runs, the second core busy with another build, load ≈ 1):
//!
//! | t (rate t−1) | µs / permutation | permutations / 2 KiB cell | sponge MB/s |
//! | --- | --- | --- | --- |
//! | 3 | 5.9–6.2 | 34 | 9.7–10.2 |
//! | 8 | 20.1–20.8 | 10 | 9.9–10.2 |
//! | 12 | 27.3–30.2 | 7 | 9.7–10.7 |
//! | 16 | 38.0–38.9 | 5 | 10.5–10.8 |
//!
//! Those are scalar figures: a cell costs 5 · 1,467 ≈ 7,300 Montgomery products, fixed by the
//! reference parameters (57 partial rounds each multiplying 16 lanes by the random internal
//! diagonal), each 36 64×64-bit multiplications plus carry chains. Branch-free lazy reduction (values
//! below 2p, no final subtraction; ~15% over ark-ff's `Fr`), product scanning, S-box steps in
//! lockstep, two interleaved permutations, `+bmi2,+adx` and `target-cpu=native` all stayed near
//! 11 MB/s per core.
//!
//! **What did pass the goal** is `ifma.rs`: eight cells hashed at once, one per 64-bit lane of the
//! AVX-512 registers, in radix 2^52 with the IFMA multiply-adds (selected at run time; the scalar
//! path stays for other CPUs and as the reference). `vellum bench hash --size 32MiB` (slot tree
//! end to end: leaves and the 8-ary tree, 16,384 cells, median of 3, this 2-vCPU Xeon):
//!
//! | implementation | 1 thread | 2 threads |
//! | --- | --- | --- |
//! | scalar | 10.3 MB/s | 19.5 MB/s |
//! | AVX-512 IFMA, 8 cells per pass | **51.2 MB/s** | **87.5 MB/s** |
//!
//! A stock `taceo-poseidon2` 0.3.1 measured alongside: t = 3 7.1–7.5 µs per permutation
//! (8.1–8.5 MB/s as a rate-2 cell sponge alone), t = 16 44–46 µs.

mod arith;
mod cells;
mod compress;
mod field;
mod ifma;
pub mod lanes;
mod pack;
pub mod poseidon2;
pub mod r1cs;
mod sponge;
mod tree;

pub use ark_bn254::Fr;
pub use cells::{DEFAULT_CELL_SIZE, HashBackend, MAX_THREADS, hash_cell, hash_cells, hash_cells_with};
pub use compress::{COMPRESS_WIDTH, KEY_LANE, TREE_ARITY, TreeKind, compress, node_key};
pub use field::{fr_from_bytes, fr_from_bytes_mod_order, fr_to_bytes};
pub use pack::{BYTES_PER_ELEMENT, pack_bytes, packed_len};
pub use sponge::{
    DOMAIN_CELL, DOMAIN_SAMPLE_INDEX, SPONGE_CAPACITY_LANE, SPONGE_RATE, SPONGE_WIDTH, hash_elements, sponge_iv,
};
pub use tree::{
    MerklePath, PATH_SIBLINGS, dataset_root, level_sizes, merkle_proof, merkle_root, parent_level, tree_levels,
    verify_dataset_path, verify_path,
};
