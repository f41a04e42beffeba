//! Prefix-index benchmarks: routing-decision latency with 64 workers and ~1M cached blocks, and
//! KV-event ingestion rate.
//!
//! Cluster shape: 16 system prompts of 16 blocks; 1024 documents, each a system prompt followed
//! by 240 blocks of its own (256 blocks); every worker caches 61 random documents, so
//! 64 × 61 × 256 = 999,424 (worker, block) entries over ~246k distinct hashes.
//! Requests: a random document's first `k` blocks (k uniform in 0..=n) followed by fresh blocks,
//! n = 32, 64, 128 or 256 blocks in total.
//!
//! Besides criterion's means, a plain loop prints p50/p99 decision latency, the same for a naive
//! peer (one std `HashSet` per worker, each walked on its own) and the ingestion rate.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkId, Criterion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_kv_router::{KvRouter, KvRouterConfig, PrefixIndex};
use rotor_protocol::{KvEvent, KvEventData, RouterEvent, StoredBlock};
use rotor_tokens::chain_hash;

const WORKERS: u64 = 64;
const SYSTEM_PROMPTS: usize = 16;
const SYSTEM_BLOCKS: usize = 16;
const DOCUMENTS: usize = 1024;
const DOCUMENT_BLOCKS: usize = 256;
const DOCUMENTS_PER_WORKER: usize = 61;
const EVENT_BLOCKS: usize = 16;
const REQUEST_SIZES: [usize; 4] = [32, 64, 128, 256];

struct Cluster {
    documents: Vec<Vec<u64>>,
    /// Stored events, every worker's in id order, interleaved across workers.
    events: Vec<RouterEvent>,
}

fn extend_chain(chain: &mut Vec<u64>, blocks: usize, rng: &mut StdRng) {
    for _ in 0..blocks {
        let parent = chain.last().copied();
        chain.push(chain_hash(parent, rng.random()));
    }
}

fn cluster(rng: &mut StdRng) -> Cluster {
    let systems: Vec<Vec<u64>> = (0..SYSTEM_PROMPTS)
        .map(|_| {
            let mut chain = Vec::new();
            extend_chain(&mut chain, SYSTEM_BLOCKS, rng);
            chain
        })
        .collect();
    let documents: Vec<Vec<u64>> = (0..DOCUMENTS)
        .map(|i| {
            let mut chain = systems[i % SYSTEM_PROMPTS].clone();
            extend_chain(&mut chain, DOCUMENT_BLOCKS - SYSTEM_BLOCKS, rng);
            chain
        })
        .collect();
    let mut per_worker: Vec<Vec<RouterEvent>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for (w, events) in per_worker.iter_mut().enumerate() {
        for _ in 0..DOCUMENTS_PER_WORKER {
            let doc = &documents[rng.random_range(0..DOCUMENTS)];
            for (i, chunk) in doc.chunks(EVENT_BLOCKS).enumerate() {
                let parent = (i > 0).then(|| doc[i * EVENT_BLOCKS - 1]);
                events.push(RouterEvent {
                    worker_id: w as u64,
                    event: KvEvent {
                        event_id: events.len() as u64,
                        data: KvEventData::stored(
                            parent,
                            chunk
                                .iter()
                                .map(|h| StoredBlock {
                                    block_hash: *h,
                                    tokens_hash: *h,
                                })
                                .collect(),
                        ),
                    },
                });
            }
        }
    }
    let longest = per_worker.iter().map(Vec::len).max().unwrap_or(0);
    let mut events = Vec::new();
    for i in 0..longest {
        for worker_events in &per_worker {
            if let Some(e) = worker_events.get(i) {
                events.push(e.clone());
            }
        }
    }
    Cluster { documents, events }
}

fn request(cluster: &Cluster, blocks: usize, rng: &mut StdRng) -> Vec<u64> {
    let doc = &cluster.documents[rng.random_range(0..DOCUMENTS)];
    let shared = rng.random_range(0..=blocks);
    let mut hashes = doc[..shared].to_vec();
    extend_chain(&mut hashes, blocks - shared, rng);
    hashes
}

fn router(cluster: &Cluster) -> KvRouter {
    let mut router = KvRouter::new(KvRouterConfig {
        block_size_tokens: 16,
        ..KvRouterConfig::default()
    })
    .expect("valid config");
    for w in 0..WORKERS {
        router.add_worker(w);
    }
    for event in &cluster.events {
        router.apply_event(event).expect("contiguous events");
    }
    router
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The naive twin: one hash set per worker, each walked separately.
fn naive_sets(cluster: &Cluster) -> Vec<HashSet<u64>> {
    let mut sets = vec![HashSet::new(); WORKERS as usize];
    for e in &cluster.events {
        if let KvEventData::Stored { blocks, .. } = &e.event.data {
            sets[e.worker_id as usize].extend(blocks.iter().map(|b| b.block_hash));
        }
    }
    sets
}

fn naive_matches(sets: &[HashSet<u64>], hashes: &[u64]) -> Vec<usize> {
    sets.iter()
        .map(|set| hashes.iter().take_while(|h| set.contains(h)).count())
        .collect()
}

/// Plain-loop percentiles, printed before criterion's output.
fn print_percentiles(cluster: &Cluster, router: &mut KvRouter) {
    let total_blocks: usize = cluster
        .events
        .iter()
        .map(|e| match &e.event.data {
            KvEventData::Stored { blocks, .. } => blocks.len(),
            _ => 0,
        })
        .sum();
    let mut index = PrefixIndex::new();
    let start = Instant::now();
    for event in &cluster.events {
        index.apply(event).expect("contiguous events");
    }
    let took = start.elapsed();
    println!(
        "ingestion: {} Stored events ({} blocks, {} distinct) in {:.1} ms: {:.0} events/s, {:.2} M blocks/s",
        cluster.events.len(),
        total_blocks,
        index.distinct_blocks(),
        took.as_secs_f64() * 1e3,
        cluster.events.len() as f64 / took.as_secs_f64(),
        total_blocks as f64 / took.as_secs_f64() / 1e6,
    );
    let naive = naive_sets(cluster);
    let mut rng = StdRng::seed_from_u64(11);
    let now = Instant::now();
    for blocks in REQUEST_SIZES {
        let requests: Vec<Vec<u64>> = (0..20_000)
            .map(|_| request(cluster, blocks, &mut rng))
            .collect();
        let mut naive_latencies = Vec::with_capacity(requests.len());
        for hashes in &requests {
            let start = Instant::now();
            black_box(naive_matches(&naive, hashes));
            naive_latencies.push(start.elapsed());
        }
        naive_latencies.sort_unstable();
        let mut latencies = Vec::with_capacity(requests.len());
        let mut hit = 0usize;
        for (i, hashes) in requests.into_iter().enumerate() {
            let id = i.to_string();
            let start = Instant::now();
            let routed = router.route_hashes(&id, hashes, blocks * 16, now);
            latencies.push(start.elapsed());
            let routed = routed.expect("workers exist");
            hit += routed.selection.terms.overlap_blocks;
            router.mark_finished(&id).expect("just routed");
        }
        latencies.sort_unstable();
        println!(
            "route {blocks:>3} blocks, 64 workers: p50 {:>6.1} µs  p99 {:>6.1} µs  max {:>7.1} µs  (mean overlap {:.1} blocks)",
            percentile(&latencies, 0.50).as_secs_f64() * 1e6,
            percentile(&latencies, 0.99).as_secs_f64() * 1e6,
            latencies[latencies.len() - 1].as_secs_f64() * 1e6,
            hit as f64 / latencies.len() as f64,
        );
        println!(
            "  peer: naive per-worker sets, overlaps only: p50 {:>6.1} µs  p99 {:>6.1} µs",
            percentile(&naive_latencies, 0.50).as_secs_f64() * 1e6,
            percentile(&naive_latencies, 0.99).as_secs_f64() * 1e6,
        );
    }
}

fn bench_decisions(c: &mut Criterion, cluster: &Cluster, router: &mut KvRouter) {
    let mut rng = StdRng::seed_from_u64(12);
    let now = Instant::now();
    let mut group = c.benchmark_group("decision_64_workers_1m_blocks");
    for blocks in REQUEST_SIZES {
        let requests: Vec<Vec<u64>> = (0..1024)
            .map(|_| request(cluster, blocks, &mut rng))
            .collect();
        let index = router.prefix_index().expect("events mode");
        group.bench_with_input(
            BenchmarkId::new("find_matches", blocks),
            &requests,
            |b, reqs| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % reqs.len();
                    black_box(index.find_matches(&reqs[i]))
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("route_and_finish", blocks),
            &requests,
            |b, reqs| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % reqs.len();
                    let routed = router
                        .route_hashes("bench", reqs[i].clone(), blocks * 16, now)
                        .expect("workers exist");
                    router.mark_finished("bench").expect("just routed");
                    black_box(routed)
                })
            },
        );
    }
    group.finish();
}

fn bench_ingestion(c: &mut Criterion, cluster: &Cluster) {
    // The first 1024 events (16 per worker, 16 blocks each) into an empty index.
    let batch: Vec<RouterEvent> = cluster.events[..1024].to_vec();
    let mut group = c.benchmark_group("ingestion");
    group.throughput(criterion::Throughput::Elements(batch.len() as u64));
    group.bench_function("stored_1024_events_of_16_blocks", |b| {
        b.iter_batched(
            PrefixIndex::new,
            |mut index| {
                for event in &batch {
                    index.apply(event).expect("contiguous events");
                }
                index
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn main() {
    let mut rng = StdRng::seed_from_u64(7);
    let cluster = cluster(&mut rng);
    let mut router = router(&cluster);
    print_percentiles(&cluster, &mut router);
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_decisions(&mut c, &cluster, &mut router);
    bench_ingestion(&mut c, &cluster);
    c.final_summary();
}
