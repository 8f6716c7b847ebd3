use std::os::unix::fs::FileExt;

use super::*;
use crate::content::{DEFAULT_BLOCK_SIZE, leaf_hash};

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn upload(store: &Arc<BlockStore>, data: &[u8]) -> (ContentId, Manifest) {
    let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE).expect("begin");
    for chunk in data.chunks(10_000) {
        w.write(chunk).expect("write");
    }
    w.finish(Some("f.bin".into()), None).expect("finish")
}

fn read_all(store: &BlockStore, tree: &ContentId) -> Vec<u8> {
    let (file, record) = store.open_data(tree).expect("open");
    let mut buf = vec![0u8; record.dataset_size as usize];
    file.read_exact_at(&mut buf, 0).expect("read");
    buf
}

#[test]
fn upload_round_trips_and_serves_proven_blocks() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open(dir.path(), 1 << 30).expect("open");
    for len in [0usize, 1, 65_536, 65_537, 300_000] {
        let data = sample(len);
        let (cid, manifest) = upload(&store, &data);
        assert_eq!(store.manifest(&cid).expect("get"), Some(manifest.clone()));
        let tree = manifest.tree().expect("tree");
        assert_eq!(read_all(&store, &tree), data);
        let root = tree.digest();
        for (index, block, proof) in store.blocks_with_proofs(&tree, 0, 100).expect("blocks") {
            assert!(proof.verify(&root, manifest.block_count(), index, &leaf_hash(&block)));
        }
        assert!(store.has_complete(&cid).expect("has"));
    }
    assert_eq!(store.list().expect("list").len(), 5);
}

#[test]
fn abandoned_and_crashed_writes_leave_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let kept = {
        let store = BlockStore::open(dir.path(), 1 << 30).expect("open");
        let (kept, _) = upload(&store, &sample(100_000));
        let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE).expect("begin");
        w.write(&sample(200_000)).expect("write");
        // As if the process died mid-upload: its temporary file stays behind.
        let left_behind = dir.path().join("tmp").join("crashed.data");
        std::fs::copy(&w.path, &left_behind).expect("copy");
        drop(w);
        assert!(left_behind.exists());
        // A data file renamed into place whose record never committed.
        std::fs::write(dir.path().join("datasets").join(format!("{}.data", ContentId::for_tree(&[9; 32]))), b"junk")
            .expect("orphan");
        kept
    };
    let store = BlockStore::open(dir.path(), 1 << 30).expect("reopen");
    assert_eq!(store.list().expect("list").len(), 1);
    assert!(store.has_complete(&kept).expect("has"));
    assert_eq!(std::fs::read_dir(dir.path().join("tmp")).expect("tmp").count(), 0);
    assert_eq!(std::fs::read_dir(dir.path().join("datasets")).expect("ds").count(), 2);
    let space = store.space().expect("space");
    assert_eq!(space.total_blocks, 2);
}

#[test]
fn quota_is_enforced_and_released() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open(dir.path(), 1 << 20).expect("open");
    let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE).expect("begin");
    assert!(matches!(w.write(&sample(2 << 20)), Err(StoreError::QuotaExceeded { .. })));
    drop(w);
    assert_eq!(store.space().expect("space").quota_used_bytes, 0);
    upload(&store, &sample(500_000));
}

#[test]
fn delete_removes_data_unless_still_named() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open(dir.path(), 1 << 30).expect("open");
    let data = sample(70_000);
    let (a, ma) = upload(&store, &data);
    let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE).expect("begin");
    w.write(&data).expect("write");
    let (b, _) = w.finish(Some("other-name".into()), None).expect("finish");
    assert_ne!(a, b);
    let tree = ma.tree().expect("tree");
    assert!(store.delete(&a).expect("delete a"));
    assert!(store.has_complete(&tree).expect("has"), "b still names the data");
    assert!(store.delete(&b).expect("delete b"));
    assert!(!store.has_complete(&tree).expect("has"));
    assert!(!store.delete(&b).expect("again"));
    assert_eq!(store.space().expect("space").quota_used_bytes, 0);
}

#[test]
fn fetched_dataset_commits_only_when_complete_and_matching() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = BlockStore::open(&dir.path().join("a"), 1 << 30).expect("open");
    let dst = BlockStore::open(&dir.path().join("b"), 1 << 30).expect("open");
    let data = sample(200_000);
    let (cid, manifest) = upload(&src, &data);
    let tree = manifest.tree().expect("tree");
    let blocks = src.blocks_with_proofs(&tree, 0, 10).expect("blocks");
    let mut partial = dst.begin_fetch(&manifest).expect("fetch");
    for (i, block, _) in blocks.iter().rev() {
        assert!(partial.finish_would_fail_until_complete());
        partial.write_block(*i, block, leaf_hash(block)).expect("write");
    }
    assert_eq!(partial.finish().expect("commit"), cid);
    assert_eq!(read_all(&dst, &tree), data);

    // A block with the wrong content is caught by the root check at the end.
    let dst2 = BlockStore::open(&dir.path().join("c"), 1 << 30).expect("open");
    let mut partial = dst2.begin_fetch(&manifest).expect("fetch");
    for (i, block, _) in &blocks {
        let mut bad = block.to_vec();
        if *i == 1 {
            bad[0] ^= 1;
        }
        partial.write_block(*i, &bad, leaf_hash(&bad)).expect("write");
    }
    assert!(matches!(partial.finish(), Err(StoreError::Mismatch(_))));
    assert!(!dst2.has_complete(&cid).expect("has"));
    assert_eq!(dst2.space().expect("space").quota_used_bytes, 0);
}

impl PartialDataset {
    fn finish_would_fail_until_complete(&self) -> bool {
        self.missing() > 0
    }
}
