//! Pre-tokenizer selection: which regex splits the text into words before byte-level BPE.
//!
//! GGUF names the pre-tokenizer in `tokenizer.ggml.pre`; llama.cpp maps each name to an ordered
//! list of regexes. Each regex in turn splits every current piece into its matches and the text
//! between them (both kept), and BPE then runs on each final piece separately. The patterns below
//! are the ones llama.cpp uses (with `(?i:...)` spelled out as character classes), so the ids we
//! produce equal llama.cpp's.

/// GPT-2's word pattern: contractions, optionally space-led letter runs, digit runs, symbol
/// runs, and whitespace not followed by a non-space.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// Llama 3's pattern: case-insensitive contractions, letters led by at most one non-letter,
/// digits in groups of up to three, symbols with trailing newlines, newline runs.
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen 2's pattern: Llama 3's with single digits.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How the text is cut into words before BPE, and whether whole-word vocabulary hits skip merging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PreTokenizerRule {
    /// Applied in order; see the module docs.
    pub(crate) regexes: Vec<&'static str>,
    /// Llama 3 style: a word that is itself in the vocabulary becomes one token without merging.
    pub(crate) ignore_merges: bool,
}

impl PreTokenizerRule {
    /// The rule for a `tokenizer.ggml.pre` name, or `None` when it is not implemented here.
    /// A missing name gets llama.cpp's default BPE rule.
    pub(crate) fn for_name(pre: Option<&str>) -> Option<PreTokenizerRule> {
        let rule = |regexes: Vec<&'static str>, ignore_merges| PreTokenizerRule {
            regexes,
            ignore_merges,
        };
        let name = pre.unwrap_or("default");
        Some(match name {
            "default" => rule(
                vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
                false,
            ),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "pixtral" | "falcon-h1"
            | "midm-2.0" | "lfm2" | "dbrx" | "smaug-bpe" => {
                rule(vec![LLAMA3], name != "dbrx" && name != "smaug-bpe")
            }
            "qwen2" | "deepseek-r1-qwen" | "megrez" | "stablelm2" | "hunyuan" => {
                rule(vec![QWEN2], false)
            }
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" => rule(vec![r"\p{N}", GPT2], false),
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v1-en"
            | "jina-v2-es" | "jina-v2-de" | "jina-v2-code" | "roberta-bpe" | "mpt" | "olmo"
            | "jais" | "trillion" => rule(vec![GPT2], false),
            "falcon" => rule(
                vec![r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
                false,
            ),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smollm_splits_digits_before_gpt2() {
        let rule = PreTokenizerRule::for_name(Some("smollm")).expect("smollm is supported");
        assert_eq!(rule.regexes, vec![r"\p{N}", GPT2]);
        assert!(!rule.ignore_merges);
    }

    #[test]
    fn llama3_ignores_merges_and_unknown_names_are_rejected() {
        assert!(
            PreTokenizerRule::for_name(Some("llama-bpe"))
                .expect("supported")
                .ignore_merges
        );
        assert_eq!(PreTokenizerRule::for_name(Some("no-such-pre")), None);
    }
}
