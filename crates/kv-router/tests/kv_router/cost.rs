//! Cost-function terms with exact numbers (block size 4).

use rotor_kv_router::{ActiveLoad, CostFunction};

fn load(prefill_tokens: u64, decode_blocks: u64) -> ActiveLoad {
    ActiveLoad {
        prefill_tokens,
        decode_blocks,
        waiting: 0,
    }
}

#[test]
fn terms_follow_the_formula() {
    let cost = CostFunction {
        block_size_tokens: 4,
        kv_overlap_weight: 1.5,
    };
    // 10 tokens = 3 blocks (one partial); 2 cached blocks leave 2 new tokens; 6 tokens pending.
    let t = cost.terms(10, 2, load(6, 5));
    assert_eq!(t.overlap_blocks, 2);
    assert_eq!(t.prefill_blocks, 2.0);
    assert_eq!(t.decode_blocks, 8.0);
    assert_eq!(t.logit, 11.0);
    assert_eq!(cost.request_blocks(10), 3);
    assert_eq!(cost.request_blocks(8), 2);
}

#[test]
fn no_overlap_and_no_load_costs_the_request_itself() {
    let cost = CostFunction {
        block_size_tokens: 4,
        kv_overlap_weight: 1.0,
    };
    let t = cost.terms(32, 0, load(0, 0));
    assert_eq!(
        (t.prefill_blocks, t.decode_blocks, t.logit),
        (8.0, 8.0, 16.0)
    );
    // Fully cached: no prefill left.
    let t = cost.terms(32, 8, load(0, 0));
    assert_eq!((t.prefill_blocks, t.logit), (0.0, 8.0));
}

#[test]
fn zero_weight_ignores_prefill() {
    let cost = CostFunction {
        block_size_tokens: 4,
        kv_overlap_weight: 0.0,
    };
    let t = cost.terms(32, 0, load(400, 3));
    assert_eq!(t.prefill_blocks, 108.0);
    assert_eq!(t.logit, 11.0);
}
