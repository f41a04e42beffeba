//! Reasoning parsers: `<think>…</think>` → `reasoning_content`, the rest → `content`.
//!
//! One state machine ([`ReasoningParser`]) for streaming and batch ([`parse_reasoning`] feeds
//! the whole text at once). States:
//! - *detect* (qwen3 and think, when the prompt did not open a think block): leading
//!   whitespace and a partial `<think>` are held; `<think>` first → reasoning, anything else →
//!   content for the rest of the output, verbatim.
//! - *reasoning*: up to `</think>`; a `<think>` right at its start is dropped (the template
//!   opened the block and the model wrote the tag again). No `</think>` by the end of the
//!   output → everything is reasoning.
//! - *content*: everything after `</think>`, verbatim.
//!
//! Whitespace touching a tag is dropped (the newline after `<think>`, before and after
//! `</think>`); a partial `</think>` at the end of a delta is held until decided. deepseek_r1
//! always starts in reasoning (R1 thinks first, and newer R1 templates put `<think>` in the
//! prompt); qwen3 and think start in reasoning only when the caller says the prompt opened the
//! block ([`think_opened_in_prompt`]), else they detect.

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// The reasoning formats, named as vLLM's `--reasoning-parser` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReasoningParserKind {
    /// DeepSeek-R1 and its distills: the output starts in reasoning.
    DeepseekR1,
    /// Qwen3 (and QwQ): reasoning only when the output (or the prompt) opens `<think>`.
    Qwen3,
    /// Any other model with `<think>` blocks; behaves as qwen3.
    Think,
}

impl ReasoningParserKind {
    pub const ALL: [ReasoningParserKind; 3] = [
        ReasoningParserKind::DeepseekR1,
        ReasoningParserKind::Qwen3,
        ReasoningParserKind::Think,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ReasoningParserKind::DeepseekR1 => "deepseek_r1",
            ReasoningParserKind::Qwen3 => "qwen3",
            ReasoningParserKind::Think => "think",
        }
    }

    /// The kind a `--reasoning-parser` name selects (also `qwq`, `deepseek-r1`).
    pub fn from_name(name: &str) -> Option<ReasoningParserKind> {
        let kind = match name.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "deepseek_r1" => ReasoningParserKind::DeepseekR1,
            "qwen3" | "qwq" => ReasoningParserKind::Qwen3,
            "think" => ReasoningParserKind::Think,
            _ => return None,
        };
        Some(kind)
    }

    /// Best-effort guess from a chat template's source; `None` when it has no `<think>`.
    pub fn from_chat_template(template: &str) -> Option<ReasoningParserKind> {
        if !template.contains(OPEN) && !template.contains(CLOSE) {
            return None;
        }
        let kind = if template.contains("<｜Assistant｜>")
            || template.contains("<｜end▁of▁sentence｜>")
        {
            ReasoningParserKind::DeepseekR1
        } else if template.contains("<|im_start|>") {
            ReasoningParserKind::Qwen3
        } else {
            ReasoningParserKind::Think
        };
        Some(kind)
    }
}

impl std::fmt::Display for ReasoningParserKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a rendered prompt leaves a think block open for the model (it ends inside
/// `<think>` … with no `</think>` after the last `<think>`).
pub fn think_opened_in_prompt(prompt: &str) -> bool {
    match (prompt.rfind(OPEN), prompt.rfind(CLOSE)) {
        (Some(open), Some(close)) => open > close,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Text split into reasoning and content: one delta's worth, or a whole output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReasoningSplit {
    pub reasoning: String,
    pub content: String,
}

impl ReasoningSplit {
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_empty() && self.content.is_empty()
    }

    /// Appends a later split (folding deltas into a whole).
    pub fn append(&mut self, later: &ReasoningSplit) {
        self.reasoning.push_str(&later.reasoning);
        self.content.push_str(&later.content);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Detect,
    Reasoning { at_start: bool },
    Content { at_start: bool },
}

/// Streaming reasoning parser: [`ReasoningParser::push`] each delta, then
/// [`ReasoningParser::finish`].
#[derive(Debug, Clone)]
pub struct ReasoningParser {
    state: State,
    buf: String,
    /// Trailing whitespace of the reasoning so far, dropped if `</think>` follows.
    pending_ws: String,
    finished: bool,
}

impl ReasoningParser {
    /// `opened_in_prompt`: the rendered prompt ends inside a think block
    /// ([`think_opened_in_prompt`]).
    pub fn new(kind: ReasoningParserKind, opened_in_prompt: bool) -> ReasoningParser {
        let state = if opened_in_prompt || kind == ReasoningParserKind::DeepseekR1 {
            State::Reasoning { at_start: true }
        } else {
            State::Detect
        };
        ReasoningParser {
            state,
            buf: String::new(),
            pending_ws: String::new(),
            finished: false,
        }
    }

    /// Whether the reasoning has ended (a later delta is all content).
    pub fn in_content(&self) -> bool {
        matches!(self.state, State::Content { .. })
    }

    pub fn push(&mut self, delta: &str) -> ReasoningSplit {
        let mut out = ReasoningSplit::default();
        if !self.finished {
            self.buf.push_str(delta);
            self.run(false, &mut out);
        }
        out
    }

    /// The output ended: what was held is decided (a partial tag is text).
    pub fn finish(&mut self) -> ReasoningSplit {
        let mut out = ReasoningSplit::default();
        if !self.finished {
            self.run(true, &mut out);
            if let State::Reasoning { .. } = self.state {
                out.reasoning
                    .push_str(&std::mem::take(&mut self.pending_ws));
                out.reasoning.push_str(&std::mem::take(&mut self.buf));
            } else {
                out.content.push_str(&std::mem::take(&mut self.buf));
            }
            self.finished = true;
        }
        out
    }

    fn run(&mut self, at_end: bool, out: &mut ReasoningSplit) {
        loop {
            match self.state {
                State::Detect => {
                    let text = self.buf.trim_start();
                    if let Some(rest) = text.strip_prefix(OPEN) {
                        self.buf = rest.to_string();
                        self.state = State::Reasoning { at_start: true };
                    } else if OPEN.starts_with(text) && !at_end {
                        return;
                    } else {
                        self.state = State::Content { at_start: false };
                    }
                }
                State::Reasoning { at_start: true } => {
                    let text = self.buf.trim_start();
                    if let Some(rest) = text.strip_prefix(OPEN) {
                        self.buf = rest.to_string();
                        continue;
                    }
                    if OPEN.starts_with(text) && !at_end {
                        return;
                    }
                    self.buf = text.to_string();
                    self.state = State::Reasoning { at_start: false };
                }
                State::Reasoning { at_start: false } => {
                    if let Some(at) = self.buf.find(CLOSE) {
                        let reasoning = self.buf[..at].trim_end();
                        if !reasoning.is_empty() {
                            out.reasoning
                                .push_str(&std::mem::take(&mut self.pending_ws));
                            out.reasoning.push_str(reasoning);
                        }
                        self.pending_ws.clear();
                        self.buf.drain(..at + CLOSE.len());
                        self.state = State::Content { at_start: true };
                        continue;
                    }
                    if at_end {
                        return;
                    }
                    let hold = partial_suffix_start(&self.buf, CLOSE);
                    let decided = &self.buf[..hold];
                    let body_end = decided.trim_end().len();
                    if body_end > 0 {
                        out.reasoning
                            .push_str(&std::mem::take(&mut self.pending_ws));
                        out.reasoning.push_str(&decided[..body_end]);
                    }
                    self.pending_ws.push_str(&decided[body_end..]);
                    self.buf.drain(..hold);
                    return;
                }
                State::Content { at_start: true } => {
                    let ws = self.buf.len() - self.buf.trim_start().len();
                    if ws == self.buf.len() {
                        if at_end {
                            self.buf.clear();
                        }
                        return;
                    }
                    self.buf.drain(..ws);
                    self.state = State::Content { at_start: false };
                }
                State::Content { at_start: false } => {
                    out.content.push_str(&std::mem::take(&mut self.buf));
                    return;
                }
            }
        }
    }
}

/// Start of the longest suffix of `text` that is a proper prefix of `tag`, else `text.len()`.
fn partial_suffix_start(text: &str, tag: &str) -> usize {
    let earliest = text.len().saturating_sub(tag.len() - 1);
    (earliest..text.len())
        .filter(|&i| text.is_char_boundary(i))
        .find(|&i| tag.starts_with(&text[i..]))
        .unwrap_or(text.len())
}

/// Splits a complete output: the streaming parser fed `text` in one piece, then finished.
pub fn parse_reasoning(
    kind: ReasoningParserKind,
    text: &str,
    opened_in_prompt: bool,
) -> ReasoningSplit {
    let mut parser = ReasoningParser::new(kind, opened_in_prompt);
    let mut split = parser.push(text);
    split.append(&parser.finish());
    split
}
