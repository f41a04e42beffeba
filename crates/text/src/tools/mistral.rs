//! mistral: `[TOOL_CALLS]` then either a JSON list of calls (tokenizers before v11) or, from
//! v11 on, `name[ARGS]{…}` (v13: `name[CALL_ID]id[ARGS]{…}`) with one marker per call. A bare
//! `name{…}` without `[ARGS]` is accepted too.

use super::format::{leading_ws, Format, RawCall, Scan};
use super::json_calls::{arguments_text, calls_from_json};
use super::scanner::{BracketScanner, Bracketed};
use super::tool_set::ToolSet;

const MARKER: &str = "[TOOL_CALLS]";
const ARGS: &str = "[ARGS]";
const CALL_ID: &str = "[CALL_ID]";

#[derive(Debug, Clone)]
pub(crate) struct Mistral {
    scanner: BracketScanner,
    /// Where the JSON value starts, once the header before it is read.
    json_start: Option<usize>,
    /// The v11 form's name and id; `None` for the JSON-list form.
    header: Option<(String, Option<String>)>,
}

/// What the text after the marker turned out to be.
enum Header {
    Undecided,
    Invalid,
    JsonAt(usize, Option<(String, Option<String>)>),
}

impl Mistral {
    pub fn new() -> Mistral {
        Mistral {
            scanner: BracketScanner::new(false),
            json_start: None,
            header: None,
        }
    }
}

impl Format for Mistral {
    fn markers(&self) -> &'static [&'static str] {
        &[MARKER]
    }

    fn begin(&mut self) {
        *self = Mistral::new();
    }

    fn scan(&mut self, markup: &str, at_end: bool, _tools: &ToolSet) -> Scan {
        let reject = Scan::NotACall {
            consumed: MARKER.len(),
        };
        let undecided = if at_end {
            Scan::NotACall {
                consumed: markup.len(),
            }
        } else {
            Scan::NeedMore
        };
        let json_start = match self.json_start {
            Some(start) => start,
            None => match read_header(markup) {
                Header::Undecided => return undecided,
                Header::Invalid => return reject,
                Header::JsonAt(start, header) => {
                    self.header = header;
                    *self.json_start.insert(start)
                }
            },
        };
        let json = &markup[json_start..];
        let end = match self.scanner.advance(json) {
            Bracketed::Closed(end) => end,
            Bracketed::Open => return undecided,
            Bracketed::Broken => return reject,
        };
        let calls = match &self.header {
            None => calls_from_json(&json[..end]),
            Some((name, id)) => arguments_text(&json[..end]).map(|arguments| {
                vec![RawCall {
                    name: name.clone(),
                    arguments,
                    id: id.clone(),
                }]
            }),
        };
        match calls {
            Some(calls) => Scan::Calls {
                consumed: json_start + end,
                calls,
            },
            None => reject,
        }
    }
}

fn read_header(markup: &str) -> Header {
    let start = MARKER.len() + leading_ws(&markup[MARKER.len()..]);
    let rest = &markup[start..];
    match rest.chars().next() {
        None => return Header::Undecided,
        Some('[' | '{') if !rest.starts_with(CALL_ID) && !rest.starts_with(ARGS) => {
            return Header::JsonAt(start, None)
        }
        _ => {}
    }
    let name_len = name_len(rest);
    if name_len == 0 {
        return Header::Invalid;
    }
    let name = rest[..name_len].to_string();
    let mut pos = start + name_len;
    let mut id = None;
    if let Some(after) = markup[pos..].strip_prefix(CALL_ID) {
        let id_len = after
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        id = Some(after[..id_len].to_string());
        pos += CALL_ID.len() + id_len;
    }
    let after = &markup[pos..];
    if after.is_empty() || ARGS.starts_with(after) || CALL_ID.starts_with(after) {
        return Header::Undecided;
    }
    if let Some(args) = after.strip_prefix(ARGS) {
        pos += ARGS.len();
        if args.trim_start().is_empty() {
            return Header::Undecided;
        }
        pos += leading_ws(args);
    }
    if markup[pos..].starts_with('{') {
        Header::JsonAt(pos, Some((name, id)))
    } else {
        Header::Invalid
    }
}

fn name_len(text: &str) -> usize {
    text.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-'))
        .unwrap_or(text.len())
}
