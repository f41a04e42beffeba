//! Roles llama.cpp gives tokens by their text, whatever the GGUF's token types say.
//!
//! When llama.cpp loads a vocabulary it looks tokens up by text: end-of-generation markers
//! (`<end_of_turn>`, `<|im_end|>`, `</s>`, ...) and fill-in-the-middle markers that are not
//! control tokens become control tokens, so they are recognised only with `parse_special` and
//! dropped when decoding skips specials; a few gpt-oss markers become user-defined. The ids equal
//! llama.cpp's only with these changes applied (Gemma 3's user-defined `</s>` is one such token:
//! llama.cpp does not cut it out of plain text). The same pass yields llama.cpp's
//! end-of-generation set.
//!
//! Mirrors llama.cpp's `llama_vocab::impl::load` (the llama-cpp-python 0.3.36 vendored copy).
//! One simplification: llama.cpp promotes only the first text it meets per fill-in-the-middle
//! role (hash-map order); we promote every listed text, which differs only for a vocabulary that
//! holds two spellings of one role.

use crate::TokenKind;

/// Texts that end generation (and become control tokens).
const END_OF_GENERATION: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// Fill-in-the-middle markers (become control tokens): prefix, suffix, middle.
const FILL_IN_THE_MIDDLE: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];

/// Fill-in-the-middle pad, repo and file-separator markers: control tokens that also end
/// generation.
const FILL_IN_THE_MIDDLE_ENDS: &[&str] = &[
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "[PAD]",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
];

/// gpt-oss markers that are always rendered (user-defined).
const ALWAYS_RENDERED: &[&str] = &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

/// Adjusts `kinds` as llama.cpp does and returns its end-of-generation ids, ascending:
/// `declared` (eos and the GGUF's eot/eom ids) plus every token the passes above pick.
pub(crate) fn apply(tokens: &[String], kinds: &mut [TokenKind], declared: &[u32]) -> Vec<u32> {
    let mut end_of_generation: Vec<u32> = declared.to_vec();
    for (id, text) in tokens.iter().enumerate() {
        let text = text.as_str();
        let ends = END_OF_GENERATION.contains(&text) || FILL_IN_THE_MIDDLE_ENDS.contains(&text);
        if ends || FILL_IN_THE_MIDDLE.contains(&text) {
            kinds[id] = TokenKind::Control;
        }
        if ends {
            end_of_generation.push(id as u32);
        }
        if ALWAYS_RENDERED.contains(&text) {
            kinds[id] = TokenKind::UserDefined;
        }
    }
    end_of_generation.sort_unstable();
    end_of_generation.dedup();

    let find = |ends: &[u32], wanted: &str| {
        ends.iter()
            .copied()
            .find(|&id| tokens[id as usize] == wanted)
    };
    // gpt-oss and solar-open end a message with <|end|> but keep generating after it.
    let has_call = find(&end_of_generation, "<|call|>").is_some()
        || find(&end_of_generation, "<|calls|>").is_some();
    let ends_elsewhere = find(&end_of_generation, "<|return|>").is_some()
        || find(&end_of_generation, "<|flush|>").is_some();
    if let (true, true, Some(end)) = (
        has_call,
        ends_elsewhere,
        find(&end_of_generation, "<|end|>"),
    ) {
        end_of_generation.retain(|&id| id != end);
        kinds[end as usize] = TokenKind::UserDefined;
    }
    // Gemma 4 and PLaMo use </s> as ordinary text.
    let normal_s = find(&end_of_generation, "<|tool_response>").is_some()
        || find(&end_of_generation, "<|plamo:eos|>").is_some();
    if let (true, Some(s)) = (normal_s, find(&end_of_generation, "</s>")) {
        end_of_generation.retain(|&id| id != s);
        kinds[s as usize] = TokenKind::Normal;
    }
    end_of_generation
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(texts: &[&str], kinds: &[TokenKind], declared: &[u32]) -> (Vec<TokenKind>, Vec<u32>) {
        let tokens: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
        let mut kinds = kinds.to_vec();
        let ends = apply(&tokens, &mut kinds, declared);
        (kinds, ends)
    }

    #[test]
    fn end_markers_become_control_and_end_generation() {
        use TokenKind::*;
        let (kinds, ends) = run(
            &[
                "<eos>",
                "</s>",
                "<end_of_turn>",
                "hello",
                "<|fim_prefix|>",
                "<|file_sep|>",
            ],
            &[Control, UserDefined, Control, Normal, Normal, Normal],
            &[0],
        );
        assert_eq!(
            kinds,
            vec![Control, Control, Control, Normal, Control, Control]
        );
        assert_eq!(ends, vec![0, 1, 2, 5]);
    }

    #[test]
    fn gpt_oss_end_is_not_an_end_when_return_and_call_exist() {
        use TokenKind::*;
        let (kinds, ends) = run(
            &["<|end|>", "<|return|>", "<|call|>", "<|channel|>"],
            &[Control; 4],
            &[],
        );
        assert_eq!(kinds, vec![UserDefined, Control, Control, UserDefined]);
        assert_eq!(ends, vec![1, 2]);
    }

    #[test]
    fn gemma4_keeps_s_close_as_text() {
        use TokenKind::*;
        let (kinds, ends) = run(&["</s>", "<|tool_response>"], &[Normal, Control], &[]);
        assert_eq!(kinds, vec![Normal, Control]);
        assert_eq!(ends, vec![1]);
    }
}
