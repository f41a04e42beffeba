//! KV export/import between engines, over the scripted runner (whose KV slots hold each
//! position's token, so imported blocks that were wrong would change the output) and the
//! mocker (zero payloads in the same format).
//!
//! Every test ends with the pools back at zero blocks used: no pin or import leaks a holder.

use rotor_engine::{
    Engine, EngineConfig, EngineHandle, EngineStats, KvExport, KvExportSelector, KvImportError,
    KvImportRejectReason, KvImportReport, KvTransferError, MockerConfig, MockerRunner,
    MockerTiming, ScriptedRunner,
};
use rotor_kv_cache::Error as BlockError;
use rotor_protocol::{FinishReason, GenerateRequest, KvEventData, SamplingParams, StopConditions};
use rotor_tokens::sequence_hashes;

const VOCAB: usize = 500;
const CTX: usize = 1024;
const BS: usize = 4;
const NEW_TOKENS: u32 = 6;

fn config(num_blocks: usize, block_size_tokens: usize) -> EngineConfig {
    EngineConfig {
        max_num_seqs: 4,
        max_num_batched_tokens: 64,
        max_prefill_chunk_tokens: 64,
        block_size_tokens,
        num_blocks,
        enable_prefix_caching: true,
    }
}

fn scripted(cfg: EngineConfig) -> EngineHandle {
    let runner = ScriptedRunner::for_config(&cfg, VOCAB, CTX);
    Engine::start(Box::new(runner), cfg).expect("engine starts")
}

fn mocker(cfg: EngineConfig) -> EngineHandle {
    let mut mcfg = MockerConfig::new(MockerTiming::DynamoVllm, &cfg, VOCAB, CTX);
    mcfg.speedup = 1000.0;
    let runner = MockerRunner::new(mcfg).expect("mocker config is valid");
    Engine::start(Box::new(runner), cfg).expect("engine starts")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

/// 18 tokens: four full blocks of 4 and a partial one.
fn prompt() -> Vec<u32> {
    (0..18).map(|i| (i * 37 + 11) % VOCAB as u32).collect()
}

/// Generated tokens and the cached prompt tokens reported on the first output.
fn generate(engine: &EngineHandle, id: &str, prompt: &[u32]) -> (Vec<u32>, u32) {
    let mut rx = engine
        .submit(GenerateRequest {
            task: Default::default(),
            id: id.into(),
            token_ids: prompt.to_vec(),
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

fn export(engine: &EngineHandle, selector: KvExportSelector) -> KvExport {
    rt().block_on(engine.export_kv(selector)).expect("export")
}

fn import(engine: &EngineHandle, blocks: Vec<Vec<u8>>) -> KvImportReport {
    rt().block_on(engine.import_kv(blocks))
        .expect("import call")
}

/// A round trip through the engine thread, after which `stats()` covers every earlier command
/// and step (they are published before the next command is served).
fn settled_stats(engine: &EngineHandle) -> EngineStats {
    rt().block_on(engine.kv_snapshot()).expect("snapshot");
    engine.stats()
}

fn settled_blocks_used(engine: &EngineHandle) -> usize {
    settled_stats(engine).blocks_used
}

fn cached_hashes(engine: &EngineHandle) -> Vec<u64> {
    rt().block_on(engine.kv_snapshot())
        .expect("snapshot")
        .block_hashes
}

#[test]
fn imported_blocks_are_a_prefix_hit_with_the_cold_output() {
    let prompt = prompt();
    let a = scripted(config(32, BS));
    let (cold, cached) = generate(&a, "a", &prompt);
    assert_eq!(cached, 0);
    assert_eq!(
        cold,
        ScriptedRunner::greedy_continuation(&prompt, NEW_TOKENS as usize, VOCAB)
    );

    let exported = export(&a, KvExportSelector::Tokens(prompt.clone()));
    let hashes = sequence_hashes(&prompt, BS);
    assert_eq!(exported.sequence_hashes, hashes);
    assert_eq!(exported.blocks.len(), 4);
    let size = exported.layout.encoded_bytes().unwrap();
    assert!(exported.blocks.iter().all(|b| b.len() == size));
    assert_eq!(settled_blocks_used(&a), 0, "export released its pins");
    assert_eq!(settled_stats(&a).kv_transfer.exported_blocks, 4);

    let b = scripted(config(32, BS));
    let mut events = b.subscribe_kv_events();
    let report = import(&b, exported.blocks.clone());
    assert_eq!(
        report,
        KvImportReport {
            imported: 4,
            already_cached: 0,
            stopped: None
        }
    );
    assert_eq!(settled_blocks_used(&b), 0, "import released its holds");
    let mut stored = Vec::new();
    for e in events.read().events {
        if let KvEventData::Stored {
            parent_hash,
            blocks,
            ..
        } = e.data
        {
            assert_eq!(parent_hash, None);
            stored.extend(blocks.iter().map(|s| s.block_hash));
        }
    }
    assert_eq!(
        stored, hashes,
        "one Stored event chain for the imported blocks"
    );

    let (warm, cached) = generate(&b, "b", &prompt);
    assert_eq!(cached, 16, "4 imported blocks × 4 tokens");
    assert_eq!(warm, cold);
    let stats = settled_stats(&b);
    assert_eq!(stats.prefix_cache_hit_tokens, 16);
    assert_eq!(stats.kv_transfer.imported_blocks, 4);
    assert_eq!(settled_blocks_used(&b), 0);

    // Importing again changes nothing and copies nothing.
    let again = import(&b, exported.blocks);
    assert_eq!((again.imported, again.already_cached), (0, 4));
    assert_eq!(settled_stats(&b).kv_transfer.imported_blocks, 4);
    assert_eq!(settled_blocks_used(&b), 0);
}

#[test]
fn a_delta_export_continues_a_chain_the_receiver_already_has() {
    let prompt = prompt();
    let hashes = sequence_hashes(&prompt, BS);
    let a = scripted(config(32, BS));
    generate(&a, "a", &prompt);
    // The receiver holds the first two blocks (from a shorter prompt); only the rest is sent.
    let b = scripted(config(32, BS));
    generate(&b, "b0", &prompt[..9]);
    let held = cached_hashes(&b);
    assert!(held.contains(&hashes[0]) && held.contains(&hashes[1]));
    assert!(!held.contains(&hashes[2]));
    let delta = export(&a, KvExportSelector::SequenceHashes(hashes[2..].to_vec()));
    assert_eq!(delta.blocks.len(), 2);
    assert_eq!(import(&b, delta.blocks.clone()).imported, 2);
    let (warm, cached) = generate(&b, "b1", &prompt);
    assert_eq!(cached, 16);
    assert_eq!(
        warm,
        ScriptedRunner::greedy_continuation(&prompt, NEW_TOKENS as usize, VOCAB)
    );

    // A receiver without the first blocks refuses the delta: its parent is missing.
    let c = scripted(config(32, BS));
    let report = import(&c, delta.blocks);
    assert_eq!(report.imported, 0);
    let stop = report.stopped.expect("stopped");
    assert_eq!(stop.index, 0);
    assert_eq!(
        stop.error,
        KvImportError::MissingParent { parent: hashes[1] }
    );
    assert_eq!(
        settled_stats(&c)
            .kv_transfer
            .rejections(KvImportRejectReason::MissingParent),
        1
    );
    assert!(cached_hashes(&c).is_empty());
    for e in [&a, &b, &c] {
        assert_eq!(settled_blocks_used(e), 0);
    }
}

#[test]
fn a_corrupt_block_stops_the_import_after_the_good_prefix() {
    let prompt = prompt();
    let a = scripted(config(32, BS));
    generate(&a, "a", &prompt);
    let mut blocks = export(&a, KvExportSelector::Tokens(prompt.clone())).blocks;
    let in_payload = blocks[2].len() - 12;
    blocks[2][in_payload] ^= 0x40;

    let b = scripted(config(32, BS));
    let report = import(&b, blocks);
    assert_eq!(report.imported, 2);
    let stop = report.stopped.expect("stopped");
    assert_eq!(stop.index, 2);
    assert!(matches!(
        stop.error,
        KvImportError::Block(BlockError::BlockChecksumMismatch { .. })
    ));
    assert_eq!(
        settled_stats(&b)
            .kv_transfer
            .rejections(KvImportRejectReason::Corrupt),
        1
    );
    // The two good blocks are a usable prefix.
    let (warm, cached) = generate(&b, "b", &prompt);
    assert_eq!(cached, 8);
    assert_eq!(
        warm,
        ScriptedRunner::greedy_continuation(&prompt, NEW_TOKENS as usize, VOCAB)
    );
    assert_eq!(settled_blocks_used(&b), 0);
}

#[test]
fn another_block_size_is_refused_by_name_and_leaks_nothing() {
    let prompt = prompt();
    let a = scripted(config(32, BS));
    generate(&a, "a", &prompt);
    let blocks = export(&a, KvExportSelector::Tokens(prompt)).blocks;

    let b = scripted(config(16, 8));
    let report = import(&b, blocks);
    assert_eq!(report.imported, 0);
    match report.stopped.map(|s| s.error) {
        Some(KvImportError::Block(BlockError::BlockLayoutMismatch {
            field,
            expected,
            got,
        })) => assert_eq!((field, expected, got), ("block_size_tokens", 8, 4)),
        other => panic!("expected a layout mismatch, got {other:?}"),
    }
    assert_eq!(
        settled_stats(&b)
            .kv_transfer
            .rejections(KvImportRejectReason::Layout),
        1
    );
    assert_eq!(settled_blocks_used(&b), 0);
    assert!(cached_hashes(&b).is_empty());
    assert_eq!(settled_stats(&b).kv_transfer.imported_blocks, 0);
}

#[test]
fn a_full_pool_stops_the_import_and_says_how_many_it_took() {
    let prompt = prompt();
    let a = scripted(config(32, BS));
    generate(&a, "a", &prompt);
    let blocks = export(&a, KvExportSelector::Tokens(prompt.clone())).blocks;

    // Three blocks in all: the import holds each until it ends, so the fourth finds none free.
    let b = scripted(config(3, BS));
    let report = import(&b, blocks.clone());
    assert_eq!(report.imported, 3);
    let stop = report.stopped.expect("stopped");
    assert_eq!((stop.index, stop.error), (3, KvImportError::PoolFull));
    assert_eq!(
        settled_stats(&b)
            .kv_transfer
            .rejections(KvImportRejectReason::PoolFull),
        1
    );
    assert_eq!(settled_blocks_used(&b), 0);
    assert_eq!(cached_hashes(&b).len(), 3);

    // In a pool whose free blocks are cached (3 of 5: 8 prompt + 5 computed output tokens), an
    // import takes the 2 uncached ones, then evicts the least recently used cached ones.
    let c = scripted(config(5, BS));
    let other: Vec<u32> = (0..8).map(|i| 400 + i).collect();
    generate(&c, "c", &other);
    let before = cached_hashes(&c);
    assert_eq!(before.len(), 3);
    assert_eq!(import(&c, blocks).imported, 4);
    let after = cached_hashes(&c);
    assert_eq!(after.len(), 5);
    assert_eq!(settled_stats(&c).prefix_cache_evictions, 2);
    assert_eq!(settled_blocks_used(&c), 0);
}

#[test]
fn blocks_out_of_chain_order_are_refused() {
    let prompt = prompt();
    let a = scripted(config(32, BS));
    generate(&a, "a", &prompt);
    let mut blocks = export(&a, KvExportSelector::Tokens(prompt.clone())).blocks;
    blocks.swap(1, 2);
    let b = scripted(config(32, BS));
    let report = import(&b, blocks);
    assert_eq!(report.imported, 1);
    let hashes = sequence_hashes(&prompt, BS);
    assert_eq!(
        report.stopped.map(|s| (s.index, s.error)),
        Some((
            1,
            KvImportError::NotAChain {
                expected: hashes[0],
                got: Some(hashes[1]),
            }
        ))
    );
    assert_eq!(settled_blocks_used(&b), 0);
}

#[test]
fn mockers_export_zero_payloads_and_import_them_as_prefix_hits() {
    let prompt = prompt();
    let a = mocker(config(32, BS));
    let (cold, _) = generate(&a, "a", &prompt);
    let exported = export(&a, KvExportSelector::Tokens(prompt.clone()));
    assert_eq!(exported.blocks.len(), 4);
    // SmolLM2-135M's shape in f16: 30 layers × 2 × 3 heads × 64 × 4 tokens × 2 bytes.
    assert_eq!(
        exported.layout.payload_bytes(),
        Some(30 * 2 * 3 * 64 * 4 * 2)
    );
    let view = rotor_kv_cache::decode_kv_block(&exported.blocks[0]).expect("decodes");
    assert!(view.payload.iter().all(|&b| b == 0));

    let b = mocker(config(32, BS));
    assert_eq!(import(&b, exported.blocks).imported, 4);
    let (warm, cached) = generate(&b, "b", &prompt);
    assert_eq!((warm, cached), (cold, 16));
    assert_eq!(settled_blocks_used(&a), 0);
    assert_eq!(settled_blocks_used(&b), 0);

    // A scripted engine is another model: the mocker's blocks are refused by fingerprint.
    let s = scripted(config(32, BS));
    let blocks = export(&a, KvExportSelector::Tokens(prompt)).blocks;
    let stop = import(&s, blocks).stopped.expect("stopped");
    assert!(matches!(
        stop.error,
        KvImportError::Block(BlockError::BlockLayoutMismatch {
            field: "model_fingerprint",
            ..
        })
    ));
}

#[test]
fn without_prefix_caching_export_and_import_are_refused() {
    let cfg = EngineConfig {
        enable_prefix_caching: false,
        ..config(16, BS)
    };
    let e = scripted(cfg);
    assert_eq!(
        rt().block_on(e.export_kv(KvExportSelector::Tokens(prompt()))),
        Err(KvTransferError::PrefixCachingDisabled)
    );
    assert_eq!(
        rt().block_on(e.import_kv(Vec::new())),
        Err(KvTransferError::PrefixCachingDisabled)
    );
    e.shutdown();
    e.join();
    assert_eq!(
        rt().block_on(e.import_kv(Vec::new())),
        Err(KvTransferError::EngineStopped)
    );
}

#[test]
fn exporting_blocks_a_running_request_holds_leaves_its_holds_alone() {
    let prompt = prompt();
    let cfg = config(32, BS);
    let runner = ScriptedRunner::for_config(&cfg, VOCAB, CTX)
        .with_step_delay(std::time::Duration::from_millis(2));
    let a = Engine::start(Box::new(runner), cfg).expect("engine starts");
    let mut rx = a
        .submit(GenerateRequest {
            task: Default::default(),
            id: "long".into(),
            token_ids: prompt.clone(),
            sampling: SamplingParams::greedy(),
            stop: StopConditions {
                max_tokens: 40,
                ..StopConditions::default()
            },
        })
        .expect("submitted");
    // The first output comes after the prefill step, which cached the prompt's full blocks.
    let mut tokens: Vec<u32> = rx
        .blocking_recv()
        .expect("an output")
        .expect("no error")
        .token_ids
        .into_iter()
        .collect();
    let exported = export(&a, KvExportSelector::Tokens(prompt.clone()));
    assert_eq!(exported.blocks.len(), 4);
    while let Some(item) = rx.blocking_recv() {
        tokens.extend(item.expect("no error").token_ids);
    }
    assert_eq!(
        tokens,
        ScriptedRunner::greedy_continuation(&prompt, 40, VOCAB)
    );
    assert_eq!(settled_blocks_used(&a), 0);
    let b = scripted(config(32, BS));
    assert_eq!(import(&b, exported.blocks).imported, 4);
}

mod corruption {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// One damaged byte anywhere in an export: every block before it is imported, the damaged
        /// one is refused as corrupt, nothing leaks, and the receiver's output is the cold one.
        #[test]
        fn a_damaged_export_imports_exactly_the_blocks_before_the_damage(
            block in 0usize..4,
            at in any::<prop::sample::Index>(),
            mask in 1u8..=255,
        ) {
            let prompt = prompt();
            let a = scripted(config(32, BS));
            generate(&a, "a", &prompt);
            let mut blocks = export(&a, KvExportSelector::Tokens(prompt.clone())).blocks;
            let at = at.index(blocks[block].len());
            blocks[block][at] ^= mask;
            let b = scripted(config(32, BS));
            let report = import(&b, blocks);
            prop_assert_eq!(report.imported, block);
            let stop = report.stopped.expect("stopped");
            prop_assert_eq!(stop.index, block);
            prop_assert_eq!(stop.error.reason(), KvImportRejectReason::Corrupt);
            prop_assert_eq!(settled_blocks_used(&b), 0);
            let (warm, cached) = generate(&b, "b", &prompt);
            prop_assert_eq!(cached as usize, block * BS);
            prop_assert_eq!(
                warm,
                ScriptedRunner::greedy_continuation(&prompt, NEW_TOKENS as usize, VOCAB)
            );
            prop_assert_eq!(settled_blocks_used(&b), 0);
        }
    }
}
