use super::*;

fn me() -> Owner {
    Owner::current()
}

fn map() -> Store {
    Store::create(StoreKind::Map, 1 << 24).unwrap()
}

fn get(locked: &Locked<'_>, key: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    locked.map_get(key, &mut out).unwrap().then_some(out)
}

#[test]
fn a_map_sets_gets_updates_and_removes() {
    let store = map();
    let locked = store.lock(me(), None).unwrap().unwrap();
    assert!(!locked.map_set(b"a", b"", b"1").unwrap());
    assert!(!locked.map_set(b"b", b"x", b"2").unwrap());
    assert!(locked.map_set(b"a", b"ignored", b"one").unwrap());
    assert_eq!(get(&locked, b"a").unwrap(), b"one");
    assert_eq!(get(&locked, b"b").unwrap(), b"2");
    assert_eq!(get(&locked, b"c"), None);
    assert_eq!(locked.map_len().unwrap(), 2);
    let mut out = Vec::new();
    assert!(locked.map_remove(b"a", Some(&mut out)).unwrap());
    assert_eq!(out, b"one");
    assert!(!locked.map_remove(b"a", None).unwrap());
    assert_eq!(locked.map_len().unwrap(), 1);
    let entries = locked.map_entries().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].key(), b"b");
    assert_eq!(entries[0].extra(), b"x");
}

#[test]
fn a_map_keeps_insertion_order_across_rebuilds_and_deletes() {
    let store = map();
    let locked = store.lock(me(), None).unwrap().unwrap();
    for i in 0..5000u32 {
        locked
            .map_set(&i.to_le_bytes(), b"", &(i * 2).to_le_bytes())
            .unwrap();
    }
    for i in (0..5000u32).step_by(3) {
        assert!(locked.map_remove(&i.to_le_bytes(), None).unwrap());
    }
    locked.map_set(&0u32.to_le_bytes(), b"", b"back").unwrap();
    let keys: Vec<u32> = locked
        .map_entries()
        .unwrap()
        .iter()
        .map(|entry| u32::from_le_bytes(entry.key().try_into().unwrap()))
        .collect();
    let mut expected: Vec<u32> = (0..5000).filter(|i| i % 3 != 0).collect();
    expected.push(0);
    assert_eq!(keys, expected);
    assert_eq!(locked.map_len().unwrap(), expected.len() as u64);
    for i in (1..5000u32).filter(|i| i % 3 != 0) {
        assert_eq!(
            get(&locked, &i.to_le_bytes()).unwrap(),
            (i * 2).to_le_bytes()
        );
    }
    let last = locked.map_pop_last().unwrap().unwrap();
    assert_eq!(last.key(), 0u32.to_le_bytes());
    assert_eq!(last.value, b"back");
}

#[test]
fn freed_blocks_are_reused_so_churn_does_not_grow_the_heap() {
    let store = map();
    let locked = store.lock(me(), None).unwrap().unwrap();
    for round in 0..50u32 {
        for i in 0..200u32 {
            locked
                .map_set(&i.to_le_bytes(), b"", &[round as u8; 100])
                .unwrap();
        }
        if round == 1 {
            locked.map_clear().unwrap();
        }
    }
    let top = Region::new(store.segment()).word(TOP).unwrap().load();
    assert!(top < 200_000, "heap grew to {top}");
}

#[test]
fn a_full_store_says_so_and_stays_usable() {
    let store = Store::create(StoreKind::Map, 100 * 1024).unwrap();
    let locked = store.lock(me(), None).unwrap().unwrap();
    let big = vec![7u8; 40_000];
    locked.map_set(b"big", b"", &big).unwrap();
    let error = locked.map_set(b"other", b"", &big).unwrap_err();
    assert!(matches!(error, StoreError::Full { .. }), "{error:?}");
    assert_eq!(get(&locked, b"big").unwrap(), big);
    assert_eq!(locked.map_len().unwrap(), 1);
}

#[test]
fn a_sequence_pushes_splices_and_sets() {
    let store = Store::create(StoreKind::Sequence, 1 << 20).unwrap();
    let locked = store.lock(me(), None).unwrap().unwrap();
    for i in 0..20u8 {
        locked.seq_push(&[i]).unwrap();
    }
    locked.seq_splice(2, 5, &[b"x", b"y"]).unwrap();
    locked.seq_set(0, b"first").unwrap();
    locked.seq_splice(19, 19, &[b"end"]).unwrap();
    let items = locked.seq_items().unwrap();
    assert_eq!(items.len(), 20);
    assert_eq!(items[0], b"first");
    assert_eq!(items[2], b"x");
    assert_eq!(items[3], b"y");
    assert_eq!(items[4], [5]);
    assert_eq!(items[19], b"end");
    let mut out = Vec::new();
    locked.seq_get(19, &mut out).unwrap();
    assert_eq!(out, b"end");
    assert!(matches!(
        locked.seq_get(20, &mut Vec::new()),
        Err(StoreError::OutOfRange { index: 20, len: 20 })
    ));
    assert!(matches!(
        locked.map_len(),
        Err(StoreError::WrongKind { .. })
    ));
}

#[test]
fn the_lock_is_recursive_and_released_by_the_guard() {
    let store = map();
    let outer = store.lock(me(), None).unwrap().unwrap();
    let inner = store.try_lock(me()).unwrap().unwrap();
    drop(inner);
    assert!(store.is_locked_by(me()));
    outer.keep();
    assert!(store.is_locked_by(me()));
    store.unlock(me()).unwrap();
    assert!(!store.is_locked_by(me()));
}

#[test]
fn an_attached_store_is_the_same_store() {
    let store = map();
    store
        .lock(me(), None)
        .unwrap()
        .unwrap()
        .map_set(b"k", b"", b"v")
        .unwrap();
    let other = Store::attach(Source::Fd(store.segment().fd())).unwrap();
    assert_eq!(other.id(), store.id());
    let locked = other.lock(me(), None).unwrap().unwrap();
    assert_eq!(get(&locked, b"k").unwrap(), b"v");
}

#[test]
fn hashes_depend_on_the_seed_and_every_byte() {
    assert_ne!(key_hash(1, b"abc"), key_hash(2, b"abc"));
    assert_ne!(key_hash(1, b"abc"), key_hash(1, b"abd"));
    assert_ne!(key_hash(1, b"a"), key_hash(1, b"a\0"));
    assert_eq!(key_hash(9, b"same key"), key_hash(9, b"same key"));
}

#[test]
fn a_repair_gives_back_the_blocks_a_dead_holder_left_behind() {
    for kind in [StoreKind::Map, StoreKind::Sequence] {
        let store = Store::create(kind, 1 << 22).unwrap();
        let locked = store.lock(me(), None).unwrap().unwrap();
        for i in 0..100u32 {
            match kind {
                StoreKind::Map => {
                    locked.map_set(&i.to_le_bytes(), b"", &[7; 50]).unwrap();
                }
                StoreKind::Sequence => locked.seq_push(&[7; 50]).unwrap(),
            }
        }
        // What a holder killed between taking blocks and linking them leaves.
        let heap = locked.heap();
        let orphans = [
            heap.alloc(10).unwrap(),
            heap.alloc(3000).unwrap(),
            heap.alloc(100).unwrap(),
        ];
        assert_eq!(locked.leaked_blocks().unwrap(), orphans.len());
        locked.repair().unwrap();
        assert_eq!(locked.leaked_blocks().unwrap(), 0);
        // The structure is untouched, and the orphans are reused.
        match kind {
            StoreKind::Map => assert_eq!(locked.map_len().unwrap(), 100),
            StoreKind::Sequence => assert_eq!(locked.seq_len().unwrap(), 100),
        }
        let free = heap.free_blocks(usize::MAX).unwrap();
        assert!(orphans.iter().all(|block| free.contains(block)));
        assert_eq!(store.recoveries().unwrap(), 1);
    }
}
