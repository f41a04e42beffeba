//! Gemma 3 (SentencePiece-style) and Qwen2-style (byte-level BPE, "qwen2" pre-tokenizer) ids
//! against llama.cpp's, from the fixtures scripts/golden/tokenizer_fixtures.py writes.

use std::path::Path;

use rotor_text::{TokenKind, Tokenizer};
use serde::Deserialize;

use crate::model::{gemma3, qwen2};

#[derive(Deserialize)]
struct Reference {
    generator: String,
    model_sha256: String,
    cases: Vec<Case>,
}

/// llama.cpp's ids for `text`, without BOS, parsing special tokens (`ids`) and not (`ids_plain`).
#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    ids_plain: Vec<u32>,
}

fn reference(name: &str) -> Reference {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("fixture {} unreadable: {e}", path.display()));
    let reference: Reference = serde_json::from_str(&text).expect("fixture is valid JSON");
    eprintln!(
        "{name}: ids from {} for model sha256 {} ({} cases)",
        reference.generator,
        reference.model_sha256,
        reference.cases.len()
    );
    assert!(reference.cases.len() >= 20, "{name} has too few cases");
    reference
}

/// Compares every case both ways and reports all mismatches at once.
fn assert_ids_match(tk: &Tokenizer, fixture: &str) {
    let reference = reference(fixture);
    let mut mismatches = Vec::new();
    for case in &reference.cases {
        for (parse_special, want) in [(true, &case.ids), (false, &case.ids_plain)] {
            let got = tk.encode(&case.text, parse_special).expect("encodes");
            if &got != want {
                mismatches.push(format!(
                    "{:?} (parse_special={parse_special}):\n  got  {got:?}\n  want {want:?}",
                    case.text
                ));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} encodings differ from llama.cpp:\n{}",
        mismatches.len(),
        2 * reference.cases.len(),
        mismatches.join("\n")
    );
}

/// `decode(encode(text)) == text`, except that a SentencePiece vocabulary reads a typed `▁`
/// (U+2581, its space mark) back as a space, as llama.cpp does.
fn assert_round_trips(tk: &Tokenizer, fixture: &str, sentencepiece: bool) {
    for case in reference(fixture).cases {
        let want = match sentencepiece {
            true => case.text.replace('\u{2581}', " "),
            false => case.text.clone(),
        };
        for parse_special in [true, false] {
            let ids = tk.encode(&case.text, parse_special).expect("encodes");
            assert_eq!(
                tk.decode(&ids, false).expect("decodes"),
                want,
                "parse_special={parse_special}"
            );
        }
    }
}

#[test]
fn gemma3_ids_match_llama_cpp() {
    assert_ids_match(&gemma3().tokenizer, "tokenizer_gemma3.json");
}

#[test]
fn gemma3_decode_inverts_encode() {
    assert_round_trips(&gemma3().tokenizer, "tokenizer_gemma3.json", true);
}

#[test]
fn qwen2_ids_match_llama_cpp() {
    assert_ids_match(&qwen2().tokenizer, "tokenizer_qwen2.json");
}

#[test]
fn qwen2_decode_inverts_encode() {
    assert_round_trips(&qwen2().tokenizer, "tokenizer_qwen2.json", false);
}

#[test]
fn gemma3_vocabulary_facts() {
    let gemma = gemma3();
    let tk = &gemma.tokenizer;
    assert_eq!(gemma.spec.model, "llama");
    assert_eq!(gemma.spec.scores.len(), 262_144);
    assert!(
        !gemma.spec.add_space_prefix,
        "Gemma encodes without a space prefix"
    );
    assert!(tk.add_bos_token());
    assert_eq!(tk.vocab_size(), 262_144);
    assert_eq!(tk.bos_token(), Some("<bos>"));
    assert_eq!(tk.eos_token(), Some("<eos>"));
    assert_eq!(tk.token_text(105), Some("<start_of_turn>"));
    assert_eq!(tk.token_kind(248), Some(TokenKind::Byte));
    assert_eq!(tk.token_text(248), Some("<0x0A>"));
    // "\n" is a user-defined token: matched before SentencePiece, even without parse_special.
    assert_eq!(tk.encode("\n", false).expect("encodes"), vec![107]);
    assert_eq!(
        tk.encode("<start_of_turn>user\n", true).expect("encodes"),
        vec![105, 2364, 107]
    );
}

#[test]
fn gemma3_end_markers_are_control_tokens_that_end_generation() {
    let tk = &gemma3().tokenizer;
    // The GGUF names only <eos> (1); llama.cpp also stops at <end_of_turn> (106) and treats the
    // user-defined "</s>" (212) as an end-of-generation control token.
    assert_eq!(tk.eos_token_ids(), vec![1]);
    assert_eq!(tk.end_of_generation_ids(), &[1, 106, 212]);
    assert_eq!(tk.token_kind(212), Some(TokenKind::Control));
    assert_eq!(tk.encode("</s>", true).expect("encodes"), vec![212]);
    assert_ne!(tk.encode("</s>", false).expect("encodes"), vec![212]);
    // "<s>" stays user-defined: cut out of plain text too.
    assert_eq!(tk.encode("<s>", false).expect("encodes"), vec![203]);
    assert_eq!(tk.decode(&[212, 203], true).expect("decodes"), "<s>");
}

#[test]
fn gemma3_spaces_are_written_as_the_lower_block_and_not_prefixed() {
    let tk = &gemma3().tokenizer;
    let ids = tk.encode("Hello world", false).expect("encodes");
    let pieces: Vec<&str> = ids.iter().filter_map(|&id| tk.token_text(id)).collect();
    assert_eq!(pieces, vec!["Hello", "▁world"]);
    assert_eq!(tk.decode(&ids, false).expect("decodes"), "Hello world");
}

#[test]
fn gemma3_characters_missing_from_the_vocabulary_fall_back_to_bytes() {
    let tk = &gemma3().tokenizer;
    // U+F0000 (supplementary private use) is no Gemma piece: its four UTF-8 bytes become
    // <0xF3> <0xB0> <0x80> <0x80>.
    let ids = tk.encode("\u{F0000}", false).expect("encodes");
    let pieces: Vec<&str> = ids.iter().filter_map(|&id| tk.token_text(id)).collect();
    assert_eq!(pieces, vec!["<0xF3>", "<0xB0>", "<0x80>", "<0x80>"]);
    assert!(ids
        .iter()
        .all(|&id| tk.token_kind(id) == Some(TokenKind::Byte)));
    assert_eq!(tk.decode(&ids, false).expect("decodes"), "\u{F0000}");
}

#[test]
fn qwen2_splits_digits_one_by_one_although_the_vocabulary_merges_them() {
    let tk = &qwen2().tokenizer;
    assert_eq!(qwen2().spec.pre.as_deref(), Some("qwen2"));
    // The trained vocabulary holds "2024" with a leading space and "2345"; the qwen2 pattern
    // still cuts every digit apart, so each id is one digit.
    let ids = tk.encode(" 2024 12345", false).expect("encodes");
    let pieces: Vec<String> = ids
        .iter()
        .map(|&id| tk.decode(&[id], false).expect("decodes"))
        .collect();
    assert_eq!(
        pieces,
        vec![" ", "2", "0", "2", "4", " ", "1", "2", "3", "4", "5"]
    );
}
