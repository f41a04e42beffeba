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
        queue_weight: 1.0,
    };
    // 10 tokens = 3 blocks (one partial); 2 cached blocks leave 2 new tokens; 6 tokens pending.
    // The 2 cached blocks are shared, so the request adds 1 block to the 5 in use.
    let t = cost.terms(10, 2, load(6, 5));
    assert_eq!(t.overlap_blocks, 2);
    assert_eq!(t.prefill_blocks, 2.0);
    assert_eq!(t.decode_blocks, 6.0);
    assert_eq!(t.logit, 9.0);
    assert_eq!(cost.new_blocks(10, 2), 1);
    assert_eq!(cost.new_blocks(10, 0), 3);
    assert_eq!(cost.request_blocks(10), 3);
    assert_eq!(cost.request_blocks(8), 2);
}

#[test]
fn no_overlap_and_no_load_costs_the_request_itself() {
    let cost = CostFunction {
        block_size_tokens: 4,
        kv_overlap_weight: 1.0,
        queue_weight: 1.0,
    };
    let t = cost.terms(32, 0, load(0, 0));
    assert_eq!(
        (t.prefill_blocks, t.decode_blocks, t.logit),
        (8.0, 8.0, 16.0)
    );
    // Fully cached: no prefill left, and no block the worker does not already hold.
    let t = cost.terms(32, 8, load(0, 0));
    assert_eq!(
        (t.prefill_blocks, t.decode_blocks, t.logit),
        (0.0, 0.0, 0.0)
    );
}

#[test]
fn zero_weight_ignores_prefill() {
    let cost = CostFunction {
        block_size_tokens: 4,
        kv_overlap_weight: 0.0,
        queue_weight: 1.0,
    };
    let t = cost.terms(32, 0, load(400, 3));
    assert_eq!(t.prefill_blocks, 108.0);
    assert_eq!(t.logit, 11.0);
}

#[test]
fn shared_prefix_blocks_do_not_count_as_load_where_they_live() {
    // A conversation's 100-block prefix lives on worker A, which runs one of its requests
    // (104 blocks in use). Worker B is idle. A 104-block request of the same conversation:
    let cost = CostFunction {
        block_size_tokens: 16,
        kv_overlap_weight: 1.0,
        queue_weight: 1.0,
    };
    let on_a = cost.terms(104 * 16, 100, load(0, 104));
    let on_b = cost.terms(104 * 16, 0, load(0, 0));
    // A: 4 prefill + (104 + 4) decode = 112; B: 104 prefill + 104 decode = 208.
    assert_eq!((on_a.logit, on_b.logit), (112.0, 208.0));
}

#[test]
fn queue_weight_scales_only_the_work_already_waiting() {
    // A 64-block request (block size 16). Worker A holds 48 of its blocks but has 1,024 tokens
    // (64 blocks) queued for prefill; worker B holds nothing and has no queue. Both run 10
    // decode blocks. Weight 4.
    let cost = |queue_weight| CostFunction {
        block_size_tokens: 16,
        kv_overlap_weight: 4.0,
        queue_weight,
    };
    let (tokens, on_a, on_b) = (64 * 16, load(1024, 10), load(0, 10));
    // q = 1: A = 4·(16 + 64) + (10 + 16) = 346, B = 4·64 + (10 + 64) = 330: B wins, because
    // A's queue (64 blocks) is longer than the 48 cached blocks it would save.
    let full = cost(1.0);
    let (a, b) = (full.terms(tokens, 48, on_a), full.terms(tokens, 0, on_b));
    assert_eq!((a.prefill_blocks, a.logit, b.logit), (80.0, 346.0, 330.0));
    // q = 0.5: A = 4·(16 + 32) + 26 = 218 < B = 330: the request stays with its cache.
    let half = cost(0.5);
    let (a, b) = (half.terms(tokens, 48, on_a), half.terms(tokens, 0, on_b));
    assert_eq!((a.prefill_blocks, a.logit, b.logit), (48.0, 218.0, 330.0));
    // q = 0 ignores queues: only the request's own uncached work and the decode blocks count.
    let none = cost(0.0);
    assert_eq!(none.terms(tokens, 48, on_a).logit, 4.0 * 16.0 + 26.0);
    // The queue never changes the decode term.
    assert_eq!(a.decode_blocks, full.terms(tokens, 48, on_a).decode_blocks);
}
