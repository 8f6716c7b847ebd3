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
    let (cid, protected) = protect(&store, &manifest, Protection::new(4, 3, 2048), 2).expect("protect");
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
    let (_, pa) = protect(&a, &stored(&a, &data), Protection::new(3, 2, 2048), 1).expect("one thread");
    let (_, pb) = protect(&b, &stored(&b, &data), Protection::new(3, 2, 2048), 2).expect("two threads");
    assert_eq!(pa, pb);
}

#[test]
fn empty_and_tiny_datasets_protect_and_rebuild() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open(dir.path(), 1 << 30).expect("open");
    for len in [0usize, 1, 2047, 2049] {
        let data = sample(len, len as u64 + 1);
        let (_, protected) = protect(&store, &stored(&store, &data), Protection::new(2, 2, 2048), 2).expect("protect");
        assert!(rebuilt(&store, &protected).expect("rebuild").0 == data, "len {len}");
    }
}

#[test]
fn rows_spanning_several_tree_levels_rebuild() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open(dir.path(), 1 << 30).expect("open");
    let data = sample(700_001, 31);
    let (_, protected) = protect(&store, &stored(&store, &data), Protection::new(4, 2, 2048), 2).expect("protect");
    let (out, stats) = rebuilt(&store, &protected).expect("rebuild");
    assert!(out == data);
    assert_eq!(stats.cells_rebuilt, 0);
}

/// Slots padded to 2^depth cells, published as datasets, accepted by a host against the slot
/// roots, and proven with the storage-proof circuit: the node's slot trees are the prover's.
#[test]
fn padded_published_slot_is_accepted_and_proven() {
    use circuits::r1cs::{ProofShape, build_inputs, dataset_path};
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open(dir.path(), 1 << 30).expect("open");
    let data = sample(1_500, 77); // 24 cells of 64 bytes: 12 rows for K = 2, padded to 16
    let shape = ProofShape { samples: 3, slot_depth: 4, dataset_levels: 1, cell_size: 64 };
    let protection = Protection { k: 2, m: 2, cell_size: 64, slot_cells: Some(shape.slot_cells()) };
    let (_, protected) = protect(&store, &stored(&store, &data), protection, 2).expect("protect");
    assert_eq!(protected.erasure.as_ref().expect("erasure").slot_rows, 16);
    assert!(rebuilt(&store, &protected).expect("rebuild").0 == data, "padding must not reach the data");

    let (cid, published) = publish(&store, &protected).expect("publish");
    assert_eq!(store.manifest(&cid).expect("get"), Some(published.clone()));
    assert_eq!(publish(&store, &published).expect("again").0, cid, "publishing twice changes nothing");
    let held = accept(&store, &published, 3, &dir.path().join("held/3.tree"), 2).expect("accept");
    assert_eq!(std::fs::metadata(&held.cells).expect("cells").len(), 16 * 64);

    let keys = prover::setup(&shape).expect("setup");
    let prover = prover::Prover::new(keys);
    let slot = prover::DiskSlot::open(&held.cells, &held.tree, 64, shape.slot_cells()).expect("open slot");
    let dataset_root = circuits::dataset_root(&held.slot_roots);
    let entropy = circuits::Fr::from(12_345u64);
    let inputs =
        build_inputs(&shape, &slot, dataset_path(&held.slot_roots, 3), dataset_root, entropy, 3).expect("inputs");
    let proof = prover.prove(&inputs).expect("prove");
    assert!(prover.verify(dataset_root, entropy, 3, &proof));
    let verify_root = layout_of(&published).expect("layout").1.verify_root.clone();
    assert_eq!(verify_root, circuits::fr_to_bytes(&dataset_root).to_vec());

    // A slot whose cells are not the ones the manifest's root names is refused.
    let mut swapped = published.clone();
    let v = swapped.erasure.as_mut().and_then(|e| e.verification.as_mut()).expect("verification");
    v.slot_cids.swap(0, 1);
    let tree = dir.path().join("held/0.tree");
    assert!(matches!(accept(&store, &swapped, 0, &tree, 2), Err(SlotError::Manifest(_))));
    assert!(!tree.exists(), "a refused slot's tree is removed");
}

#[test]
fn padding_below_the_data_is_refused() {
    let protection = Protection { k: 2, m: 1, cell_size: 64, slot_cells: Some(4) };
    assert!(protection.layout(64 * 8).is_ok());
    assert!(matches!(protection.layout(64 * 8 + 1), Err(ErasureError::InvalidParams(_))));
}

/// Lazy repair's decode: three lost slots regenerated from the K = 2 others, byte for byte the
/// published slots (same CIDs); fewer than K present slots is an error.
#[test]
fn lost_slots_regenerate_from_any_k_others() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open(dir.path(), 1 << 30).expect("open");
    let data = sample(5_000, 3);
    let protection = Protection { k: 2, m: 3, cell_size: 64, slot_cells: Some(64) };
    let (_, protected) = protect(&store, &stored(&store, &data), protection, 2).expect("protect");
    let (_, published) = publish(&store, &protected).expect("publish");
    let path_of = |i: usize| {
        let m = store.manifest(&slot_cid(&published, i).expect("cid")).expect("get").expect("manifest");
        store.complete_data_path(&m.tree().expect("tree")).expect("path")
    };
    let present = vec![(1, path_of(1)), (4, path_of(4))];
    let lost = [0usize, 2, 3];
    for &i in &lost {
        assert!(store.delete(&slot_cid(&published, i).expect("cid")).expect("delete"));
    }
    let cids = regenerate(&store, &published, &present, &lost).expect("regenerate");
    for (&i, cid) in lost.iter().zip(&cids) {
        assert_eq!(*cid, slot_cid(&published, i).expect("cid"));
        assert!(store.has_complete(cid).expect("has"));
    }
    assert!(regenerate(&store, &published, &present[..1], &lost).is_err(), "one slot cannot rebuild K = 2");
}

#[test]
fn discarding_a_requests_slot_copies_frees_their_space_and_keeps_the_upload() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open(dir.path(), 1 << 30).expect("open");
    let data = sample(50_000, 9);
    let manifest = stored(&store, &data);
    let upload_bytes = store.space().expect("space").quota_used_bytes;
    let (_, protected) = protect(&store, &manifest, Protection::new(2, 2, 2048), 2).expect("protect");
    let (cid, published) = publish(&store, &protected).expect("publish");
    let slot_cids: Vec<ContentId> = (0..4).map(|i| slot_cid(&published, i).expect("slot")).collect();
    assert!(store.space().expect("space").quota_used_bytes > upload_bytes);

    let freed = discard(&store, &cid, &published).expect("discard");
    assert!(freed > 0);
    assert_eq!(store.space().expect("space").quota_used_bytes, upload_bytes, "every slot byte given back");
    for slot in &slot_cids {
        assert_eq!(store.manifest(slot).expect("get"), None);
    }
    assert_eq!(store.manifest(&cid).expect("get"), None);
    let (_, verification) = layout_of(&published).expect("layout");
    assert!(!slot_dir(&store, &verification.verify_root).exists());
    // the upload is whole, and a second discard finds nothing to do
    assert!(store.has_complete(&manifest.cid()).expect("has"));
    assert_eq!(discard(&store, &cid, &published).expect("again"), 0);
    // the space survives a restart's recount
    drop(store);
    let store = BlockStore::open(dir.path(), 1 << 30).expect("reopen");
    assert_eq!(store.space().expect("space").quota_used_bytes, upload_bytes);
}
