use std::os::unix::fs::{FileExt, PermissionsExt};

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

// Disk errors: a full disk must fail the operation that met it, and nothing after it.

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).expect("dir").map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn no_reserve(quota: u64) -> StoreOptions {
    StoreOptions { quota, min_free_bytes: 0 }
}

#[test]
fn enospc_at_the_metadata_commit_fails_the_upload_cleanly_and_the_store_recovers() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open_faulty(dir.path(), no_reserve(1 << 30)).expect("open");
    let (kept, kept_manifest) = upload(&store, &sample(100_000));
    let kept_tree = kept_manifest.tree().expect("tree");
    let used = store.space().expect("space").quota_used_bytes;
    let datasets_before = files_in(&dir.path().join("datasets"));

    // One ENOSPC inside redb's commit; the space is there again right after (as when the
    // failed upload's own files are removed).
    store.faults.fail_next_db_write();
    let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE).expect("begin");
    w.write(&sample(300_000)).expect("write");
    let err = w.finish(Some("g.bin".into()), None).expect_err("the commit meets a full disk");
    assert!(matches!(err, StoreError::NoSpace { .. }), "{err}");
    assert_eq!(store.space().expect("space").quota_used_bytes, used, "the upload's claim is given back");
    assert!(files_in(&dir.path().join("tmp")).is_empty());
    assert_eq!(files_in(&dir.path().join("datasets")), datasets_before, "the failed upload's files are gone");

    // The same store, never reopened from outside, serves what it had and takes writes again.
    assert_eq!(read_all(&store, &kept_tree), sample(100_000));
    assert!(store.has_complete(&kept).expect("has"));
    let (again, manifest) = upload(&store, &sample(300_000));
    assert!(store.has_complete(&again).expect("has"));
    assert_eq!(read_all(&store, &manifest.tree().expect("tree")), sample(300_000));
    assert_eq!(store.list().expect("list").len(), 2);
    drop(store);
    let store = BlockStore::open(dir.path(), 1 << 30).expect("reopen");
    assert_eq!(store.list().expect("list").len(), 2);
}

#[test]
fn a_store_whose_disk_stays_full_works_again_once_space_is_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open_faulty(dir.path(), no_reserve(1 << 30)).expect("open");
    let (kept, _) = upload(&store, &sample(100_000));
    let used = store.space().expect("space").quota_used_bytes;
    store.faults.fill_db_disk(true);
    for _ in 0..3 {
        let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE).expect("begin");
        w.write(&sample(300_000)).expect("write");
        assert!(matches!(w.finish(None, None), Err(StoreError::NoSpace { .. })));
        assert!(matches!(
            store.put_manifest(&Manifest::new(ContentId::for_tree(&[5; 32]), 1, 1)),
            Err(StoreError::NoSpace { .. })
        ));
    }
    assert!(files_in(&dir.path().join("tmp")).is_empty());
    assert_eq!(files_in(&dir.path().join("datasets")).len(), 2);
    store.faults.fill_db_disk(false);
    assert_eq!(store.space().expect("space").quota_used_bytes, used);
    assert!(store.has_complete(&kept).expect("has"));
    upload(&store, &sample(300_000));
    assert_eq!(store.list().expect("list").len(), 2);
}

#[test]
fn a_failed_commit_never_removes_an_already_stored_dataset() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open_faulty(dir.path(), no_reserve(1 << 30)).expect("open");
    let data = sample(150_000);
    let (first, manifest) = upload(&store, &data);
    let used = store.space().expect("space").quota_used_bytes;
    store.faults.fill_db_disk(true);
    // The same data under another name: same tree, new manifest.
    let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE).expect("begin");
    w.write(&data).expect("write");
    assert!(matches!(w.finish(Some("other".into()), None), Err(StoreError::NoSpace { .. })));
    store.faults.fill_db_disk(false);
    assert_eq!(store.space().expect("space").quota_used_bytes, used);
    assert_eq!(files_in(&dir.path().join("datasets")).len(), 2);
    assert!(store.has_complete(&first).expect("has"));
    assert_eq!(read_all(&store, &manifest.tree().expect("tree")), data);
}

#[test]
fn a_fetch_whose_commit_fails_gives_back_its_claim_and_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let src = BlockStore::open(&dir.path().join("a"), 1 << 30).expect("open");
    let dst = BlockStore::open_faulty(&dir.path().join("b"), no_reserve(1 << 30)).expect("open");
    let (cid, manifest) = upload(&src, &sample(200_000));
    let blocks = src.blocks_with_proofs(&manifest.tree().expect("tree"), 0, 10).expect("blocks");
    let fetch = |dst: &Arc<BlockStore>| {
        let mut partial = dst.begin_fetch(&manifest).expect("fetch");
        for (i, block, _) in &blocks {
            partial.write_block(*i, block, leaf_hash(block)).expect("write");
        }
        partial.finish()
    };
    dst.faults.fail_next_db_write();
    assert!(matches!(fetch(&dst), Err(StoreError::NoSpace { .. })));
    assert_eq!(dst.space().expect("space").quota_used_bytes, 0);
    assert!(files_in(&dir.path().join("b").join("tmp")).is_empty());
    assert!(files_in(&dir.path().join("b").join("datasets")).is_empty());
    assert_eq!(fetch(&dst).expect("commit"), cid);
}

#[test]
fn readers_survive_the_reopen_of_the_metadata_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open_faulty(dir.path(), no_reserve(1 << 30)).expect("open");
    let (_, manifest) = upload(&store, &sample(70_000));
    let tree = manifest.tree().expect("tree");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (store, tree, stop) = (Arc::clone(&store), tree, Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut answers = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // While the disk is full a read may fail; it must never answer wrongly.
                    if let Ok(found) = store.dataset(&tree) {
                        assert!(found.is_some(), "a stored dataset vanished during a reopen");
                        answers += 1;
                    }
                }
                answers
            })
        })
        .collect();
    for round in 0..5u8 {
        store.faults.fill_db_disk(true);
        let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE).expect("begin");
        w.write(&[round; 1000]).expect("write");
        assert!(w.finish(None, None).is_err());
        store.faults.fill_db_disk(false);
        upload(&store, &[round; 2000]);
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().expect("reader") > 0);
    }
    assert_eq!(store.list().expect("list").len(), 6);
}

#[test]
fn an_idle_upload_holds_at_most_one_claim_step() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open(dir.path(), 1 << 30).expect("open");
    let writers: Vec<_> = (0..15)
        .map(|_| {
            let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE).expect("begin");
            w.write(&[7]).expect("write");
            w
        })
        .collect();
    let used = store.space().expect("space").quota_used_bytes;
    // One step each, and a step is small: 1 MiB (it was 64 MiB, so 15 such uploads held 1 GiB).
    assert!(used <= 15 << 20, "15 one-byte uploads hold {used} bytes of quota");
    drop(writers);
    assert_eq!(store.space().expect("space").quota_used_bytes, 0);
}

#[test]
fn free_space_check_refuses_what_the_disk_cannot_hold() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = BlockStore::open_with(dir.path(), no_reserve(u64::MAX)).expect("open");
    store.check_free_space(None).expect("an empty request fits");
    store.check_free_space(Some(1)).expect("a byte fits");
    match store.check_free_space(Some(u64::MAX / 2)) {
        Err(StoreError::NoSpace { needed, available }) => {
            assert_eq!(needed, u64::MAX / 2);
            assert!(available < needed);
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    // The reserve counts too.
    let reserving =
        BlockStore::open_with(&dir.path().join("r"), StoreOptions { quota: 1 << 30, min_free_bytes: u64::MAX / 2 })
            .expect("open");
    assert!(matches!(reserving.check_free_space(None), Err(StoreError::NoSpace { .. })));
    assert_eq!(
        BlockStore::open(&dir.path().join("d"), 1).expect("open").min_free_bytes,
        StoreOptions::DEFAULT_MIN_FREE_BYTES
    );
}

#[test]
fn a_disk_that_fills_mid_upload_answers_no_space() {
    let dir = tempfile::tempdir().expect("tmp");
    let store =
        BlockStore::open_faulty(dir.path(), StoreOptions { quota: 1 << 30, min_free_bytes: 1000 }).expect("open");
    let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE).expect("begin");
    w.write(&sample(100_000)).expect("write");
    store.faults.set_available(Some(500_000));
    // Within the claim already held: no need to ask the disk.
    w.write(&sample(10_000)).expect("write");
    match w.write(&sample(2 * CLAIM_STEP as usize)) {
        Err(StoreError::NoSpace { needed, available }) => {
            assert_eq!(available, 500_000);
            assert!(needed > 2 * CLAIM_STEP);
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    drop(w);
    assert_eq!(store.space().expect("space").quota_used_bytes, 0);
    assert!(files_in(&dir.path().join("tmp")).is_empty());
    // A fetch checks the whole dataset up front; so do slot claims.
    let (_, manifest) = upload(&BlockStore::open(&dir.path().join("src"), 1 << 30).expect("open"), &sample(600_000));
    assert!(matches!(store.begin_fetch(&manifest), Err(StoreError::NoSpace { .. })));
    assert!(matches!(store.claim(600_000), Err(StoreError::NoSpace { .. })));
    assert_eq!(store.space().expect("space").quota_used_bytes, 0);
}

#[test]
fn store_files_and_directories_are_private() {
    let status = fs::read_to_string("/proc/self/status").expect("status");
    let umask = status.lines().find_map(|l| l.strip_prefix("Umask:")).map(|u| u.trim().to_owned());
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("store");
    let store = BlockStore::open(&root, 1 << 30).expect("open");
    let (_, manifest) = upload(&store, &sample(70_000));
    let mut w = store.begin_upload(DEFAULT_BLOCK_SIZE).expect("begin");
    w.write(&sample(10)).expect("write");
    let mut partial =
        store.begin_fetch(&Manifest::new(ContentId::for_tree(&[3; 32]), DEFAULT_BLOCK_SIZE, 10)).expect("fetch");
    partial.write_block(0, &[1; 10], leaf_hash(&[1; 10])).expect("block");
    let mode = |p: &Path| fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    for d in [root.clone(), root.join("tmp"), root.join("datasets")] {
        assert_eq!(mode(&d), 0o700, "{} under umask {umask:?}", d.display());
    }
    let mut files = vec![root.join("meta.redb")];
    for sub in ["tmp", "datasets"] {
        files.extend(files_in(&root.join(sub)).iter().map(|n| root.join(sub).join(n)));
    }
    assert_eq!(files.len(), 1 + 4 + 2, "{files:?}");
    for f in &files {
        assert_eq!(mode(f), 0o600, "{} under umask {umask:?}", f.display());
    }
    assert!(store.has_complete(&manifest.tree().expect("tree")).expect("has"));
}
