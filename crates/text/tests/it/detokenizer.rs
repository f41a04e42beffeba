use std::collections::HashMap;
use std::sync::Arc;

use rotor_text::{Detokenizer, TokenKind, Tokenizer};

use crate::model::{gemma3, smollm2};

const REPLACEMENT: char = '\u{FFFD}';

/// Pushes ids one by one; returns every chunk, `finish()`'s last.
fn stream(tokenizer: &Arc<Tokenizer>, ids: &[u32], skip_special: bool) -> Vec<String> {
    let mut detok = Detokenizer::new(Arc::clone(tokenizer), skip_special);
    let mut chunks: Vec<String> = ids
        .iter()
        .map(|&id| detok.push(id).expect("push"))
        .collect();
    chunks.push(detok.finish().expect("finish"));
    chunks
}

/// id of the single-byte token for each byte value the vocabulary has one for.
fn byte_token_ids(tk: &Tokenizer) -> HashMap<u8, u32> {
    let mut map = HashMap::new();
    for id in 0..tk.vocab_size() as u32 {
        if tk.token_kind(id) != Some(TokenKind::Normal)
            || tk.token_text(id).map(|t| t.chars().count()) != Some(1)
        {
            continue;
        }
        if let [byte] = tk.decode_bytes(&[id], false).expect("decodes")[..] {
            map.entry(byte).or_insert(id);
        }
    }
    // SmolLM2 has 235 of the 256 (some control bytes and bytes invalid in UTF-8 are missing);
    // every byte these tests use is present.
    for byte in "x a🦀é中 b".bytes() {
        assert!(
            map.contains_key(&byte),
            "no single-byte token for {byte:#04x}"
        );
    }
    map
}

#[test]
fn streamed_text_equals_full_decode() {
    let tk = &smollm2().tokenizer;
    let texts = [
        "Hello world, it's 2024-11-23: 12345 tokens!",
        " leading space and  double  spaces ",
        "line one\nline two\n\n\tindented\r\n",
        "naïve café — “quotes” … 日本語のテキスト 中文 한국어",
        "emoji 🦀🤖👍🏽 family 👨‍👩‍👧 flag 🇫🇷 done",
        "<|im_start|>assistant\nSure!<|im_end|>",
    ];
    for text in texts {
        for skip_special in [false, true] {
            let ids = tk.encode(text, true).expect("encodes");
            let chunks = stream(tk, &ids, skip_special);
            assert_eq!(
                chunks.concat(),
                tk.decode(&ids, skip_special).expect("decodes"),
                "{text:?}"
            );
            assert!(
                chunks.iter().all(|c| !c.contains(REPLACEMENT)),
                "{text:?}: {chunks:?}"
            );
        }
    }
}

#[test]
fn characters_split_over_byte_tokens_come_out_whole() {
    let tk = &smollm2().tokenizer;
    let bytes = byte_token_ids(tk);
    let text = "a🦀é中 b";
    let ids: Vec<u32> = text.bytes().map(|b| bytes[&b]).collect();
    let chunks = stream(tk, &ids, false);
    // One chunk per completed character, nothing while a character is incomplete.
    let expected: Vec<&str> = vec!["a", "", "", "", "🦀", "", "é", "", "", "中", " ", "b", ""];
    assert_eq!(chunks, expected);
}

#[test]
fn an_incomplete_character_is_held_until_finish() {
    let tk = &smollm2().tokenizer;
    let bytes = byte_token_ids(tk);
    let mut detok = Detokenizer::new(Arc::clone(tk), false);
    assert_eq!(detok.push(bytes[&b'x']).expect("push"), "x");
    // First two bytes of the 4-byte "🦀" (F0 9F A6 80), then the stream ends.
    assert_eq!(detok.push(bytes[&0xF0]).expect("push"), "");
    assert_eq!(detok.push(bytes[&0x9F]).expect("push"), "");
    assert_eq!(detok.finish().expect("finish"), REPLACEMENT.to_string());
    assert_eq!(detok.finish().expect("finish again"), "");
}

#[test]
fn skipped_special_tokens_emit_nothing() {
    let tk = &smollm2().tokenizer;
    let ids = tk
        .encode("<|im_start|>Hi<|im_end|>", true)
        .expect("encodes");
    assert_eq!(stream(tk, &ids, true).concat(), "Hi");
    assert_eq!(stream(tk, &ids, false).concat(), "<|im_start|>Hi<|im_end|>");
}

#[test]
fn unknown_id_is_an_error() {
    let tk = &smollm2().tokenizer;
    let mut detok = Detokenizer::new(Arc::clone(tk), false);
    assert!(detok.push(60_000).is_err());
}

#[test]
fn gemma3_stream_assembles_spaces_and_byte_fallback_characters() {
    let tk = &gemma3().tokenizer;
    // U+F0000 is four <0xNN> byte tokens in Gemma's vocabulary; "▁" pieces carry the spaces.
    let text = "<start_of_turn>model\nSure — 日本語, 🦀 and \u{F0000}!  Two  spaces.<end_of_turn>";
    let ids = tk.encode(text, true).expect("encodes");
    for skip_special in [false, true] {
        let chunks = stream(tk, &ids, skip_special);
        assert_eq!(
            chunks.concat(),
            tk.decode(&ids, skip_special).expect("decodes")
        );
        assert!(
            chunks.iter().all(|c| !c.contains(REPLACEMENT)),
            "{chunks:?}"
        );
    }
    assert_eq!(stream(tk, &ids, false).concat(), text);
    let fallback = tk.encode("\u{F0000}", false).expect("encodes");
    assert_eq!(
        stream(tk, &fallback, false),
        vec!["", "", "", "\u{F0000}", ""]
    );
}
