use std::path::Path;

use rotor_protocol::TokenizerSpec;
use rotor_text::{Error, Tokenizer};
use serde::Deserialize;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::AddedToken;

use crate::model::smollm2;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/tokenizer_reference.json"
);

/// The probe from notes/dependencies.md whose ids were checked against llama.cpp.
const PROBE: &str = "Hello world, it's 2024-11-23: 12345 tokens!\n  indented <|im_start|>x";

#[derive(Deserialize)]
struct Reference {
    generator: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
}

/// Texts covering what the pre-tokenizer and BPE must get right.
fn sample_texts() -> Vec<&'static str> {
    vec![
        "",
        " ",
        "Hello",
        " Hello",
        "Hello world, it's 2024-11-23: 12345 tokens!",
        "I'm sure they'll say we've done it, he'd said. It's OK'S",
        "naïve café résumé — “quotes” and ‘single’ … ellipsis",
        "日本語のテキストと中文文本，还有한국어 텍스트.",
        "emoji: 🦀🤖👍🏽 👨‍👩‍👧 🇫🇷 ✅",
        "tabs\tand\t\ttabs\nnew\n\nlines\r\nwindows\n\n\n",
        "   leading and trailing spaces   ",
        "multiple     spaces\u{a0}nbsp\u{3000}ideographic",
        "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
        "def f(a, b=3.14159):\n\treturn a**b  # comment\n",
        "3.14159 1,000,000 0x1F 1e-9 ١٢٣ ½ ²",
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "text<|im_end|>more<|endoftext|><file_sep>",
        "<|im_start|",
        "Ġ Ċ ĉ weird vocab chars",
        "\u{0}\u{1}\u{7f} controls",
    ]
}

/// Independent oracle: the HF-tokenizers construction from notes/dependencies.md, which was
/// checked to give llama.cpp's ids for SmolLM2.
fn notes_reference_tokenizer(spec: &TokenizerSpec) -> tokenizers::Tokenizer {
    let vocab: Vocab = spec
        .tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let merges = spec
        .merges
        .iter()
        .map(|m| {
            let (a, b) = m.split_once(' ').expect("merge has a space");
            (a.to_string(), b.to_string())
        })
        .collect();
    let mut tk = tokenizers::Tokenizer::new(
        BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .expect("bpe"),
    );
    tk.with_pre_tokenizer(Some(Sequence::new(vec![
        Digits::new(true).into(),
        ByteLevel::new(false, true, true).into(),
    ])));
    let specials: Vec<AddedToken> = spec
        .token_types
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == 3)
        .map(|(i, _)| AddedToken::from(spec.tokens[i].clone(), true))
        .collect();
    tk.add_special_tokens(specials).expect("specials added");
    tk
}

#[test]
fn ids_match_llama_cpp_reference() {
    let tk = &smollm2().tokenizer;
    let text = std::fs::read_to_string(Path::new(FIXTURE))
        .unwrap_or_else(|e| panic!("reference fixture {FIXTURE} unreadable: {e}"));
    let reference: Reference = serde_json::from_str(&text).expect("fixture is valid JSON");
    eprintln!(
        "reference ids from {} ({} cases)",
        reference.generator,
        reference.cases.len()
    );
    assert!(reference.cases.len() >= 10, "fixture has too few cases");
    let cases: Vec<(String, Vec<u32>)> = reference
        .cases
        .into_iter()
        .map(|c| (c.text, c.ids))
        .collect();
    assert!(
        cases.iter().any(|(text, _)| text == PROBE),
        "fixture includes the notes' probe"
    );
    for (text, want) in &cases {
        let got = tk.encode(text, true).expect("encodes");
        assert_eq!(&got, want, "ids for {text:?}");
        let back = tk.decode(&got, false).expect("decodes");
        assert_eq!(&back, text, "round trip of {text:?}");
    }
}

#[test]
fn ids_match_the_verified_hf_construction_on_samples() {
    let tk = &smollm2().tokenizer;
    let oracle = notes_reference_tokenizer(&smollm2().spec);
    for text in sample_texts() {
        let want = oracle
            .encode(text, false)
            .expect("oracle encodes")
            .get_ids()
            .to_vec();
        assert_eq!(
            tk.encode(text, true).expect("encodes"),
            want,
            "ids for {text:?}"
        );
    }
}

#[test]
fn decode_inverts_encode() {
    let tk = &smollm2().tokenizer;
    for text in sample_texts() {
        for parse_special in [true, false] {
            let ids = tk.encode(text, parse_special).expect("encodes");
            assert_eq!(
                tk.decode(&ids, false).expect("decodes"),
                text,
                "parse_special={parse_special}"
            );
        }
    }
}

#[test]
fn parse_special_controls_whether_control_tokens_are_recognised() {
    let tk = &smollm2().tokenizer;
    assert_eq!(tk.encode("<|im_start|>", true).expect("encodes"), vec![1]);
    assert_eq!(
        tk.encode("<|im_start|>user<|im_end|>", true)
            .expect("encodes"),
        vec![1, 4093, 2]
    );
    let plain = tk.encode("<|im_start|>", false).expect("encodes");
    assert!(
        plain.len() > 1 && !plain.contains(&1),
        "typed text stays text: {plain:?}"
    );
    assert_eq!(tk.encode("", true).expect("encodes"), Vec::<u32>::new());
}

#[test]
fn skip_special_drops_control_tokens_only() {
    let tk = &smollm2().tokenizer;
    let ids = tk
        .encode("<|im_start|>assistant\nHi there<|im_end|>", true)
        .expect("encodes");
    assert_eq!(
        tk.decode(&ids, true).expect("decodes"),
        "assistant\nHi there"
    );
    assert_eq!(
        tk.decode(&ids, false).expect("decodes"),
        "<|im_start|>assistant\nHi there<|im_end|>"
    );
}

#[test]
fn vocabulary_facts() {
    let tk = &smollm2().tokenizer;
    assert_eq!(tk.vocab_size(), 49152);
    assert_eq!(tk.token_text(0), Some("<|endoftext|>"));
    assert_eq!(tk.token_text(19556), Some("Hello"));
    assert_eq!(tk.token_text(49152), None);
    assert_eq!(tk.bos_token(), Some("<|im_start|>"));
    assert_eq!(tk.eos_token(), Some("<|im_end|>"));
    assert_eq!(tk.eos_token_ids(), vec![2]);
    assert!(!tk.add_bos_token());
    assert!(matches!(
        tk.decode(&[5, 49152], false),
        Err(Error::UnknownTokenId {
            id: 49152,
            vocab_size: 49152
        })
    ));
}

#[test]
fn eot_ids_join_eos_without_duplicates() {
    let mut spec = smollm2().spec.clone();
    spec.eot_token_ids = vec![0, 2];
    let tk = Tokenizer::from_spec(&spec).expect("builds");
    assert_eq!(tk.eos_token_ids(), vec![2, 0]);
}

#[test]
fn unknown_tokenizer_kinds_are_refused() {
    let mut spec = smollm2().spec.clone();
    spec.model = "bert".to_string();
    match Tokenizer::from_spec(&spec) {
        Err(Error::UnsupportedTokenizer { model, pre }) => {
            assert_eq!(model, "bert");
            assert_eq!(pre.as_deref(), Some("smollm"));
        }
        other => panic!("expected UnsupportedTokenizer, got {other:?}"),
    }
    let mut spec = smollm2().spec.clone();
    spec.pre = Some("no-such-pre".to_string());
    assert!(matches!(
        Tokenizer::from_spec(&spec),
        Err(Error::UnsupportedTokenizer { .. })
    ));
}

#[test]
fn inconsistent_specs_are_refused() {
    let mut spec = smollm2().spec.clone();
    spec.token_types.pop();
    assert!(matches!(
        Tokenizer::from_spec(&spec),
        Err(Error::InvalidSpec { .. })
    ));
    let mut spec = smollm2().spec.clone();
    spec.eos_token_id = Some(1_000_000);
    assert!(matches!(
        Tokenizer::from_spec(&spec),
        Err(Error::InvalidSpec { .. })
    ));
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    assert_send_sync::<rotor_text::ChatTemplate>();
}

/// A toy byte-level vocabulary: the 256 byte chars (ids 0..256) plus `words`, no merges.
fn toy_spec(pre: &str, words: &[&str]) -> TokenizerSpec {
    let mut shifted = 0x100u32;
    let mut tokens: Vec<String> = (0..=255u8)
        .map(|b| {
            let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
            let ch = if printable {
                char::from(b)
            } else {
                shifted += 1;
                char::from_u32(shifted - 1).expect("valid char")
            };
            ch.to_string()
        })
        .collect();
    tokens.extend(words.iter().map(|w| w.to_string()));
    TokenizerSpec {
        model: "gpt2".to_string(),
        pre: Some(pre.to_string()),
        token_types: vec![1; tokens.len()],
        tokens,
        merges: Vec::new(),
        scores: Vec::new(),
        bos_token_id: None,
        eos_token_id: None,
        eot_token_ids: Vec::new(),
        add_bos_token: false,
        add_space_prefix: false,
    }
}

#[test]
fn llama3_pre_tokenizer_groups_digits_by_three_and_ignores_merges() {
    // Whole words found in the vocabulary become one token (ignore_merges), so the ids show
    // where the pre-tokenizer cut: "12345" -> "123" + "45", " world" stays one word.
    let tk = Tokenizer::from_spec(&toy_spec("llama-bpe", &["123", "45", "Ġworld", "12345"]))
        .expect("builds");
    let ids = tk.encode("12345 world", false).expect("encodes");
    assert_eq!(ids, vec![256, 257, 258]);
    assert_eq!(tk.decode(&ids, false).expect("decodes"), "12345 world");
}

#[test]
fn smollm_pre_tokenizer_splits_single_digits_before_merging() {
    // With the merge "1 2", GPT-2's rule keeps "12" together and merges it; SmolLM's rule cuts
    // digits apart first, so the merge never applies.
    let mut spec = toy_spec("smollm", &["12"]);
    spec.merges = vec!["1 2".to_string()];
    let smollm = Tokenizer::from_spec(&spec).expect("builds");
    assert_eq!(
        smollm.encode("12", false).expect("encodes"),
        vec![u32::from(b'1'), u32::from(b'2')]
    );
    spec.pre = Some("gpt-2".to_string());
    let gpt2 = Tokenizer::from_spec(&spec).expect("builds");
    assert_eq!(gpt2.encode("12", false).expect("encodes"), vec![256]);
}

/// A toy SentencePiece vocabulary with Llama 2's settings: `<s>` (control), a few scored pieces,
/// then the 256 byte-fallback tokens; spaces are prefixed.
fn toy_sentencepiece_spec() -> TokenizerSpec {
    let mut tokens: Vec<String> = ["<s>", "▁", "h", "i", "hi", "▁hi"]
        .iter()
        .map(|t| t.to_string())
        .collect();
    let mut scores = vec![0.0, -5.0, -5.0, -5.0, -2.0, -1.0];
    let mut token_types = vec![3, 1, 1, 1, 1, 1];
    for byte in 0..=255u8 {
        tokens.push(format!("<0x{byte:02X}>"));
        scores.push(0.0);
        token_types.push(6);
    }
    TokenizerSpec {
        model: "llama".to_string(),
        pre: Some("default".to_string()),
        tokens,
        token_types,
        merges: Vec::new(),
        scores,
        bos_token_id: Some(0),
        eos_token_id: None,
        eot_token_ids: Vec::new(),
        add_bos_token: true,
        add_space_prefix: true,
    }
}

#[test]
fn sentencepiece_space_prefix_starts_each_text_after_a_special_and_decode_drops_the_first() {
    let tk = Tokenizer::from_spec(&toy_sentencepiece_spec()).expect("builds");
    assert_eq!(tk.encode("hi", false).expect("encodes"), vec![5]);
    assert_eq!(tk.encode("hi hi", false).expect("encodes"), vec![5, 5]);
    assert_eq!(tk.encode("<s>hi", true).expect("encodes"), vec![0, 5]);
    // 'é' is not a piece: its UTF-8 bytes C3 A9 become <0xC3> <0xA9> (ids 6 + byte).
    assert_eq!(
        tk.encode("é", false).expect("encodes"),
        vec![1, 6 + 0xC3, 6 + 0xA9]
    );
    // The space encoding added is dropped from the first token only, as llama.cpp does.
    assert_eq!(tk.decode(&[5, 5], false).expect("decodes"), "hi hi");
    assert_eq!(tk.decode(&[0, 5], false).expect("decodes"), "<s> hi");
    assert_eq!(tk.decode(&[0, 5], true).expect("decodes"), " hi");
    assert!(tk.add_bos_token());
}
