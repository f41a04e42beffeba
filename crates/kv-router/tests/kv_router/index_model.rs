//! Property: after any event stream, `PrefixIndex` answers like a naive per-worker set model.

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use rotor_kv_router::PrefixIndex;

use crate::events::{cleared, removed, stored};

#[derive(Debug, Clone)]
enum Op {
    Store(u64, Vec<u64>),
    Remove(u64, Vec<u64>),
    Clear(u64),
    RemoveWorker(u64),
    Resync(u64, Vec<u64>),
}

fn op() -> impl Strategy<Value = Op> {
    let worker = 0u64..6;
    let hashes = prop::collection::vec(0u64..24, 0..8);
    prop_oneof![
        5 => (worker.clone(), hashes.clone()).prop_map(|(w, h)| Op::Store(w, h)),
        3 => (worker.clone(), hashes.clone()).prop_map(|(w, h)| Op::Remove(w, h)),
        1 => worker.clone().prop_map(Op::Clear),
        1 => worker.clone().prop_map(Op::RemoveWorker),
        1 => (worker, hashes).prop_map(|(w, h)| Op::Resync(w, h)),
    ]
}

fn naive_overlap(held: &HashSet<u64>, query: &[u64]) -> usize {
    query.iter().take_while(|h| held.contains(h)).count()
}

proptest! {
    #[test]
    fn index_matches_a_naive_model(
        ops in prop::collection::vec(op(), 0..60),
        queries in prop::collection::vec(prop::collection::vec(0u64..24, 0..10), 1..8),
    ) {
        let mut index = PrefixIndex::new();
        let mut model: HashMap<u64, HashSet<u64>> = HashMap::new();
        let mut next_id: HashMap<u64, u64> = HashMap::new();
        for op in ops {
            match op {
                Op::Store(w, h) => {
                    let id = next_id.entry(w).or_insert(0);
                    index.apply(&stored(w, *id, None, &h)).unwrap();
                    *id += 1;
                    model.entry(w).or_default().extend(h);
                }
                Op::Remove(w, h) => {
                    let id = next_id.entry(w).or_insert(0);
                    index.apply(&removed(w, *id, &h)).unwrap();
                    *id += 1;
                    let set = model.entry(w).or_default();
                    for x in h {
                        set.remove(&x);
                    }
                }
                Op::Clear(w) => {
                    let id = next_id.entry(w).or_insert(0);
                    index.apply(&cleared(w, *id)).unwrap();
                    *id += 1;
                    model.entry(w).or_default().clear();
                }
                Op::RemoveWorker(w) => {
                    index.remove_worker(w);
                    model.remove(&w);
                    next_id.remove(&w);
                }
                Op::Resync(w, h) => {
                    index.resync_worker(w, h.iter().copied(), 100);
                    next_id.insert(w, 100);
                    model.insert(w, h.into_iter().collect());
                }
            }
        }
        for query in queries {
            let found = index.find_matches(&query);
            for w in 0u64..6 {
                let want = model.get(&w).map_or(0, |held| naive_overlap(held, &query));
                prop_assert_eq!(found.get(w), want, "worker {} query {:?}", w, query);
            }
        }
        let distinct: HashSet<u64> = model.values().flatten().copied().collect();
        prop_assert_eq!(index.distinct_blocks(), distinct.len());
        for (w, held) in &model {
            prop_assert_eq!(index.worker_block_count(*w), held.len());
        }
    }
}
