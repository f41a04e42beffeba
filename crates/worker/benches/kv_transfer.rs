//! Benchmark 2 of issue 12: KV transfer throughput between two workers.
//!
//! Moves a 2,000-token prompt's KV blocks — 125 blocks of 16 tokens in SmolLM2-135M's layout
//! (30 layers, 3 KV heads, head dim 64, f32: the engine's default `--kv-dtype`), encoded in the
//! real block format with its checksum — from a [`KvPusher`] (the prefill side) to the real
//! `kv_import` / `kv_import_shm` handlers on a real request-plane server on 127.0.0.1, in the
//! default 8 MiB batches: once over shared memory (write the file, send the descriptor, read
//! and remove it) and once over TCP (the blocks in the call). Beside them, in the same run, a
//! plain memcpy of the same bytes into a preallocated buffer. The decode side's engine is a
//! stand-in that counts the blocks, so the figures are the transport's alone (the engine's
//! import — checks and copy into the pool — is the same for both transports).
//!
//! `cargo bench -p rotor-worker --bench kv_transfer [-- REPS]` (default 10 measured runs after
//! 2 warm-ups); prints the median and best GB/s of each and the ratios of the medians.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use rotor_kv_cache::{
    encode_kv_block, KvBlockHeader, KvBlockLayout, KvElementType, KvPayloadLayout,
};
use rotor_protocol::kv_push::KV_IMPORT_SHM_ENDPOINT;
use rotor_protocol::worker::KV_IMPORT_ENDPOINT;
use rotor_protocol::{
    GenerateRequest, KvImportOutcome, KvPushEvent, KvTransport, ModelCard, SamplingDefaults,
    TokenizerSpec, WireError, WorkerLoad,
};
use rotor_runtime::{RequestPlaneConfig, RequestPlaneServer};
use rotor_worker::disagg::KvBlockStream;
use rotor_worker::kv_push::KvImportShmHandler;
use rotor_worker::{GenerateStream, KvImportHandler, KvPusher, WorkerEngine};

const PROMPT_TOKENS: usize = 2_000;
const BLOCK_TOKENS: u32 = 16;
const BATCH_BYTES: usize = 8 << 20;
const WARMUPS: usize = 2;
/// A run that takes longer than this ends the measurement (bounded in time as in count).
const TIME_LIMIT: Duration = Duration::from_secs(120);

/// The decode side's engine: accepts every block without touching it.
struct CountingEngine {
    card: ModelCard,
}

impl WorkerEngine for CountingEngine {
    fn card(&self) -> &ModelCard {
        &self.card
    }

    fn generate(&self, _req: GenerateRequest) -> Result<GenerateStream, WireError> {
        Err(WireError::new(
            rotor_protocol::ErrorKind::InvalidRequest,
            "a transfer benchmark",
        ))
    }

    fn load(&self) -> WorkerLoad {
        WorkerLoad::default()
    }

    fn import_kv(
        &self,
        blocks: Vec<Vec<u8>>,
    ) -> Option<BoxFuture<'static, Result<KvImportOutcome, WireError>>> {
        let imported = blocks.len() as u64;
        Some(
            async move {
                Ok(KvImportOutcome {
                    imported,
                    ..KvImportOutcome::default()
                })
            }
            .boxed(),
        )
    }

    fn shutdown(&self) {}
}

fn card() -> ModelCard {
    ModelCard {
        embedding_length: None,
        host_id: None,
        kv_host_pool: None,
        name: "bench".into(),
        context_length: PROMPT_TOKENS as u32 * 2,
        tokenizer: TokenizerSpec {
            model: "gpt2".into(),
            pre: None,
            tokens: vec!["a".into()],
            token_types: vec![1],
            merges: vec![],
            scores: vec![],
            bos_token_id: None,
            eos_token_id: Some(0),
            eot_token_ids: vec![],
            add_bos_token: false,
            add_space_prefix: false,
        },
        chat_template: None,
        created: 0,
        sampling_defaults: SamplingDefaults::default(),
        kv_block_size: Some(BLOCK_TOKENS),
        role: Default::default(),
    }
}

/// The prompt's encoded blocks (pseudo-random payload, chained hashes).
fn blocks() -> Vec<Vec<u8>> {
    let layout = KvBlockLayout {
        model_fingerprint: 0x5eed,
        n_layers: 30,
        n_kv_heads: 3,
        head_dim: 64,
        block_size_tokens: BLOCK_TOKENS,
        dtype: KvElementType::F32,
        payload_layout: KvPayloadLayout::LayerKvHeadSlot,
    };
    let payload_len = layout.payload_bytes().expect("payload size");
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut parent = None;
    (0..PROMPT_TOKENS / BLOCK_TOKENS as usize)
        .map(|i| {
            let payload: Vec<u8> = (0..payload_len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let tokens: Vec<u32> = (0..BLOCK_TOKENS).map(|t| i as u32 * 100 + t).collect();
            let hash = 1_000 + i as u64;
            let header = KvBlockHeader {
                layout,
                sequence_hash: hash,
                parent_hash: parent,
            };
            parent = Some(hash);
            let mut out = Vec::new();
            encode_kv_block(&header, &tokens, &payload, &mut out).expect("encode");
            out
        })
        .collect()
}

fn gbps(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / seconds / 1e9
}

/// Median and best of `samples` (GB/s).
fn summary(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(|a, b| a.total_cmp(b));
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

fn main() {
    let reps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let shm_dir = tempfile::tempdir_in("/dev/shm").expect("a directory in /dev/shm");
    let blocks = blocks();
    let total: usize = blocks.iter().map(Vec::len).sum();
    println!(
        "{} blocks, {:.1} MB ({} B each), batches of {} MiB, {reps} runs after {WARMUPS} warm-ups",
        blocks.len(),
        total as f64 / 1e6,
        blocks[0].len(),
        BATCH_BYTES >> 20
    );

    let config = RequestPlaneConfig::default();
    let (server, addr) = runtime
        .block_on(RequestPlaneServer::bind("127.0.0.1:0", config))
        .expect("bind the request plane");
    let engine: Arc<dyn WorkerEngine> = Arc::new(CountingEngine { card: card() });
    let pusher = Arc::new(KvPusher::new(shm_dir.path().to_path_buf(), config));
    server.register(
        KV_IMPORT_ENDPOINT,
        Arc::new(KvImportHandler::new(Arc::clone(&engine))),
    );
    server.register(
        KV_IMPORT_SHM_ENDPOINT,
        Arc::new(KvImportShmHandler::new(Arc::clone(&engine), &pusher)),
    );
    let address = addr.to_string();

    let push = |transport: KvTransport| -> f64 {
        let input: KvBlockStream =
            futures::stream::iter(blocks.clone().into_iter().map(Ok)).boxed();
        let started = Instant::now();
        let events: Vec<_> = runtime.block_on(
            Arc::clone(&pusher)
                .push(input, address.clone(), transport, BATCH_BYTES)
                .collect(),
        );
        let seconds = started.elapsed().as_secs_f64();
        let mut moved = 0;
        for event in events {
            match event {
                Ok(KvPushEvent::Imported {
                    transport: used,
                    outcome,
                    ..
                }) => {
                    assert_eq!(used, transport, "a batch fell back");
                    moved += outcome.imported;
                }
                other => panic!("the transfer failed: {other:?}"),
            }
        }
        assert_eq!(moved as usize, blocks.len());
        seconds
    };
    let mut dst = vec![0u8; total];
    let mut memcpy = || -> f64 {
        let started = Instant::now();
        let mut at = 0;
        for block in &blocks {
            dst[at..at + block.len()].copy_from_slice(block);
            at += block.len();
        }
        std::hint::black_box(&mut dst);
        started.elapsed().as_secs_f64()
    };

    let began = Instant::now();
    let (mut copy, mut shm, mut tcp) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..WARMUPS + reps {
        if began.elapsed() > TIME_LIMIT {
            println!("stopped after {run} runs: the {TIME_LIMIT:?} limit passed");
            break;
        }
        let c = memcpy();
        let s = push(KvTransport::Shm);
        let t = push(KvTransport::Tcp);
        if run >= WARMUPS {
            copy.push(gbps(total, c));
            shm.push(gbps(total, s));
            tcp.push(gbps(total, t));
        }
    }
    assert!(!copy.is_empty(), "no measured run");
    let left = std::fs::read_dir(shm_dir.path()).expect("shm dir").count();
    assert_eq!(left, 0, "shared-memory files left behind");
    let (copy_med, copy_best) = summary(&mut copy);
    let (shm_med, shm_best) = summary(&mut shm);
    let (tcp_med, tcp_best) = summary(&mut tcp);
    println!("memcpy       median {copy_med:6.2} GB/s  best {copy_best:6.2} GB/s");
    println!(
        "shm          median {shm_med:6.2} GB/s  best {shm_best:6.2} GB/s  ({:.0}% of memcpy; goal >= 50%)",
        100.0 * shm_med / copy_med
    );
    println!(
        "tcp loopback median {tcp_med:6.2} GB/s  best {tcp_best:6.2} GB/s  ({:.0}% of memcpy; goal >= 1 GB/s)",
        100.0 * tcp_med / copy_med
    );
    // Where the shared-memory time goes: the file write and read alone, in the same batches.
    let (mut write_s, mut read_s) = (0.0, 0.0);
    for batch in blocks.chunks((BATCH_BYTES / blocks[0].len()).max(1)) {
        let started = Instant::now();
        let file = rotor_worker::kv_shm::write_batch(shm_dir.path(), batch).expect("write");
        write_s += started.elapsed().as_secs_f64();
        let started = Instant::now();
        let read = rotor_worker::kv_shm::read_batch(shm_dir.path(), &file.descriptor);
        read_s += started.elapsed().as_secs_f64();
        assert_eq!(read.expect("read").len(), batch.len());
    }
    println!(
        "shm parts: file write {:.2} GB/s, read + remove {:.2} GB/s (one run)",
        gbps(total, write_s),
        gbps(total, read_s)
    );
    runtime.block_on(server.shutdown(Duration::from_secs(1)));
}
