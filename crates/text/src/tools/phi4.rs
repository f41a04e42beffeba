//! phi4_mini_json: `functools[{"name": …, "arguments": {…}}, …]`.

use super::format::{leading_ws, Format, Scan};
use super::json_calls::calls_from_json;
use super::scanner::{BracketScanner, Bracketed};
use super::tool_set::ToolSet;

const MARKER: &str = "functools";

#[derive(Debug, Clone)]
pub(crate) struct Phi4 {
    scanner: BracketScanner,
}

impl Phi4 {
    pub fn new() -> Phi4 {
        Phi4 {
            scanner: BracketScanner::new(false),
        }
    }
}

impl Format for Phi4 {
    fn markers(&self) -> &'static [&'static str] {
        &[MARKER]
    }

    fn begin(&mut self) {
        *self = Phi4::new();
    }

    fn scan(&mut self, markup: &str, at_end: bool, _tools: &ToolSet) -> Scan {
        let list_start = MARKER.len() + leading_ws(&markup[MARKER.len()..]);
        let list = &markup[list_start..];
        let reject = Scan::NotACall {
            consumed: MARKER.len(),
        };
        if list.is_empty() || !list.starts_with('[') {
            return match (list.is_empty(), at_end) {
                (true, false) => Scan::NeedMore,
                _ => reject,
            };
        }
        match self.scanner.advance(list) {
            Bracketed::Closed(end) => match calls_from_json(&list[..end]) {
                Some(calls) => Scan::Calls {
                    consumed: list_start + end,
                    calls,
                },
                None => reject,
            },
            Bracketed::Open if !at_end => Scan::NeedMore,
            Bracketed::Open => Scan::NotACall {
                consumed: markup.len(),
            },
            Bracketed::Broken => reject,
        }
    }
}
