//! Splitting text at special tokens before BPE, the way llama.cpp does.
//!
//! Special tokens (control, user-defined and unknown types) are matched literally and become one
//! id each. Matching goes token by token, longest token text first (ties: lower id first); each
//! token cuts every still-unmatched fragment at all its occurrences, left to right. With
//! `parse_special = false` only user-defined tokens are matched, so "<|im_start|>" typed by a user
//! is tokenized as ordinary text.

/// A piece of the input: raw text for BPE, or an already-identified special token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fragment<'a> {
    Text(&'a str),
    Token(u32),
}

#[derive(Debug, Clone)]
struct SpecialToken {
    id: u32,
    text: String,
    /// Matched even when the caller did not ask to parse special tokens.
    always: bool,
}

/// The special tokens of a vocabulary, ordered for matching.
#[derive(Debug, Clone, Default)]
pub(crate) struct SpecialSplitter {
    tokens: Vec<SpecialToken>,
}

impl SpecialSplitter {
    /// `specials` yields `(id, text, always)`; empty texts are ignored.
    pub(crate) fn new(specials: impl IntoIterator<Item = (u32, String, bool)>) -> SpecialSplitter {
        let mut tokens: Vec<SpecialToken> = specials
            .into_iter()
            .filter(|(_, text, _)| !text.is_empty())
            .map(|(id, text, always)| SpecialToken { id, text, always })
            .collect();
        tokens.sort_by(|a, b| b.text.len().cmp(&a.text.len()).then(a.id.cmp(&b.id)));
        SpecialSplitter { tokens }
    }

    pub(crate) fn split<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let mut fragments = vec![Fragment::Text(text)];
        for special in self.tokens.iter().filter(|t| parse_special || t.always) {
            if !text.contains(special.text.as_str()) {
                continue;
            }
            let mut next = Vec::with_capacity(fragments.len() + 2);
            for fragment in fragments {
                match fragment {
                    Fragment::Text(raw) => cut(raw, special, &mut next),
                    token => next.push(token),
                }
            }
            fragments = next;
        }
        fragments.retain(|f| !matches!(f, Fragment::Text("")));
        fragments
    }
}

fn cut<'a>(raw: &'a str, special: &SpecialToken, out: &mut Vec<Fragment<'a>>) {
    let mut rest = raw;
    while let Some(at) = rest.find(special.text.as_str()) {
        out.push(Fragment::Text(&rest[..at]));
        out.push(Fragment::Token(special.id));
        rest = &rest[at + special.text.len()..];
    }
    out.push(Fragment::Text(rest));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splitter() -> SpecialSplitter {
        SpecialSplitter::new([
            (1, "<|im_start|>".to_string(), false),
            (2, "<|im_end|>".to_string(), false),
            (7, "<s>".to_string(), false),
            (9, "<user_tok>".to_string(), true),
        ])
    }

    #[test]
    fn specials_cut_text_at_every_occurrence() {
        let got = splitter().split("<|im_start|>user\nhi<|im_end|><|im_end|>x", true);
        assert_eq!(
            got,
            vec![
                Fragment::Token(1),
                Fragment::Text("user\nhi"),
                Fragment::Token(2),
                Fragment::Token(2),
                Fragment::Text("x"),
            ]
        );
    }

    #[test]
    fn without_parse_special_only_user_defined_tokens_match() {
        let got = splitter().split("<s>a<user_tok>b", false);
        assert_eq!(
            got,
            vec![
                Fragment::Text("<s>a"),
                Fragment::Token(9),
                Fragment::Text("b")
            ]
        );
    }
}
