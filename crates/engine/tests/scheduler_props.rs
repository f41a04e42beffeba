//! Property test: random submit / cancel / drop / step sequences (prompts often sharing a prefix,
//! prefix caching on or off) never leak a block, keep every block's ref count equal to the number
//! of block tables holding it, and every request terminates with exactly the tokens the scripted
//! model dictates (the scripted runner reads the KV slots back, so a wrongly reused block changes
//! the output).

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use rotor_engine::{EngineConfig, EngineCore, ScriptedRunner};
use rotor_protocol::{
    EngineOutput, FinishReason, GenerateRequest, SamplingParams, StopConditions, WireError,
};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const VOCAB: usize = 24;
const CTX: usize = 48;
const STOP_TOKEN: u32 = 5;

#[derive(Debug, Clone)]
enum Op {
    Submit {
        prompt_len: usize,
        max_tokens: u32,
        stop: bool,
        shared: bool,
    },
    Cancel(usize),
    DropReceiver(usize),
    Step(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..40, 1u32..30, any::<bool>(), any::<bool>())
            .prop_map(|(prompt_len, max_tokens, stop, shared)| Op::Submit { prompt_len, max_tokens, stop, shared }),
        1 => (0usize..32).prop_map(Op::Cancel),
        1 => (0usize..32).prop_map(Op::DropReceiver),
        4 => (1usize..4).prop_map(Op::Step),
    ]
}

fn config() -> impl Strategy<Value = EngineConfig> {
    (
        1usize..6,
        1usize..8,
        1usize..48,
        1usize..48,
        2usize..30,
        prop::bool::weighted(0.8),
    )
        .prop_map(
            |(
                max_num_seqs,
                block_size_tokens,
                budget,
                chunk,
                num_blocks,
                enable_prefix_caching,
            )| EngineConfig {
                max_num_seqs,
                max_num_batched_tokens: budget,
                max_prefill_chunk_tokens: chunk,
                block_size_tokens,
                num_blocks,
                enable_prefix_caching,
            },
        )
}

struct Tracked {
    id: String,
    prompt: Vec<u32>,
    max_tokens: u32,
    stop: bool,
    rx: Option<UnboundedReceiver<Result<EngineOutput, WireError>>>,
    cancelled: bool,
}

fn check_invariants(core: &EngineCore, cfg: &EngineConfig) -> Result<(), TestCaseError> {
    let sched = core.scheduler();
    let pool = sched.kv_blocks().pool();
    let mut holders: HashMap<u32, u32> = HashMap::new();
    for seq in sched.running() {
        prop_assert_eq!(
            seq.block_table.len(),
            seq.num_computed.div_ceil(cfg.block_size_tokens)
        );
        prop_assert!(seq.num_cached_blocks <= seq.num_computed / cfg.block_size_tokens);
        let distinct: HashSet<u32> = seq.block_table.iter().copied().collect();
        prop_assert_eq!(
            distinct.len(),
            seq.block_table.len(),
            "a block twice in one table"
        );
        for &b in &seq.block_table {
            *holders.entry(b).or_default() += 1;
        }
    }
    for b in 0..cfg.num_blocks as u32 {
        prop_assert_eq!(
            pool.ref_count(b),
            holders.get(&b).copied().unwrap_or(0),
            "block {}",
            b
        );
    }
    if !cfg.enable_prefix_caching {
        prop_assert_eq!(pool.num_cached(), 0);
        prop_assert!(
            holders.values().all(|&n| n == 1),
            "sharing without prefix caching"
        );
    }
    for seq in sched.waiting() {
        prop_assert!(seq.block_table.is_empty());
        prop_assert_eq!(seq.num_computed, 0);
    }
    prop_assert_eq!(holders.len(), pool.num_used());
    prop_assert_eq!(pool.num_used() + pool.num_free(), cfg.num_blocks);
    prop_assert!(sched.num_running() <= cfg.max_num_seqs);
    Ok(())
}

fn expected(t: &Tracked, window: usize) -> (Vec<u32>, FinishReason) {
    let room = (window - t.prompt.len()).min(t.max_tokens as usize);
    let all = ScriptedRunner::greedy_continuation(&t.prompt, room, VOCAB);
    if t.stop {
        if let Some(i) = all.iter().position(|&x| x == STOP_TOKEN) {
            return (all[..=i].to_vec(), FinishReason::Stop);
        }
    }
    (all, FinishReason::Length)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_leaked_block_and_every_request_terminates(cfg in config(), ops in prop::collection::vec(op(), 1..60)) {
        let mut core = EngineCore::new(Box::new(ScriptedRunner::for_config(&cfg, VOCAB, CTX)), &cfg)
            .expect("valid config");
        let window = CTX.min(cfg.num_blocks * cfg.block_size_tokens);
        let mut tracked: Vec<Tracked> = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Submit { prompt_len, max_tokens, stop, shared } => {
                    let salt = if shared { 0 } else { n * 7 };
                    let prompt: Vec<u32> = (0..prompt_len).map(|i| ((salt + i * 3) % VOCAB) as u32).collect();
                    let id = format!("r{n}");
                    let req = GenerateRequest {
                        task: Default::default(),
                        id: id.clone(),
                        token_ids: prompt.clone(),
                        sampling: SamplingParams::greedy(),
                        stop: StopConditions {
                            max_tokens,
                            stop_token_ids: if stop { vec![STOP_TOKEN] } else { vec![] },
                            ..StopConditions::default()
                        },
                    };
                    let (tx, rx) = unbounded_channel();
                    let accepted = core.submit(req, tx).is_ok();
                    prop_assert_eq!(accepted, prompt_len < window);
                    if accepted {
                        tracked.push(Tracked { id, prompt, max_tokens, stop, rx: Some(rx), cancelled: false });
                    }
                }
                Op::Cancel(i) => {
                    if let Some(t) = tracked.get_mut(i) {
                        t.cancelled |= core.cancel(&t.id);
                    }
                }
                Op::DropReceiver(i) => {
                    if let Some(t) = tracked.get_mut(i) {
                        t.rx = None;
                    }
                }
                Op::Step(k) => {
                    for _ in 0..k {
                        core.step();
                        check_invariants(&core, &cfg)?;
                    }
                }
            }
        }
        let mut steps = 0;
        while core.has_work() {
            prop_assert!(core.step(), "work but no step");
            check_invariants(&core, &cfg)?;
            steps += 1;
            prop_assert!(steps < 10_000, "no termination");
        }
        prop_assert_eq!(core.stats().blocks_used, 0);
        for t in &mut tracked {
            let Some(rx) = t.rx.as_mut() else { continue };
            let mut tokens = Vec::new();
            let mut finish = None;
            while let Ok(item) = rx.try_recv() {
                let out = item.expect("no errors");
                prop_assert!(finish.is_none());
                tokens.extend(out.token_ids);
                finish = out.finish_reason;
            }
            let (want_tokens, want_finish) = expected(t, window);
            if t.cancelled {
                prop_assert_eq!(finish, Some(FinishReason::Cancelled));
                prop_assert!(want_tokens.starts_with(&tokens));
            } else {
                prop_assert_eq!(&tokens, &want_tokens, "request {}", t.id);
                prop_assert_eq!(finish, Some(want_finish));
            }
        }
    }
}
