//! pythonic: `[f(a=1, b="x"), g()]` as the whole start of the output, or wrapped in Llama 4's
//! `<|python_start|>` … `<|python_end|>`.
//!
//! A `[` at the start of the output is only held as markup while it can still be a call list:
//! `[` then a name then `(`; anything else (`[1]`, `[Note: …`) is released as content at once.

use super::format::{leading_ws, Format, Scan};
use super::python_literal::calls_from_list;
use super::scanner::{BracketScanner, Bracketed};
use super::tool_set::ToolSet;

const START: &str = "<|python_start|>";
const END: &str = "<|python_end|>";

#[derive(Debug, Clone)]
pub(crate) struct Pythonic {
    scanner: BracketScanner,
    /// End of the list (relative to its `[`), once found.
    list_end: Option<usize>,
}

impl Pythonic {
    pub fn new() -> Pythonic {
        Pythonic {
            scanner: BracketScanner::new(true),
            list_end: None,
        }
    }
}

impl Format for Pythonic {
    fn markers(&self) -> &'static [&'static str] {
        &[START]
    }

    fn output_start_markers(&self) -> &'static [&'static str] {
        &["["]
    }

    fn begin(&mut self) {
        *self = Pythonic::new();
    }

    fn scan(&mut self, markup: &str, at_end: bool, _tools: &ToolSet) -> Scan {
        let wrapped = markup.starts_with(START);
        let marker_len = if wrapped { START.len() } else { 0 };
        let list_start = marker_len + leading_ws(&markup[marker_len..]);
        let list = &markup[list_start..];
        let reject = Scan::NotACall {
            consumed: marker_len.max(1),
        };
        let undecided = if at_end {
            Scan::NotACall {
                consumed: markup.len(),
            }
        } else {
            Scan::NeedMore
        };
        if list.is_empty() {
            return undecided;
        }
        match plausible_call_list(list) {
            Some(false) => return reject,
            None => return undecided,
            Some(true) => {}
        }
        let list_end = match self.list_end {
            Some(end) => end,
            None => match self.scanner.advance(list) {
                Bracketed::Closed(end) => *self.list_end.insert(end),
                Bracketed::Open => return undecided,
                Bracketed::Broken => return reject,
            },
        };
        let Some(calls) = calls_from_list(&list[..list_end]) else {
            return reject;
        };
        let mut consumed = list_start + list_end;
        if wrapped {
            let after = &markup[consumed..];
            let tail = &after[leading_ws(after)..];
            if tail.starts_with(END) {
                consumed = markup.len() - tail.len() + END.len();
            } else if END.starts_with(tail) && !at_end {
                return Scan::NeedMore;
            }
        }
        Scan::Calls { consumed, calls }
    }
}

/// Whether `list` (starting with `[`) can still be a call list: `None` while undecided.
fn plausible_call_list(list: &str) -> Option<bool> {
    let body = list.strip_prefix('[')?;
    let body = &body[leading_ws(body)..];
    if body.is_empty() {
        return None;
    }
    let name_len = body
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-'))
        .unwrap_or(body.len());
    if name_len == 0 || body.starts_with(|c: char| c.is_ascii_digit()) {
        return Some(false);
    }
    let after = &body[name_len..];
    let after = &after[leading_ws(after)..];
    if after.is_empty() {
        return None;
    }
    Some(after.starts_with('('))
}
