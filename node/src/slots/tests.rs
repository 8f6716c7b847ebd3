use std::io::Write;

use super::*;
use crate::content::DEFAULT_BLOCK_SIZE;

use crate::test_support::pseudo_random_bytes as sample;

fn stored(store: &Arc<BlockStore>, data: &[u8]) -> Manifest {
    let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE).expect("begin");
    w.write(data).expect("write");
    w.finish(None, None).expect("finish").1
}

fn rebuilt(store: &BlockStore, manifest: &Manifest) -> Result<(Vec<u8>, DecodeStats), SlotError> {
    let mut out = Vec::new();
    let stats = rebuild(store, manifest, &mut out)?;
    out.flush().expect("flush");
    Ok((out, stats))
}

#[test]
fn protected_dataset_survives_m_lost_slots_and_a_damaged_cell() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open(dir.path(), 1 << 30).expect("open");
    let data = sample(300_001, 5);
    let manifest = stored(&store, &data);
    let (cid, protected) = protect(&store, &manifest, 4, 3, 2048, 2).expect("protect");
    assert_ne!(cid, manifest.cid());
    assert_eq!(store.manifest(&cid).expect("get"), Some(protected.clone()));
    let (layout, verification) = layout_of(&protected).expect("layout");
    assert_eq!((layout.k, layout.m, verification.slot_roots.len()), (4, 3, 7));

    let (out, stats) = rebuilt(&store, &protected).expect("intact");
    assert!(out == data);
    assert_eq!(stats.cells_rebuilt, 0);

    // One flipped byte in one cell of a data slot: detected and rebuilt.
    let slots = slot_dir(&store, &verification.verify_root);
    let cells = cells_path(&slots, 1);
    let mut bytes = std::fs::read(&cells).expect("read");
    bytes[3 * 2048 + 100] ^= 1;
    std::fs::write(&cells, &bytes).expect("write");
    let (out, stats) = rebuilt(&store, &protected).expect("damaged cell");
    assert!(out == data);
    assert_eq!((stats.cells_damaged, stats.cells_rebuilt), (1, 1));

    // Any M slots gone (two data, one parity): still whole.
    bytes[3 * 2048 + 100] ^= 1;
    std::fs::write(&cells, &bytes).expect("write");
    for slot in [0, 2, 5] {
        std::fs::remove_file(cells_path(&slots, slot)).expect("remove");
    }
    let (out, stats) = rebuilt(&store, &protected).expect("M lost");
    assert!(out == data);
    assert!(stats.cells_rebuilt > 0);
    // One more damaged cell makes row 3 one cell short of K: a clear error, not a panic.
    bytes[3 * 2048 + 100] ^= 1;
    std::fs::write(&cells, &bytes).expect("write");
    assert!(matches!(rebuilt(&store, &protected), Err(SlotError::Erasure(ErasureError::NotEnoughSlots { .. }))));
}

#[test]
fn slot_roots_do_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = BlockStore::open(&dir.path().join("a"), 1 << 30).expect("open");
    let b = BlockStore::open(&dir.path().join("b"), 1 << 30).expect("open");
    let data = sample(100_000, 9);
    let (_, pa) = protect(&a, &stored(&a, &data), 3, 2, 2048, 1).expect("one thread");
    let (_, pb) = protect(&b, &stored(&b, &data), 3, 2, 2048, 2).expect("two threads");
    assert_eq!(pa, pb);
}

#[test]
fn empty_and_tiny_datasets_protect_and_rebuild() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open(dir.path(), 1 << 30).expect("open");
    for len in [0usize, 1, 2047, 2049] {
        let data = sample(len, len as u64 + 1);
        let (_, protected) = protect(&store, &stored(&store, &data), 2, 2, 2048, 2).expect("protect");
        assert!(rebuilt(&store, &protected).expect("rebuild").0 == data, "len {len}");
    }
}

#[test]
fn rows_spanning_several_tree_levels_rebuild() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open(dir.path(), 1 << 30).expect("open");
    let data = sample(700_001, 31);
    let (_, protected) = protect(&store, &stored(&store, &data), 4, 2, 2048, 2).expect("protect");
    let (out, stats) = rebuilt(&store, &protected).expect("rebuild");
    assert!(out == data);
    assert_eq!(stats.cells_rebuilt, 0);
}
