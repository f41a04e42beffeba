//! llama3_json: `{"name": …, "parameters": {…}}` at the very start of the output or after
//! `<|python_tag|>`; several calls are separated by `;`.
//!
//! A `{` at the start of the output is held as markup only while it can be a call object:
//! `{` then a string key. A complete object that is not a call (a JSON answer) is content.

use super::format::{leading_ws, Format, RawCall, Scan};
use super::json_calls::call_from_json;
use super::scanner::{BracketScanner, Bracketed};
use super::tool_set::ToolSet;

const TAG: &str = "<|python_tag|>";

#[derive(Debug, Clone)]
pub(crate) struct Llama3Json {
    calls: Vec<RawCall>,
    /// Where to look for the next object (or separator).
    cursor: usize,
    /// End of the last complete call object.
    last_end: usize,
    /// The object being scanned: its start and scanner.
    object: Option<(usize, BracketScanner)>,
}

impl Llama3Json {
    pub fn new() -> Llama3Json {
        Llama3Json {
            calls: Vec::new(),
            cursor: 0,
            last_end: 0,
            object: None,
        }
    }

    fn done(&mut self) -> Scan {
        Scan::Calls {
            consumed: self.last_end,
            calls: std::mem::take(&mut self.calls),
        }
    }

    /// Nothing more to read for now.
    fn wait(&mut self, markup: &str, at_end: bool) -> Scan {
        match (at_end, self.calls.is_empty()) {
            (false, _) => Scan::NeedMore,
            (true, false) => self.done(),
            (true, true) => Scan::NotACall {
                consumed: markup.len(),
            },
        }
    }

    /// What follows is not a call: the calls so far stand, or the marker is content.
    fn stop(&mut self, markup: &str) -> Scan {
        if self.calls.is_empty() {
            let consumed = if markup.starts_with(TAG) {
                TAG.len()
            } else {
                1
            };
            Scan::NotACall { consumed }
        } else {
            self.done()
        }
    }
}

impl Format for Llama3Json {
    fn markers(&self) -> &'static [&'static str] {
        &[TAG]
    }

    fn output_start_markers(&self) -> &'static [&'static str] {
        &["{"]
    }

    fn begin(&mut self) {
        *self = Llama3Json::new();
        self.cursor = usize::MAX;
    }

    fn scan(&mut self, markup: &str, at_end: bool, _tools: &ToolSet) -> Scan {
        if self.cursor == usize::MAX {
            self.cursor = if markup.starts_with(TAG) {
                TAG.len()
            } else {
                0
            };
        }
        loop {
            if let Some((start, scanner)) = &mut self.object {
                let start = *start;
                let object = &markup[start..];
                if self.calls.is_empty() && !object_may_be_call(object) {
                    return self.stop(markup);
                }
                match scanner.advance(object) {
                    Bracketed::Closed(end) => match call_from_json(&object[..end]) {
                        Some(call) => {
                            self.calls.push(call);
                            self.last_end = start + end;
                            self.cursor = start + end;
                            self.object = None;
                        }
                        None => return self.stop(markup),
                    },
                    Bracketed::Open => return self.wait(markup, at_end),
                    Bracketed::Broken => return self.stop(markup),
                }
                continue;
            }
            let rest = &markup[self.cursor..];
            let next = self.cursor + leading_ws(rest);
            let mut tail = &markup[next..];
            let mut object_at = next;
            if !self.calls.is_empty() {
                // After a call: `;` and another object, or the end of the calls.
                match tail.chars().next() {
                    None => return self.wait(markup, at_end),
                    Some(';') => {
                        let after = &tail[1..];
                        object_at = next + 1 + leading_ws(after);
                        tail = &markup[object_at..];
                        if tail.is_empty() {
                            return self.wait(markup, at_end);
                        }
                    }
                    Some(_) => return self.done(),
                }
            }
            match tail.chars().next() {
                None => return self.wait(markup, at_end),
                Some('{') => self.object = Some((object_at, BracketScanner::new(false))),
                Some(_) => return self.stop(markup),
            }
        }
    }
}

/// Whether an object's start (`{` …) can still be a call object: `{` then a string key.
fn object_may_be_call(object: &str) -> bool {
    let body = &object[1..];
    let body = &body[leading_ws(body)..];
    body.is_empty() || body.starts_with('"')
}
