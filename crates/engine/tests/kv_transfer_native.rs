//! KV export/import on the real model (SmolLM2-135M-Instruct Q4_1): engine A prefills a chat
//! prompt, its cached blocks go to a fresh engine B, and B serves the same prompt from the
//! imported prefix with exactly A's (cold) greedy output. Engines with another KV layout refuse
//! the blocks by name and leak nothing.
//!
//! The model is found via `ROTOR_TEST_MODEL`, else the default cache path; the test FAILS if it
//! is missing.

mod real_model;

use real_model::{model, CHAT_PROMPT};

use rotor_engine::{
    Engine, EngineConfig, EngineHandle, EngineStats, KvExport, KvExportSelector, KvImportError,
    KvImportRejectReason, KvImportReport, NativeRunner,
};
use rotor_kv_cache::Error as BlockError;
use rotor_model::KvDtype;
use rotor_protocol::{FinishReason, GenerateRequest, SamplingParams, StopConditions};

const NEW_TOKENS: u32 = 16;
const BS: usize = 16;

fn engine(block_size_tokens: usize, dtype: KvDtype) -> EngineHandle {
    let cfg = EngineConfig {
        block_size_tokens,
        num_blocks: 256 / block_size_tokens,
        ..EngineConfig::default()
    };
    let runner = NativeRunner::new(model(), &cfg, dtype);
    Engine::start(Box::new(runner), cfg).expect("engine starts")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// Greedy tokens and the cached prompt tokens reported on the first output.
fn generate(engine: &EngineHandle, id: &str) -> (Vec<u32>, u32) {
    let mut rx = engine
        .submit(GenerateRequest {
            task: Default::default(),
            id: id.into(),
            token_ids: CHAT_PROMPT.to_vec(),
            sampling: SamplingParams::greedy(),
            stop: StopConditions {
                max_tokens: NEW_TOKENS,
                ..StopConditions::default()
            },
        })
        .expect("submitted");
    let (mut tokens, mut cached, mut finish) = (Vec::new(), None, None);
    while let Some(item) = rx.blocking_recv() {
        let out = item.expect("no engine error");
        cached = cached.or(out.cached_prompt_tokens);
        tokens.extend(out.token_ids);
        finish = out.finish_reason;
    }
    assert_eq!(finish, Some(FinishReason::Length));
    (tokens, cached.unwrap_or(0))
}

fn export_prompt(engine: &EngineHandle) -> KvExport {
    rt().block_on(engine.export_kv(KvExportSelector::Tokens(CHAT_PROMPT.to_vec())))
        .expect("export")
}

fn import(engine: &EngineHandle, blocks: Vec<Vec<u8>>) -> KvImportReport {
    rt().block_on(engine.import_kv(blocks))
        .expect("import call")
}

/// Stats after a round trip through the engine thread (every earlier step published).
fn settled(engine: &EngineHandle) -> (EngineStats, usize) {
    let snapshot = rt().block_on(engine.kv_snapshot()).expect("snapshot");
    (engine.stats(), snapshot.block_hashes.len())
}

#[test]
fn a_fresh_engine_serves_an_imported_prefix_with_the_cold_greedy_output() {
    for dtype in [KvDtype::F32, KvDtype::F16] {
        transfer_prefix_and_compare(dtype);
    }
}

fn transfer_prefix_and_compare(dtype: KvDtype) {
    let a = engine(BS, dtype);
    let (cold, cached) = generate(&a, "a");
    assert_eq!(cached, 0);
    let exported = export_prompt(&a);
    assert_eq!(exported.blocks.len(), 2);
    let (stats_a, _) = settled(&a);
    assert_eq!(stats_a.blocks_used, 0, "export released its pins");
    assert_eq!(stats_a.kv_transfer.exported_blocks, 2);

    let b = engine(BS, dtype);
    let report = import(&b, exported.blocks.clone());
    assert_eq!((report.imported, report.stopped), (2, None));
    // The pool holds A's bytes exactly: B exports what A exported.
    assert_eq!(export_prompt(&b), exported);

    let (warm, cached) = generate(&b, "b");
    assert_eq!(
        cached as usize,
        2 * BS,
        "{dtype:?}: both imported blocks hit"
    );
    assert_eq!(warm, cold, "{dtype:?}: greedy output equals the cold run");
    let (stats_b, _) = settled(&b);
    assert_eq!(stats_b.blocks_used, 0);
    assert_eq!(stats_b.prefix_cache_hit_tokens, 2 * BS as u64);
    assert_eq!(stats_b.kv_transfer.imported_blocks, 2);
    assert_eq!(stats_b.kv_transfer.exported_blocks, 2);
    assert_eq!(settled(&a).0.blocks_used, 0);
}

#[test]
fn another_kv_dtype_or_block_size_is_refused_by_name_and_leaks_nothing() {
    let a = engine(BS, KvDtype::F32);
    generate(&a, "a");
    let blocks = export_prompt(&a).blocks;

    let cases = [
        (engine(BS, KvDtype::F16), "dtype"),
        (engine(2 * BS, KvDtype::F32), "block_size_tokens"),
    ];
    for (receiver, field) in cases {
        let report = import(&receiver, blocks.clone());
        assert_eq!(report.imported, 0);
        match report.stopped.map(|s| s.error) {
            Some(KvImportError::Block(BlockError::BlockLayoutMismatch { field: f, .. })) => {
                assert_eq!(f, field)
            }
            other => panic!("{field}: expected a layout mismatch, got {other:?}"),
        }
        let (stats, cached_blocks) = settled(&receiver);
        assert_eq!((stats.blocks_used, cached_blocks), (0, 0), "{field}");
        assert_eq!(
            stats.kv_transfer.rejections(KvImportRejectReason::Layout),
            1
        );
        assert_eq!(stats.kv_transfer.imported_blocks, 0);
    }
}
