//! No allocation per token in the decode loop.
//!
//! A counting global allocator watches every thread of this test binary (the engine's caller and
//! the model's pool workers) while `EngineCore` steps a batch of decoding sequences on the real
//! model (SmolLM2-135M-Instruct Q4_1) with the default model's sampling (temperature 0.2, top-p
//! 0.9). A first batch of the same shape warms every buffer up; the second batch is measured.
//!
//! A decode step (scheduler, sampler, runner, forward pass, the output itself — its `token_ids`
//! hold one id inline — and the output channel) must not allocate. What remains is per request
//! or per block, never per token: tokio's unbounded channel allocates a second 32-slot block at a
//! request's 33rd output and recycles its two blocks from then on; a step in which a sequence
//! crosses into a new KV block allocates the `Vec` returned by
//! `rotor_kv_cache::BlockPool::allocate`. The measured window below stays inside one block per
//! sequence, and `crossing_a_block_boundary_costs_one_allocation_per_sequence` pins the
//! per-block allocation down exactly.
//!
//! The model is found via `ROTOR_TEST_MODEL`, else the default cache path; the test FAILS if it
//! is missing. Both tests share the allocator counters, so they run one after the other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rotor_engine::{EngineConfig, EngineCore, NativeRunner, OutputStream};
use rotor_model::{GgufFile, KvDtype, LlamaModel, LoadOptions};
use rotor_protocol::{GenerateRequest, SamplingParams, StopConditions};
use tokio::sync::mpsc::unbounded_channel;

const BATCH: usize = 4;
const PROMPT_LEN: usize = 20;

struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Allocations (and reallocations) of exactly one `u32`: an output's `token_ids`.
static ONE_U32: AtomicUsize = AtomicUsize::new(0);
/// Every other allocation, with the sizes of the first few for the failure message.
static OTHER: AtomicUsize = AtomicUsize::new(0);
static OTHER_SIZES: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];

fn record(layout: Layout) {
    if !COUNTING.load(Ordering::Relaxed) {
        return;
    }
    if layout.size() == 4 && layout.align() == 4 {
        ONE_U32.fetch_add(1, Ordering::Relaxed);
    } else {
        let i = OTHER.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = OTHER_SIZES.get(i) {
            slot.store(layout.size(), Ordering::Relaxed);
        }
    }
}

// SAFETY: forwards every call to the system allocator unchanged; counting touches only atomics.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(Layout::from_size_align(new_size, layout.align()).expect("valid layout"));
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Serialises the tests: they share the counters.
static SERIAL: Mutex<()> = Mutex::new(());

/// Allocations seen while counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    one_u32: usize,
    other: usize,
}

fn count_during(f: impl FnOnce()) -> (Counts, Vec<usize>) {
    ONE_U32.store(0, Ordering::SeqCst);
    OTHER.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    let counts = Counts {
        one_u32: ONE_U32.load(Ordering::SeqCst),
        other: OTHER.load(Ordering::SeqCst),
    };
    let sizes = OTHER_SIZES
        .iter()
        .take(counts.other)
        .map(|s| s.load(Ordering::SeqCst))
        .collect();
    (counts, sizes)
}

fn load_model() -> Arc<LlamaModel> {
    let path = rotor_testing::model_path();
    let gguf = GgufFile::open(&path).expect("the test model parses");
    // Two threads, so the pool workers' allocations are counted too.
    Arc::new(LlamaModel::load(&gguf, LoadOptions { threads: 2 }).expect("the test model loads"))
}

/// An engine on the real model; `block_size_tokens` decides where block boundaries fall.
fn core(model: &Arc<LlamaModel>, block_size_tokens: usize, prefix_caching: bool) -> EngineCore {
    let cfg = EngineConfig {
        max_num_seqs: BATCH,
        max_num_batched_tokens: 256,
        max_prefill_chunk_tokens: 256,
        block_size_tokens,
        num_blocks: 4096 / block_size_tokens,
        enable_prefix_caching: prefix_caching,
    };
    let runner = NativeRunner::new(model.clone(), &cfg, KvDtype::F32);
    EngineCore::new(Box::new(runner), &cfg).expect("engine core")
}

/// Submits `BATCH` requests of `PROMPT_LEN` tokens generating `new_tokens` each, with the
/// default model's sampling, and steps until every one of them is decoding.
fn start_batch(core: &mut EngineCore, batch: u32, new_tokens: u32) -> Vec<OutputStream> {
    let mut streams = Vec::new();
    for i in 0..BATCH as u32 {
        let (tx, rx) = unbounded_channel();
        let salt = batch * 100 + i;
        let req = GenerateRequest {
            task: Default::default(),
            id: format!("b{batch}-{i}"),
            token_ids: (0..PROMPT_LEN as u32)
                .map(|t| 300 + (t * 389 + salt * 7919) % 20_000)
                .collect(),
            sampling: SamplingParams {
                temperature: 0.2,
                top_p: 0.9,
                seed: Some(u64::from(salt)),
                ..SamplingParams::default()
            },
            stop: StopConditions {
                max_tokens: new_tokens,
                ignore_eos: true,
                ..StopConditions::default()
            },
        };
        core.submit(req, tx).expect("valid request");
        streams.push(rx);
    }
    // Step 1 prefills all prompts and samples each one's first token.
    assert!(core.step());
    assert_eq!(core.scheduler().num_running(), BATCH);
    drain(&mut streams);
    streams
}

/// Takes every output sent so far (as a frontend would), returning how many tokens came.
fn drain(streams: &mut [OutputStream]) -> usize {
    let mut tokens = 0;
    for rx in streams {
        while let Ok(out) = rx.try_recv() {
            tokens += out.expect("no engine error").token_ids.len();
        }
    }
    tokens
}

/// One decode step of the whole batch; checks it was one.
fn decode_step(core: &mut EngineCore, streams: &mut [OutputStream]) {
    assert!(core.step());
    let report = core.last_step();
    assert_eq!(report.chunks.len(), BATCH, "a decode step of the batch");
    assert!(report.chunks.iter().all(|c| c.len == 1 && c.want_logits));
    assert_eq!(drain(streams), BATCH);
}

fn run_to_end(core: &mut EngineCore, streams: &mut [OutputStream]) {
    while core.step() {
        drain(streams);
    }
    drain(streams);
}

#[test]
fn decode_steps_allocate_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let model = load_model();
    // Blocks of 128 tokens: positions 20..130 stay in each sequence's first block until the end.
    let mut core = core(&model, 128, false);
    let mut warm = start_batch(&mut core, 0, 100);
    run_to_end(&mut core, &mut warm);

    let mut streams = start_batch(&mut core, 1, 100);
    // Skip to output 40: tokio's unbounded channel allocates a request's second 32-slot block
    // at its 33rd message; from then on the two blocks are recycled as the receiver reads.
    for _ in 0..39 {
        decode_step(&mut core, &mut streams);
    }
    // Outputs 41..=100 minus the last (which finishes and retires the sequences).
    const STEPS: usize = 59;
    let (counts, sizes) = count_during(|| {
        for _ in 0..STEPS {
            decode_step(&mut core, &mut streams);
        }
    });
    assert_eq!(
        counts,
        Counts {
            one_u32: 0,
            other: 0
        },
        "expected no allocation in {STEPS} decode steps of {BATCH} sequences; sizes: {sizes:?}"
    );
    run_to_end(&mut core, &mut streams);
}

#[test]
fn crossing_a_block_boundary_costs_one_allocation_per_sequence() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let model = load_model();
    // Blocks of 16 tokens: a sequence at position 31 needs its third block (positions 32..48)
    // in the step that feeds token 32 (prompt 20 + generated 12 = 32 tokens, 31 computed).
    let mut core = core(&model, 16, false);
    let mut warm = start_batch(&mut core, 0, 40);
    run_to_end(&mut core, &mut warm);

    let mut streams = start_batch(&mut core, 1, 40);
    // After start_batch: 21 tokens, 20 computed. Step k (1-based) computes position 19 + k.
    for _ in 0..11 {
        decode_step(&mut core, &mut streams);
    }
    // This step computes position 31 (still block 1); the next one, position 32, in block 2.
    let (quiet, quiet_sizes) = count_during(|| decode_step(&mut core, &mut streams));
    let (crossing, crossing_sizes) = count_during(|| decode_step(&mut core, &mut streams));
    assert_eq!(
        quiet,
        Counts {
            one_u32: 0,
            other: 0
        },
        "{quiet_sizes:?}"
    );
    // One more 4-byte vector per sequence: BlockPool::allocate's Vec of one block id.
    assert_eq!(
        crossing,
        Counts {
            one_u32: BATCH,
            other: 0
        },
        "{crossing_sizes:?}"
    );
    run_to_end(&mut core, &mut streams);
}
