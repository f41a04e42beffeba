//! The real Gemma 3 270M Q4_K_M (llama.cpp's quantization): loads, including the 81 tensors that
//! llama.cpp stores as Q5_0 because their rows are not whole 256-blocks, and runs a greedy
//! continuation of "The capital of France is", checked against llama.cpp.
//!
//! Golden: `tests/fixtures/golden_gemma3_270m.json`, written by `scripts/golden/gemma3_golden.py`
//! with llama-cpp-python on the same file and ids: llama.cpp's top-32 next-token logits and its
//! greedy continuation. Tolerance: every one of those 32 logits within 1.5 of llama.cpp's
//! (measured max 0.94 over the whole vocabulary: llama.cpp quantizes activations to Q8_K for the
//! K-quants and keeps an f16 KV cache, so values near rounding boundaries differ), the same
//! top-1, the same top-5 set in llama.cpp's order except between logits within `NEAR_TIE`, and
//! the first five greedy tokens exactly (the sixth is a near-tie,
//! 0.07 apart in llama.cpp, that goes the other way here).
//! Needs the model file (`ROTOR_TEST_GEMMA`, else `gemma-3-270m-q4_k_m.gguf` in Rotor's model
//! cache, see `rotor_testing::models_dir`); fails if it is missing.

use std::path::PathBuf;

use rotor_model::quant::GgmlType;
use rotor_model::{GgufFile, KvDtype, KvStorage, LlamaModel, LoadOptions, SeqChunk};
use serde_json::Value;

const GOLDEN: &str = include_str!("fixtures/golden_gemma3_270m.json");

/// Greedy tokens that must match llama.cpp's exactly.
const EXACT_GREEDY: usize = 5;

/// Two of llama.cpp's top-5 first-step logits closer than this may come in either order here:
/// single logits differ from llama.cpp's by up to 0.5–0.7 on this prompt (activation rounding;
/// see the module docs), and a change of summation order in one kernel moved tokens 886 and
/// 9079, 0.22 apart in llama.cpp, by 0.13 and 0.49.
const NEAR_TIE: f32 = 0.5;

fn gemma3_path() -> PathBuf {
    rotor_testing::gemma3_path()
}

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

#[test]
fn gemma3_q4_k_m_with_q5_0_tensors_matches_llama_cpp() {
    let golden: Value = serde_json::from_str(GOLDEN).expect("golden is JSON");
    let ids = |key: &str| -> Vec<u32> {
        golden[key]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect()
    };
    let (prompt, top_ids, want_greedy) = (ids("prompt_ids"), ids("top_ids"), ids("greedy"));
    let top_logits: Vec<f32> = golden["top_logits"]
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("logit") as f32)
        .collect();
    let gguf = GgufFile::open(&gemma3_path()).expect("open model");
    let q5_0 = gguf
        .tensor_infos()
        .iter()
        .filter(|t| t.dtype == GgmlType::Q5_0)
        .count();
    assert!(q5_0 > 0, "expected Q5_0 tensors in a llama.cpp Q4_K_M file");
    let model = LlamaModel::load(&gguf, LoadOptions { threads: 2 }).expect("load model");
    let cfg = model.config().clone();
    let mut kv = KvStorage::new(&cfg, 4, 16, KvDtype::F32);
    let table = [0u32, 1, 2, 3];
    let mut logits = Vec::new();
    let mut tokens = prompt.clone();
    let mut start = 0;
    let mut generated = Vec::new();
    for step in 0..8 {
        let chunk = SeqChunk {
            tokens: &tokens[start..],
            start_pos: start,
            block_table: &table,
            want_logits: true,
        };
        model
            .forward(&[chunk], &mut kv, &mut logits)
            .expect("forward");
        assert_eq!(logits.len(), cfg.vocab_size);
        assert!(
            logits.iter().all(|v| v.is_finite()),
            "step {step}: non-finite logits"
        );
        let next = argmax(&logits) as u32;
        if step == 0 {
            check_first_step(&logits, &top_ids, &top_logits);
        }
        generated.push(next);
        start = tokens.len();
        tokens.push(next);
    }
    eprintln!("{q5_0} Q5_0 tensors; greedy {generated:?}, llama.cpp {want_greedy:?}");
    assert_eq!(
        generated[..EXACT_GREEDY],
        want_greedy[..EXACT_GREEDY],
        "greedy continuation"
    );
}

fn check_first_step(logits: &[f32], top_ids: &[u32], top_logits: &[f32]) {
    let mut worst = 0.0f32;
    for (&id, &want) in top_ids.iter().zip(top_logits) {
        let got = logits[id as usize];
        worst = worst.max((got - want).abs());
        assert!(
            (got - want).abs() <= 1.5,
            "token {id}: ours {got}, llama.cpp {want}"
        );
    }
    let mut ours: Vec<u32> = (0..logits.len() as u32).collect();
    ours.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    eprintln!(
        "first step: max |Δ| over llama.cpp's top {} = {worst:.3}; top 5 ours {:?}",
        top_ids.len(),
        top_ids[..5]
            .iter()
            .map(|&id| (id, logits[id as usize]))
            .collect::<Vec<_>>()
    );
    assert_eq!(ours[0], top_ids[0], "top-1 next token");
    let (mut ours5, mut want5) = (ours[..5].to_vec(), top_ids[..5].to_vec());
    ours5.sort_unstable();
    want5.sort_unstable();
    assert_eq!(ours5, want5, "top-5 next tokens");
    for i in 0..5 {
        for j in i + 1..5 {
            if top_logits[i] - top_logits[j] > NEAR_TIE {
                let (a, b) = (top_ids[i] as usize, top_ids[j] as usize);
                assert!(
                    logits[a] > logits[b],
                    "token {a} above {b} (llama.cpp {} vs {}), ours {} vs {}",
                    top_logits[i],
                    top_logits[j],
                    logits[a],
                    logits[b]
                );
            }
        }
    }
}
