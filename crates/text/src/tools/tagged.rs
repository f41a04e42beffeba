//! Calls between `<tool_call>` and `</tool_call>` (hermes, qwen3_coder).
//!
//! The body is JSON (an object or a list of objects) or qwen3_coder's XML
//! (`<function=name><parameter=p>value</parameter></function>`); both formats accept both,
//! since models of either family slip into the other's body. qwen3_coder also accepts a bare
//! `<function=…>…</function>` without the `<tool_call>` wrapper.

use super::format::{leading_ws, Format, RawCall, Scan};
use super::json_calls::calls_from_json;
use super::tool_set::ToolSet;
use super::xml_calls::{calls_from_xml, FUNCTION_CLOSE, FUNCTION_OPEN};

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

#[derive(Debug, Clone)]
pub(crate) struct TaggedBlock {
    bare_functions: bool,
    /// Bytes of the markup already searched for the closing tag.
    searched: usize,
}

impl TaggedBlock {
    pub fn hermes() -> TaggedBlock {
        TaggedBlock {
            bare_functions: false,
            searched: 0,
        }
    }

    pub fn qwen3_coder() -> TaggedBlock {
        TaggedBlock {
            bare_functions: true,
            searched: 0,
        }
    }
}

impl Format for TaggedBlock {
    fn markers(&self) -> &'static [&'static str] {
        if self.bare_functions {
            &[OPEN, FUNCTION_OPEN]
        } else {
            &[OPEN]
        }
    }

    fn begin(&mut self) {
        self.searched = 0;
    }

    fn scan(&mut self, markup: &str, at_end: bool, tools: &ToolSet) -> Scan {
        let wrapped = markup.starts_with(OPEN);
        let (body_start, close) = if wrapped {
            (OPEN.len(), CLOSE)
        } else {
            (0, FUNCTION_CLOSE)
        };
        if wrapped && !body_may_be_calls(&markup[body_start..]) {
            return Scan::NotACall {
                consumed: body_start,
            };
        }
        let mut from = self.searched.saturating_sub(close.len()).max(body_start);
        while !markup.is_char_boundary(from) {
            from -= 1;
        }
        if let Some(at) = markup[from..].find(close) {
            let at = from + at;
            // A block the model opened again without closing this one ends where the next
            // opens (`<tool_call>{…}\n<tool_call>{…}</tool_call>`).
            if let Some(next) = wrapped.then(|| markup[from..at].find(OPEN)).flatten() {
                return decided(decode(&markup[body_start..from + next], tools), from + next);
            }
            let close_end = at + close.len();
            // A bare function's closing tag is part of its body.
            let body_end = if wrapped { at } else { close_end };
            return decided(decode(&markup[body_start..body_end], tools), close_end);
        }
        if wrapped {
            if let Some(next) = markup[from..].find(OPEN) {
                return decided(decode(&markup[body_start..from + next], tools), from + next);
            }
        }
        self.searched = markup.len();
        if at_end {
            // Only the closing tag missing: the body alone decides.
            decided(decode(&markup[body_start..], tools), markup.len())
        } else {
            Scan::NeedMore
        }
    }
}

fn decided(calls: Option<Vec<RawCall>>, consumed: usize) -> Scan {
    match calls {
        Some(calls) => Scan::Calls { consumed, calls },
        None => Scan::NotACall { consumed },
    }
}

fn decode(body: &str, tools: &ToolSet) -> Option<Vec<RawCall>> {
    let body = body.trim();
    if body.starts_with(FUNCTION_OPEN) {
        calls_from_xml(body, tools)
    } else {
        calls_from_json(body)
    }
}

/// Whether a body's start is still compatible with JSON or XML calls.
fn body_may_be_calls(body: &str) -> bool {
    let body = &body[leading_ws(body)..];
    let Some(first) = body.chars().next() else {
        return true;
    };
    first == '{'
        || first == '['
        || body.starts_with(FUNCTION_OPEN)
        || FUNCTION_OPEN.starts_with(body)
}
