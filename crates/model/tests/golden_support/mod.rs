//! Shared by the llama.cpp golden tests of real models (`golden.rs` on the default Q4_1 file,
//! `requant_golden.rs` on its llama.cpp requantizations): the fixture format written by
//! scripts/golden/gen_fixtures.py and requant_golden.py, and greedy decoding under a chosen way of
//! feeding the model.

#![allow(dead_code)]

use rotor_model::{KvDtype, KvStorage, LlamaModel, SeqChunk};
use serde_json::Value;

/// One prompt of a fixture: its ids, llama.cpp's top logits at its last position and llama.cpp's
/// greedy continuation.
pub struct Prompt {
    pub name: String,
    pub tokens: Vec<u32>,
    pub top: Vec<(usize, f32)>,
    pub greedy: Vec<u32>,
}

/// A fixture: the model file's sha256 (of the file llama.cpp ran) and its prompts.
pub struct Fixture {
    pub model_sha256: String,
    pub prompts: Vec<Prompt>,
}

/// Reads `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> Fixture {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let json: Value = serde_json::from_str(&text).expect("fixture JSON");
    let ids = |v: &Value| -> Vec<u32> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_u64().expect("id") as u32)
            .collect()
    };
    let prompts = json["prompts"]
        .as_array()
        .expect("prompts")
        .iter()
        .map(|p| Prompt {
            name: p["name"].as_str().expect("name").to_string(),
            tokens: ids(&p["token_ids"]),
            top: p["last_logits_top"]
                .as_array()
                .expect("top")
                .iter()
                .map(|e| {
                    (
                        e[0].as_u64().expect("id") as usize,
                        e[1].as_f64().expect("logit") as f32,
                    )
                })
                .collect(),
            greedy: ids(&p["greedy"]),
        })
        .collect();
    Fixture {
        model_sha256: json["model_sha256"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        prompts,
    }
}

pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}

/// How the prompts are fed to the model.
#[derive(Debug, Clone, Copy)]
pub struct Feed {
    pub block_size: usize,
    pub dtype: KvDtype,
    /// Prompt tokens per step (1 = token by token).
    pub prefill_chunk: usize,
    /// All sequences in the same steps, or one sequence after another.
    pub batched: bool,
}

pub const BASE: Feed = Feed {
    block_size: 16,
    dtype: KvDtype::F32,
    prefill_chunk: usize::MAX,
    batched: false,
};

struct Seq<'a> {
    prompt: &'a [u32],
    block_table: Vec<u32>,
    pos: usize,
    generated: Vec<u32>,
    prompt_logits: Vec<f32>,
    gaps: Vec<f32>,
    reference: &'a [u32],
}

/// One sequence's outcome.
pub struct Outcome {
    pub generated: Vec<u32>,
    /// Logits at the end of the prompt.
    pub prompt_logits: Vec<f32>,
    /// Per generated token: our best logit minus our logit for llama.cpp's token at that step.
    pub gaps: Vec<f32>,
}

/// Greedy-decodes as many tokens as each prompt's reference continuation has.
pub fn run(model: &LlamaModel, prompts: &[Prompt], feed: Feed) -> Vec<Outcome> {
    let vocab = model.config().vocab_size;
    let max_len = prompts
        .iter()
        .map(|p| p.tokens.len() + p.greedy.len())
        .max()
        .unwrap_or(0);
    let per_seq = max_len.div_ceil(feed.block_size);
    let n = prompts.len();
    let mut kv = KvStorage::new(model.config(), per_seq * n, feed.block_size, feed.dtype);
    // Interleaved and reversed, so no sequence owns a contiguous run of blocks.
    let mut seqs: Vec<Seq<'_>> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| Seq {
            prompt: &p.tokens,
            block_table: (0..per_seq).rev().map(|k| (k * n + i) as u32).collect(),
            pos: 0,
            generated: Vec::new(),
            prompt_logits: Vec::new(),
            gaps: Vec::new(),
            reference: &p.greedy,
        })
        .collect();
    let groups: Vec<Vec<usize>> = if feed.batched {
        vec![(0..n).collect()]
    } else {
        (0..n).map(|i| vec![i]).collect()
    };
    let mut logits = Vec::new();
    for group in groups {
        loop {
            let active: Vec<usize> = group
                .iter()
                .copied()
                .filter(|&i| seqs[i].generated.len() < seqs[i].reference.len())
                .collect();
            if active.is_empty() {
                break;
            }
            let chunks: Vec<SeqChunk<'_>> = active
                .iter()
                .map(|&i| {
                    let s = &seqs[i];
                    let (tokens, want_logits) = if s.pos < s.prompt.len() {
                        let end = s.pos.saturating_add(feed.prefill_chunk).min(s.prompt.len());
                        (&s.prompt[s.pos..end], end == s.prompt.len())
                    } else {
                        (&s.generated[s.generated.len() - 1..], true)
                    };
                    SeqChunk {
                        tokens,
                        start_pos: s.pos,
                        block_table: &s.block_table,
                        want_logits,
                    }
                })
                .collect();
            let lens: Vec<(usize, bool)> = chunks
                .iter()
                .map(|c| (c.tokens.len(), c.want_logits))
                .collect();
            model
                .forward(&chunks, &mut kv, &mut logits)
                .expect("forward");
            let mut row = 0;
            for (&i, (len, want)) in active.iter().zip(lens) {
                let s = &mut seqs[i];
                s.pos += len;
                if want {
                    let l = &logits[row * vocab..(row + 1) * vocab];
                    if s.generated.is_empty() {
                        s.prompt_logits = l.to_vec();
                    }
                    let best = argmax(l);
                    let want = s.reference[s.generated.len()] as usize;
                    s.gaps.push(l[best as usize] - l[want]);
                    s.generated.push(best);
                    row += 1;
                }
            }
            assert_eq!(row * vocab, logits.len());
        }
    }
    seqs.into_iter()
        .map(|s| Outcome {
            generated: s.generated,
            prompt_logits: s.prompt_logits,
            gaps: s.gaps,
        })
        .collect()
}

/// Asserts each continuation equals llama.cpp's up to its first difference and that the
/// difference (if any) is a near-tie: llama.cpp's token within `tie_margin` of our best. Returns
/// the continuations.
pub fn check_greedy(
    label: &str,
    model: &LlamaModel,
    prompts: &[Prompt],
    feed: Feed,
    tie_margin: f32,
) -> Vec<Vec<u32>> {
    let results = run(model, prompts, feed);
    for (p, out) in prompts.iter().zip(&results) {
        match out
            .generated
            .iter()
            .zip(&p.greedy)
            .position(|(a, b)| a != b)
        {
            None => eprintln!(
                "{label} {feed:?} {}: all {} tokens match llama.cpp",
                p.name,
                p.greedy.len()
            ),
            Some(step) => {
                let gap = out.gaps[step];
                eprintln!(
                    "{label} {feed:?} {}: first divergence from llama.cpp at token {step} \
                     (ours {}, llama.cpp {}, logit gap {gap:.4})",
                    p.name, out.generated[step], p.greedy[step]
                );
                assert!(
                    gap < tie_margin,
                    "{label} {feed:?} {}: diverges at token {step} with a clear margin {gap}: \
                     {:?} vs {:?}",
                    p.name,
                    out.generated,
                    p.greedy
                );
            }
        }
    }
    results.into_iter().map(|o| o.generated).collect()
}

/// The largest |ours − llama.cpp| over each prompt's recorded top logits, per prompt.
pub fn top_logit_errors(prompts: &[Prompt], outcomes: &[Outcome]) -> Vec<f32> {
    prompts
        .iter()
        .zip(outcomes)
        .map(|(p, out)| {
            p.top
                .iter()
                .map(|&(id, want)| (out.prompt_logits[id] - want).abs())
                .fold(0.0f32, f32::max)
        })
        .collect()
}
