//! The store against plain models, over random sequences of operations: a map must behave
//! as an insertion-ordered map (re-inserting a deleted key puts it last), a sequence as a
//! `Vec`, whatever rebuilds, deletions and block reuse happen underneath.
#![cfg(not(loom))]

use ferroproc_core::store::{Store, StoreKind};
use ferroproc_core::sync::Owner;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum MapOp {
    Set(u8, Vec<u8>),
    Remove(u8),
    PopLast,
    Clear,
}

fn map_op() -> impl Strategy<Value = MapOp> {
    prop_oneof![
        6 => (any::<u8>(), prop::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(key, value)| MapOp::Set(key, value)),
        3 => any::<u8>().prop_map(MapOp::Remove),
        1 => Just(MapOp::PopLast),
        1 => Just(MapOp::Clear),
    ]
}

#[derive(Debug, Clone)]
enum SeqOp {
    Push(Vec<u8>),
    Set(usize, Vec<u8>),
    Splice(usize, usize, Vec<Vec<u8>>),
}

fn seq_op() -> impl Strategy<Value = SeqOp> {
    let value = || prop::collection::vec(any::<u8>(), 0..100);
    prop_oneof![
        4 => value().prop_map(SeqOp::Push),
        2 => (any::<usize>(), value()).prop_map(|(at, v)| SeqOp::Set(at, v)),
        2 => (any::<usize>(), 0usize..5, prop::collection::vec(value(), 0..5))
            .prop_map(|(at, n, values)| SeqOp::Splice(at, n, values)),
    ]
}

/// The key bytes for a model key: of several lengths, so keys span block classes.
fn key_bytes(key: u8) -> Vec<u8> {
    vec![key; 1 + usize::from(key % 40)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_map_behaves_as_an_insertion_ordered_map(ops in prop::collection::vec(map_op(), 1..400)) {
        let store = Store::create(StoreKind::Map, 1 << 26).unwrap();
        let locked = store.lock(Owner::current(), None).unwrap().unwrap();
        let mut model: Vec<(u8, Vec<u8>)> = Vec::new();
        for op in ops {
            match op {
                MapOp::Set(key, value) => {
                    let existed = locked.map_set(&key_bytes(key), &[key], &value).unwrap();
                    match model.iter_mut().find(|(k, _)| *k == key) {
                        Some(entry) => { prop_assert!(existed); entry.1 = value; }
                        None => { prop_assert!(!existed); model.push((key, value)); }
                    }
                }
                MapOp::Remove(key) => {
                    let mut out = Vec::new();
                    let removed = locked.map_remove(&key_bytes(key), Some(&mut out)).unwrap();
                    match model.iter().position(|(k, _)| *k == key) {
                        Some(at) => { prop_assert!(removed); prop_assert_eq!(out, model.remove(at).1); }
                        None => prop_assert!(!removed),
                    }
                }
                MapOp::PopLast => {
                    let popped = locked.map_pop_last().unwrap();
                    match model.pop() {
                        Some((key, value)) => {
                            let entry = popped.unwrap();
                            prop_assert_eq!(entry.key(), &key_bytes(key)[..]);
                            prop_assert_eq!(entry.value, value);
                        }
                        None => prop_assert!(popped.is_none()),
                    }
                }
                MapOp::Clear => { locked.map_clear().unwrap(); model.clear(); }
            }
            prop_assert_eq!(locked.map_len().unwrap(), model.len() as u64);
        }
        let entries = locked.map_entries().unwrap();
        prop_assert_eq!(entries.len(), model.len());
        for (entry, (key, value)) in entries.iter().zip(&model) {
            prop_assert_eq!(entry.key(), &key_bytes(*key)[..]);
            prop_assert_eq!(entry.extra(), &[*key][..]);
            prop_assert_eq!(&entry.value, value);
            let mut out = Vec::new();
            prop_assert!(locked.map_get(entry.key(), &mut out).unwrap());
            prop_assert_eq!(&out, value);
        }
    }

    #[test]
    fn a_sequence_behaves_as_a_vec(ops in prop::collection::vec(seq_op(), 1..300)) {
        let store = Store::create(StoreKind::Sequence, 1 << 26).unwrap();
        let locked = store.lock(Owner::current(), None).unwrap().unwrap();
        let mut model: Vec<Vec<u8>> = Vec::new();
        for op in ops {
            match op {
                SeqOp::Push(value) => { locked.seq_push(&value).unwrap(); model.push(value); }
                SeqOp::Set(at, value) => {
                    if model.is_empty() {
                        prop_assert!(locked.seq_set(0, &value).is_err());
                    } else {
                        let at = at % model.len();
                        locked.seq_set(at as u64, &value).unwrap();
                        model[at] = value;
                    }
                }
                SeqOp::Splice(at, removed, values) => {
                    let start = at % (model.len() + 1);
                    let stop = (start + removed).min(model.len());
                    let parts: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
                    locked.seq_splice(start as u64, stop as u64, &parts).unwrap();
                    model.splice(start..stop, values);
                }
            }
            prop_assert_eq!(locked.seq_len().unwrap(), model.len() as u64);
        }
        prop_assert_eq!(locked.seq_items().unwrap(), model);
    }
}
