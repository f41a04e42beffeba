//! Prefix caching in the scheduler, step by step through `EngineCore` with the scripted runner
//! (which reads every KV slot back, so a wrongly reused block changes the output or fails the
//! step): exact cached token counts, the chunks the runner sees, shared blocks, recompute after
//! preemption, and the KV event stream.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rotor_engine::{EngineConfig, EngineCore, ScriptedRunner};
use rotor_protocol::{
    EngineOutput, FinishReason, GenerateRequest, KvEvent, KvEventData, SamplingParams,
    StopConditions, StoredBlock, WireError,
};
use rotor_tokens::{local_block_hashes, sequence_hashes};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const VOCAB: usize = 1000;
const CTX: usize = 4096;
const BS: usize = 4;

type Stream = UnboundedReceiver<Result<EngineOutput, WireError>>;

fn cfg(num_blocks: usize, enable_prefix_caching: bool) -> EngineConfig {
    EngineConfig {
        max_num_seqs: 8,
        max_num_batched_tokens: 64,
        max_prefill_chunk_tokens: 64,
        block_size_tokens: BS,
        num_blocks,
        enable_prefix_caching,
    }
}

fn core(cfg: &EngineConfig) -> EngineCore {
    EngineCore::new(Box::new(ScriptedRunner::for_config(cfg, VOCAB, CTX)), cfg)
        .expect("valid config")
}

fn prompt(seed: u32, len: usize) -> Vec<u32> {
    (0..len as u32)
        .map(|i| (seed * 131 + i * 7) % VOCAB as u32)
        .collect()
}

fn submit(core: &mut EngineCore, id: &str, prompt: &[u32], max_tokens: u32) -> Stream {
    submit_with_siblings(core, id, prompt, max_tokens, 0)
}

/// Tokens, finish reason and the first output's `cached_prompt_tokens`.
fn drain(rx: &mut Stream) -> (Vec<u32>, Option<FinishReason>, Option<u32>) {
    let mut tokens = Vec::new();
    let mut finish = None;
    let mut cached = None;
    let mut first = true;
    while let Ok(item) = rx.try_recv() {
        let out = item.expect("no error expected");
        if first {
            cached = out.cached_prompt_tokens;
            first = false;
        } else {
            assert_eq!(
                out.cached_prompt_tokens, None,
                "only the first output reports it"
            );
        }
        tokens.extend(out.token_ids);
        finish = out.finish_reason;
    }
    (tokens, finish, cached)
}

fn run_to_completion(core: &mut EngineCore) {
    let mut steps = 0;
    while core.has_work() {
        assert!(core.step(), "a core with work must make a step");
        steps += 1;
        assert!(steps < 10_000, "engine does not terminate");
    }
}

fn chunks(core: &EngineCore) -> Vec<(String, usize, usize, bool)> {
    core.last_step()
        .chunks
        .iter()
        .map(|c| (c.request_id.to_string(), c.start_pos, c.len, c.want_logits))
        .collect()
}

fn expect_greedy(rx: &mut Stream, p: &[u32], n: usize, cached: u32) {
    assert_eq!(
        drain(rx),
        (
            ScriptedRunner::greedy_continuation(p, n, VOCAB),
            Some(FinishReason::Length),
            Some(cached)
        )
    );
}

#[test]
fn a_repeated_prompt_skips_its_cached_blocks() {
    let mut core = core(&cfg(64, true));
    let p = prompt(1, 10);
    let mut a = submit(&mut core, "a", &p, 3);
    run_to_completion(&mut core);
    expect_greedy(&mut a, &p, 3, 0);
    let mut b = submit(&mut core, "b", &p, 3);
    core.step();
    // Two full blocks (8 tokens) come from the cache; the runner sees only tokens 8 and 9.
    assert_eq!(chunks(&core), vec![("b".into(), 8, 2, true)]);
    run_to_completion(&mut core);
    expect_greedy(&mut b, &p, 3, 8);
    let s = core.stats();
    assert_eq!(
        (
            s.prefix_cache_queries_tokens,
            s.prefix_cache_hit_tokens,
            s.blocks_used
        ),
        (20, 8, 0)
    );
    // A ran 12 tokens through the model (10 prompt + 2 generated): its third block, holding two
    // generated tokens, is cached too, so a follow-up turn reuses 12 tokens.
    let mut follow_up = p.clone();
    follow_up.extend(ScriptedRunner::greedy_continuation(&p, 3, VOCAB));
    follow_up.push(77);
    let mut c = submit(&mut core, "c", &follow_up, 2);
    core.step();
    assert_eq!(chunks(&core), vec![("c".into(), 12, 2, true)]);
    run_to_completion(&mut core);
    expect_greedy(&mut c, &follow_up, 2, 12);
    // a: 10 + 1 + 1, b: 2 + 1 + 1, c: 2 + 1.
    assert_eq!(core.stats().tokens_processed, 12 + 4 + 3);
}

#[test]
fn a_prompt_ending_on_a_block_boundary_copies_its_cached_last_block() {
    let mut core = core(&cfg(64, true));
    let p = prompt(2, 8);
    let mut a = submit(&mut core, "a", &p, 2);
    run_to_completion(&mut core);
    expect_greedy(&mut a, &p, 2, 0);
    let mut b = submit(&mut core, "b", &p, 2);
    core.step();
    // Block 0 is reused; block 1 is cached too but must not be written to, so b gets a copy of
    // it and computes only the last prompt token (for its logits).
    assert_eq!(chunks(&core), vec![("b".into(), 7, 1, true)]);
    run_to_completion(&mut core);
    expect_greedy(&mut b, &p, 2, 7);
    let s = core.stats();
    assert_eq!(
        (
            s.kv_copy_on_write_blocks,
            s.kv_copy_on_write_tokens,
            s.blocks_used
        ),
        (1, 3, 0)
    );
    // The source block is still cached: a third request copies it again.
    let mut c = submit(&mut core, "c", &p, 2);
    run_to_completion(&mut core);
    expect_greedy(&mut c, &p, 2, 7);
    assert_eq!(core.stats().kv_copy_on_write_blocks, 2);
}

fn submit_with_siblings(
    core: &mut EngineCore,
    id: &str,
    prompt: &[u32],
    max_tokens: u32,
    siblings: u32,
) -> Stream {
    let req = GenerateRequest {
        task: Default::default(),
        id: id.into(),
        token_ids: prompt.to_vec(),
        sampling: SamplingParams {
            siblings,
            ..SamplingParams::greedy()
        },
        stop: StopConditions {
            max_tokens,
            ..StopConditions::default()
        },
    };
    let (tx, rx) = unbounded_channel();
    core.submit(req, tx).expect("request is valid");
    rx
}

/// The `n > 1` pattern: a leader announcing two siblings runs to its first output; the siblings
/// then come with the same prompt. Each reuses the two full blocks, gets a copy of the leader's
/// partly filled third block (3 prompt tokens) and computes only the last prompt token. The
/// scripted runner checks every KV slot each sequence reads, so a wrong copy fails the step.
#[test]
fn siblings_copy_the_leaders_partly_filled_last_block() {
    let mut core = core(&cfg(64, true));
    let p = prompt(3, 11);
    let mut leader = submit_with_siblings(&mut core, "leader", &p, 4, 2);
    core.step();
    assert_eq!(chunks(&core), vec![("leader".into(), 0, 11, true)]);
    assert_eq!(core.scheduler().kv_blocks().num_kept_tails(), 1);
    // The leader goes on decoding (writing slots 3.. of the kept block) before they come.
    core.step();
    let mut s1 = submit_with_siblings(&mut core, "s1", &p, 4, 0);
    let mut s2 = submit_with_siblings(&mut core, "s2", &p, 4, 0);
    core.step();
    assert_eq!(
        chunks(&core),
        vec![
            ("leader".into(), 12, 1, true),
            ("s1".into(), 10, 1, true),
            ("s2".into(), 10, 1, true)
        ]
    );
    // Both expected siblings came: the kept block is no longer kept.
    assert_eq!(core.scheduler().kv_blocks().num_kept_tails(), 0);
    run_to_completion(&mut core);
    expect_greedy(&mut leader, &p, 4, 0);
    expect_greedy(&mut s1, &p, 4, 10);
    expect_greedy(&mut s2, &p, 4, 10);
    let s = core.stats();
    assert_eq!(
        (
            s.kv_copy_on_write_blocks,
            s.kv_copy_on_write_tokens,
            s.blocks_used
        ),
        (2, 4, 0)
    );
    // leader: 11 + 3 decode; each sibling: 1 + 3.
    assert_eq!(s.tokens_processed, 14 + 2 * 4);
}

/// A sibling whose prompt differs from the leader's only in the partly filled block must not
/// take the kept copy; a one-token tail is not kept at all (it is recomputed anyway).
#[test]
fn only_an_identical_prompt_takes_the_kept_block() {
    let mut core = core(&cfg(64, true));
    let p = prompt(4, 10);
    let mut leader = submit_with_siblings(&mut core, "leader", &p, 2, 1);
    core.step();
    assert_eq!(core.scheduler().kv_blocks().num_kept_tails(), 1);
    let mut other = p.clone();
    other[9] = (other[9] + 1) % VOCAB as u32;
    let mut o = submit_with_siblings(&mut core, "other", &other, 2, 0);
    core.step();
    assert!(chunks(&core).contains(&("other".into(), 8, 2, true)));
    assert_eq!(core.scheduler().kv_blocks().num_kept_tails(), 1);
    run_to_completion(&mut core);
    expect_greedy(&mut leader, &p, 2, 0);
    expect_greedy(&mut o, &other, 2, 8);
    assert_eq!(core.stats().kv_copy_on_write_blocks, 0);
    // The kept block is released at its expiry, leaking nothing.
    assert_eq!(core.stats().blocks_used, 1);
    core.expire_kept_tails(Instant::now() + Duration::from_secs(11));
    assert_eq!(core.scheduler().kv_blocks().num_kept_tails(), 0);
    assert_eq!(core.stats().blocks_used, 0);
    let q = prompt(5, 9);
    let _ = submit_with_siblings(&mut core, "one", &q, 1, 3);
    run_to_completion(&mut core);
    assert_eq!(core.scheduler().kv_blocks().num_kept_tails(), 0);
}

/// Kept blocks are the first thing given back when the pool runs short: a request that needs
/// every block is admitted (no refusal, no preemption) by releasing them.
#[test]
fn kept_blocks_give_way_when_the_pool_runs_short() {
    let mut core = core(&cfg(8, true));
    let p = prompt(6, 6);
    let mut leader = submit_with_siblings(&mut core, "leader", &p, 1, 3);
    run_to_completion(&mut core);
    expect_greedy(&mut leader, &p, 1, 0);
    assert_eq!(core.scheduler().kv_blocks().num_kept_tails(), 1);
    assert_eq!(core.stats().blocks_used, 1);
    let big = prompt(7, 31);
    let mut b = submit(&mut core, "big", &big, 1);
    run_to_completion(&mut core);
    expect_greedy(&mut b, &big, 1, 0);
    let s = core.stats();
    assert_eq!((s.preemptions, s.blocks_used), (0, 0));
    assert_eq!(core.scheduler().kv_blocks().num_kept_tails(), 0);
}

#[test]
fn with_prefix_caching_off_every_prompt_is_computed_in_full() {
    let mut core = core(&cfg(64, false));
    let p = prompt(1, 10);
    let mut a = submit(&mut core, "a", &p, 3);
    run_to_completion(&mut core);
    let mut b = submit(&mut core, "b", &p, 3);
    core.step();
    assert_eq!(chunks(&core), vec![("b".into(), 0, 10, true)]);
    run_to_completion(&mut core);
    expect_greedy(&mut a, &p, 3, 0);
    expect_greedy(&mut b, &p, 3, 0);
    let s = core.stats();
    assert_eq!(
        (s.prefix_cache_queries_tokens, s.prefix_cache_hit_tokens),
        (0, 0)
    );
    assert_eq!(core.subscribe_kv_events().read().events, vec![]);
}

#[test]
fn concurrent_sequences_hold_a_shared_prefix_once() {
    let mut core = core(&cfg(64, true));
    let pa = prompt(3, 12);
    let mut a = submit(&mut core, "a", &pa, 6);
    core.step(); // a: 0..12, three blocks, all full and cached.
    let mut pb = pa[..8].to_vec();
    pb.extend([5, 6, 7, 8, 9]);
    let mut b = submit(&mut core, "b", &pb, 4);
    core.step();
    assert_eq!(
        chunks(&core),
        vec![("a".into(), 12, 1, true), ("b".into(), 8, 5, true)]
    );
    // a: 4 blocks; b: 2 shared with a + 2 of its own.
    assert_eq!(core.stats().blocks_used, 6);
    let pool = core.scheduler().kv_blocks().pool();
    let tables: Vec<Vec<u32>> = core
        .scheduler()
        .running()
        .iter()
        .map(|s| s.block_table.clone())
        .collect();
    assert_eq!(tables, vec![vec![0, 1, 2, 3], vec![0, 1, 4, 5]]);
    let refs: Vec<u32> = (0..6).map(|b| pool.ref_count(b)).collect();
    assert_eq!(refs, vec![2, 2, 1, 1, 1, 1]);
    run_to_completion(&mut core);
    expect_greedy(&mut a, &pa, 6, 0);
    expect_greedy(&mut b, &pb, 4, 8);
    assert_eq!(core.stats().blocks_used, 0);
}

#[test]
fn a_preempted_sequence_recomputes_only_what_left_the_cache() {
    // 3 blocks of 4: a and b (prompt 4 each) both need a second block in step 2.
    let mut core = core(&cfg(3, true));
    let pa = prompt(1, 4);
    let pb = prompt(2, 4);
    let mut a = submit(&mut core, "a", &pa, 3);
    let mut b = submit(&mut core, "b", &pb, 3);
    core.step();
    core.step();
    assert_eq!(core.last_step().preempted, vec![Arc::<str>::from("b")]);
    core.step(); // a finishes; b cannot fit yet (its cached block is the only free one).
    assert_eq!(chunks(&core), vec![("a".into(), 5, 1, true)]);
    core.step();
    // b = prompt + 1 generated token: its cached first block is reused, only position 4 runs.
    assert_eq!(chunks(&core), vec![("b".into(), 4, 1, true)]);
    run_to_completion(&mut core);
    expect_greedy(&mut a, &pa, 3, 0);
    // The first output was sent before the preemption, when nothing was cached.
    expect_greedy(&mut b, &pb, 3, 0);
    let s = core.stats();
    // First admissions: a and b, 4 prompt tokens each, nothing cached. b's re-admission (5
    // tokens, its own first block cached) is counted apart, so the hit rate stays that of
    // first admissions.
    assert_eq!(
        (
            s.preemptions,
            s.prefix_cache_queries_tokens,
            s.prefix_cache_hit_tokens,
            s.prefix_cache_recompute_queries_tokens,
            s.prefix_cache_recompute_hit_tokens
        ),
        (1, 4 + 4, 0, 5, 4)
    );
}

#[test]
fn kv_events_report_stored_and_evicted_blocks_with_contiguous_ids() {
    let mut core = core(&cfg(3, true));
    let mut reader = core.subscribe_kv_events();
    let pa = prompt(1, 8);
    let pb = prompt(2, 8);
    let stored = |p: &[u32]| {
        KvEventData::stored(
            None,
            sequence_hashes(p, BS)
                .into_iter()
                .zip(local_block_hashes(p, BS))
                .map(|(block_hash, tokens_hash)| StoredBlock {
                    block_hash,
                    tokens_hash,
                })
                .collect(),
        )
    };
    let _a = submit(&mut core, "a", &pa, 1);
    run_to_completion(&mut core);
    let batch = reader.read();
    assert_eq!(
        (batch.events.clone(), batch.missed, batch.next_cursor),
        (
            vec![KvEvent {
                event_id: 0,
                data: stored(&pa)
            }],
            0,
            1
        )
    );
    // b needs two blocks: the never-used block 2, then a's tail block 1 (evicted).
    let _b = submit(&mut core, "b", &pb, 1);
    run_to_completion(&mut core);
    let batch = reader.read();
    assert_eq!(
        batch.events,
        vec![
            KvEvent {
                event_id: 1,
                data: KvEventData::removed(vec![sequence_hashes(&pa, BS)[1]])
            },
            KvEvent {
                event_id: 2,
                data: stored(&pb)
            },
        ]
    );
    assert_eq!(core.stats().prefix_cache_evictions, 1);
    assert_eq!(reader.read().events, vec![]);
}
