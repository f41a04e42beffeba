//! The one state machine behind streaming and batch tool-call parsing.
//!
//! States: *content* (looking for a marker; holding back a suffix that may be the start of
//! one, and trailing whitespace whose fate depends on what follows) and *markup* (the format
//! decides whether the text from the marker on is calls, content, or still undecided).

use rand::distr::{Alphanumeric, SampleString};

use super::format::{leading_ws, Format, RawCall, Scan};
use super::llama3::Llama3Json;
use super::mistral::Mistral;
use super::phi4::Phi4;
use super::pythonic::Pythonic;
use super::tagged::TaggedBlock;
use super::tool_set::ToolSet;
use super::{ToolCallEvent, ToolParserKind, ToolSpec};

/// Streaming tool-call parser: [`ToolCallParser::push`] each text delta, then
/// [`ToolCallParser::finish`] once. See the module docs of [`crate::tools`] for the policies.
pub struct ToolCallParser {
    kind: ToolParserKind,
    format: Box<dyn Format>,
    tools: ToolSet,
    /// Text not yet decided: held content, or the markup being scanned.
    buf: String,
    in_markup: bool,
    /// Trailing whitespace of the content so far, not yet emitted.
    pending_ws: String,
    /// The last thing decided was a call.
    after_call: bool,
    /// Some content (not only whitespace) has been emitted.
    content_emitted: bool,
    /// Something other than whitespace has been seen (start-of-output markers no longer apply).
    output_started: bool,
    calls_emitted: usize,
    /// Markup blocks that were not valid calls and went out as content.
    markup_rejected: usize,
    finished: bool,
}

impl ToolCallParser {
    pub fn new(kind: ToolParserKind, tools: Vec<ToolSpec>) -> ToolCallParser {
        let format: Box<dyn Format> = match kind {
            ToolParserKind::Hermes => Box::new(TaggedBlock::hermes()),
            ToolParserKind::Qwen3Coder => Box::new(TaggedBlock::qwen3_coder()),
            ToolParserKind::Llama3Json => Box::new(Llama3Json::new()),
            ToolParserKind::Mistral => Box::new(Mistral::new()),
            ToolParserKind::Pythonic => Box::new(Pythonic::new()),
            ToolParserKind::Phi4MiniJson => Box::new(Phi4::new()),
        };
        ToolCallParser {
            kind,
            format,
            tools: ToolSet::new(tools),
            buf: String::new(),
            in_markup: false,
            pending_ws: String::new(),
            after_call: false,
            content_emitted: false,
            output_started: false,
            calls_emitted: 0,
            markup_rejected: 0,
            finished: false,
        }
    }

    pub fn kind(&self) -> ToolParserKind {
        self.kind
    }

    /// Calls emitted so far (a response with any has `finish_reason: "tool_calls"`).
    pub fn calls_emitted(&self) -> usize {
        self.calls_emitted
    }

    /// Markup blocks that started like a call but were not one (malformed, unknown function,
    /// unterminated), and so went out as content: a model's failed attempts to call.
    pub fn markup_rejected(&self) -> usize {
        self.markup_rejected
    }

    /// Feeds the next piece of output text; returns what is now decided.
    pub fn push(&mut self, delta: &str) -> Vec<ToolCallEvent> {
        let mut events = Vec::new();
        if self.finished {
            return events;
        }
        self.buf.push_str(delta);
        self.run(false, &mut events);
        events
    }

    /// The output ended: decides everything still held (see the unterminated-markup policy).
    /// Later pushes are ignored.
    pub fn finish(&mut self) -> Vec<ToolCallEvent> {
        let mut events = Vec::new();
        if self.finished {
            return events;
        }
        self.run(true, &mut events);
        // Whitespace after the last call is dropped; otherwise it is the content's own.
        let tail = std::mem::take(&mut self.pending_ws);
        if !self.after_call {
            push_content(&mut events, &tail);
        }
        self.finished = true;
        events
    }

    fn run(&mut self, at_end: bool, events: &mut Vec<ToolCallEvent>) {
        loop {
            if self.in_markup {
                if !self.decide_markup(at_end, events) {
                    return;
                }
            } else if !self.find_markup(at_end, events) {
                return;
            }
        }
    }

    /// Content state: moves to markup at the first marker (true), or emits what cannot be
    /// markup and holds the rest (false).
    fn find_markup(&mut self, at_end: bool, events: &mut Vec<ToolCallEvent>) -> bool {
        let ws = leading_ws(&self.buf);
        let at_output_start = !self.output_started
            && self
                .format
                .output_start_markers()
                .iter()
                .any(|m| self.buf[ws..].starts_with(m));
        let marker_at = if at_output_start {
            Some(ws)
        } else {
            self.format
                .markers()
                .iter()
                .filter_map(|m| self.buf.find(m))
                .min()
        };
        if let Some(at) = marker_at {
            let before: String = self.buf.drain(..at).collect();
            self.emit_content(&before, events);
            self.in_markup = true;
            self.format.begin();
            return true;
        }
        let hold_from = if at_end {
            self.buf.len()
        } else {
            self.partial_marker_start()
        };
        let decided: String = self.buf.drain(..hold_from).collect();
        self.emit_content(&decided, events);
        false
    }

    /// Markup state: returns whether the markup was decided.
    fn decide_markup(&mut self, at_end: bool, events: &mut Vec<ToolCallEvent>) -> bool {
        self.output_started = true;
        let scan = match self.format.scan(&self.buf, at_end, &self.tools) {
            Scan::NeedMore if at_end => Scan::NotACall {
                consumed: self.buf.len(),
            },
            scan => scan,
        };
        let (consumed, calls) = match scan {
            Scan::NeedMore => return false,
            Scan::Calls { consumed, calls }
                if !calls.is_empty() && calls.iter().all(|c| self.tools.accepts(&c.name)) =>
            {
                (consumed, Some(calls))
            }
            Scan::Calls { consumed, .. } | Scan::NotACall { consumed } => (consumed, None),
        };
        let mut consumed = consumed.max(1).min(self.buf.len());
        while !self.buf.is_char_boundary(consumed) {
            consumed += 1;
        }
        let markup: String = self.buf.drain(..consumed).collect();
        self.in_markup = false;
        match calls {
            Some(calls) => self.emit_calls(calls, events),
            None => {
                self.markup_rejected += 1;
                self.emit_content(&markup, events)
            }
        }
        true
    }

    /// Start of the longest suffix of `buf` that is a proper prefix of a marker (or of a
    /// start-of-output marker while the output has not started), else `buf.len()`.
    fn partial_marker_start(&self) -> usize {
        let markers = self.format.markers();
        let start_markers = if self.output_started {
            &[][..]
        } else {
            self.format.output_start_markers()
        };
        let longest = markers.iter().map(|m| m.len()).max().unwrap_or(0);
        let earliest = self.buf.len().saturating_sub(longest.saturating_sub(1));
        let partial = (earliest..self.buf.len())
            .filter(|&i| self.buf.is_char_boundary(i))
            .find(|&i| {
                let suffix = &self.buf[i..];
                markers
                    .iter()
                    .any(|m| m.len() > suffix.len() && m.starts_with(suffix))
            })
            .unwrap_or(self.buf.len());
        let ws = leading_ws(&self.buf);
        let rest = &self.buf[ws..];
        let start_partial = !rest.is_empty()
            && start_markers
                .iter()
                .any(|m| m.len() > rest.len() && m.starts_with(rest));
        if start_partial {
            partial.min(ws)
        } else {
            partial
        }
    }

    /// Emits decided content under the whitespace policy: trailing whitespace waits for what
    /// follows (dropped before a call, kept before more text); content resuming after a call
    /// keeps the whitespace that separates it from earlier content, and drops it when nothing
    /// came before.
    fn emit_content(&mut self, text: &str, events: &mut Vec<ToolCallEvent>) {
        let mut combined = std::mem::take(&mut self.pending_ws);
        combined.push_str(text);
        let mut body = combined.as_str();
        if body.trim_end().is_empty() {
            self.pending_ws = combined;
            return;
        }
        if self.after_call && !self.content_emitted {
            body = body.trim_start();
        }
        let end = body.trim_end().len();
        self.pending_ws = body[end..].to_string();
        self.after_call = false;
        self.content_emitted = true;
        self.output_started = true;
        push_content(events, &body[..end]);
    }

    fn emit_calls(&mut self, calls: Vec<RawCall>, events: &mut Vec<ToolCallEvent>) {
        self.pending_ws.clear();
        self.after_call = true;
        for call in calls {
            let index = self.calls_emitted;
            self.calls_emitted += 1;
            let id = self.call_id(call.id);
            events.push(ToolCallEvent::CallStart {
                index,
                id,
                name: call.name,
            });
            events.push(ToolCallEvent::Arguments {
                index,
                fragment: call.arguments,
            });
        }
    }

    /// `call_` + 24 alphanumerics; Mistral's templates demand exactly 9 alphanumerics, so
    /// Mistral keeps the model's own id when it has that shape.
    fn call_id(&self, model_id: Option<String>) -> String {
        let mut rng = rand::rng();
        if self.kind == ToolParserKind::Mistral {
            match model_id {
                Some(id) if id.len() == 9 && id.chars().all(|c| c.is_ascii_alphanumeric()) => id,
                _ => Alphanumeric.sample_string(&mut rng, 9),
            }
        } else {
            format!("call_{}", Alphanumeric.sample_string(&mut rng, 24))
        }
    }
}

/// Appends content, merging with a content event just before it.
fn push_content(events: &mut Vec<ToolCallEvent>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(ToolCallEvent::Content(last)) = events.last_mut() {
        last.push_str(text);
    } else {
        events.push(ToolCallEvent::Content(text.to_string()));
    }
}
