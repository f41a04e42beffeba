//! A chat answer's text split into reasoning, content and tool calls, as it streams.
//!
//! The generated text (after stop strings) goes through the reasoning parser first
//! (`<think>…</think>` → `reasoning_content`), then what is content goes through the tool-call
//! parser (markup → `tool_calls`). Both hold back text that might still be a tag, so nothing
//! undecided reaches the client and nothing is taken back. Streaming and non-streaming share
//! this one path, so a stream reassembles to the whole answer.
//!
//! `finish_reason`: `"tool_calls"` when at least one call was parsed and generation stopped by
//! itself; a generation cut by `max_tokens` keeps `"length"` (the calls completed before the
//! cut are still returned, and an unterminated call whose arguments are incomplete is content,
//! verbatim: the tool parsers' policy). With only calls, `content` is null.
//!
//! `parallel_tool_calls: false` with `tool_choice: auto` (where decoding is not constrained): only
//! the first call is returned; later complete calls are dropped and counted
//! (`rotor_frontend_tool_calls_dropped_total`). With a forced call the grammar allows one call.

use std::sync::Arc;

use rotor_text::{
    ReasoningParser, ReasoningParserKind, ToolCall, ToolCallEvent, ToolCallParser, ToolParserKind,
    ToolSpec,
};

/// What to parse out of one request's answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatOutputPlan {
    /// Tool calls in this markup, checked against these tools.
    pub tools: Option<(ToolParserKind, Vec<ToolSpec>)>,
    /// Reasoning in this format; `true` when the prompt left a think block open.
    pub reasoning: Option<(ReasoningParserKind, bool)>,
    /// `parallel_tool_calls: false`: return the first call only.
    pub single_call: bool,
}

impl ChatOutputPlan {
    pub fn is_plain(&self) -> bool {
        self.tools.is_none() && self.reasoning.is_none()
    }
}

/// One step's worth of parsed output, in order: reasoning, content, then call events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatPiece {
    pub reasoning: String,
    pub content: String,
    /// Tool-call events (`CallStart`, `Arguments`), never `Content`.
    pub calls: Vec<ToolCallEvent>,
}

impl ChatPiece {
    pub fn is_empty(&self) -> bool {
        self.reasoning.is_empty() && self.content.is_empty() && self.calls.is_empty()
    }
}

/// The parsers of one answer.
pub struct ChatOutputParser {
    reasoning_kind: Option<ReasoningParserKind>,
    reasoning: Option<ReasoningParser>,
    tools: Option<ToolCallParser>,
    saw_reasoning: bool,
    single_call: bool,
    /// Calls dropped by `single_call`.
    dropped: usize,
}

impl ChatOutputParser {
    pub fn new(plan: &ChatOutputPlan) -> ChatOutputParser {
        ChatOutputParser {
            reasoning_kind: plan.reasoning.map(|(kind, _)| kind),
            reasoning: plan
                .reasoning
                .map(|(kind, opened)| ReasoningParser::new(kind, opened)),
            tools: plan
                .tools
                .as_ref()
                .map(|(kind, specs)| ToolCallParser::new(*kind, specs.clone())),
            saw_reasoning: false,
            single_call: plan.single_call,
            dropped: 0,
        }
    }

    pub fn push(&mut self, text: &str) -> ChatPiece {
        let (reasoning, content) = match &mut self.reasoning {
            Some(parser) => {
                let split = parser.push(text);
                (split.reasoning, split.content)
            }
            None => (String::new(), text.to_string()),
        };
        self.content_piece(reasoning, &content, false)
    }

    /// The answer ended: everything held back is decided.
    pub fn finish(&mut self) -> ChatPiece {
        let (reasoning, content) = match &mut self.reasoning {
            Some(parser) => {
                let split = parser.finish();
                (split.reasoning, split.content)
            }
            None => (String::new(), String::new()),
        };
        self.content_piece(reasoning, &content, true)
    }

    fn content_piece(&mut self, reasoning: String, content: &str, at_end: bool) -> ChatPiece {
        self.saw_reasoning |= !reasoning.is_empty();
        let mut piece = ChatPiece {
            reasoning,
            ..ChatPiece::default()
        };
        let Some(parser) = &mut self.tools else {
            piece.content = content.to_string();
            return piece;
        };
        let mut events = parser.push(content);
        if at_end {
            events.extend(parser.finish());
        }
        for event in events {
            match event {
                ToolCallEvent::Content(text) => piece.content.push_str(&text),
                ToolCallEvent::CallStart { index, .. } if self.single_call && index > 0 => {
                    self.dropped += 1;
                }
                ToolCallEvent::Arguments { index, .. } if self.single_call && index > 0 => {}
                call => piece.calls.push(call),
            }
        }
        piece
    }

    /// Calls returned so far.
    pub fn calls(&self) -> usize {
        self.tools.as_ref().map_or(0, |p| p.calls_emitted()) - self.dropped
    }

    /// Calls parsed but not returned (`parallel_tool_calls: false`).
    pub fn dropped_calls(&self) -> usize {
        self.dropped
    }

    /// Markup that looked like a call but did not parse (it went out as content).
    pub fn failed_markup(&self) -> usize {
        self.tools.as_ref().map_or(0, |p| p.markup_rejected())
    }

    pub fn tool_parser(&self) -> Option<ToolParserKind> {
        self.tools.as_ref().map(|p| p.kind())
    }

    pub fn reasoning_kind(&self) -> Option<ReasoningParserKind> {
        self.reasoning_kind
    }

    /// Some reasoning was produced.
    pub fn saw_reasoning(&self) -> bool {
        self.saw_reasoning
    }

    /// The OpenAI `finish_reason` given the engine's.
    pub fn finish_reason(&self, engine_reason: &'static str) -> &'static str {
        if engine_reason == "stop" && self.calls() > 0 {
            "tool_calls"
        } else {
            engine_reason
        }
    }
}

/// One answer's parsers plus the metrics they report to when the answer ends.
pub(crate) struct ChatOutput {
    parser: ChatOutputParser,
    metrics: Arc<crate::metrics::Metrics>,
}

impl ChatOutput {
    pub fn new(plan: &ChatOutputPlan, metrics: Arc<crate::metrics::Metrics>) -> ChatOutput {
        ChatOutput {
            parser: ChatOutputParser::new(plan),
            metrics,
        }
    }

    pub fn push(&mut self, text: &str) -> ChatPiece {
        self.parser.push(text)
    }

    /// The answer ended with the engine's `reason`: the last piece and the OpenAI
    /// `finish_reason`; counts calls, failed markup and reasoning on /metrics.
    pub fn finish(&mut self, reason: &'static str) -> (ChatPiece, &'static str) {
        let piece = self.parser.finish();
        let reasoning = self
            .parser
            .saw_reasoning()
            .then(|| self.parser.reasoning_kind())
            .flatten();
        self.metrics.count_chat_output(
            self.parser.tool_parser().map(|k| k.name()),
            self.parser.calls(),
            self.parser.dropped_calls(),
            self.parser.failed_markup(),
            reasoning.map(|k| k.name()),
        );
        (piece, self.parser.finish_reason(reason))
    }
}

/// A whole answer, folded from its pieces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChatAnswer {
    pub reasoning: String,
    pub content: String,
    pub calls: Vec<ToolCall>,
}

impl ChatAnswer {
    pub fn apply(&mut self, piece: ChatPiece) {
        self.reasoning.push_str(&piece.reasoning);
        self.content.push_str(&piece.content);
        for event in piece.calls {
            match event {
                ToolCallEvent::CallStart { id, name, .. } => self.calls.push(ToolCall {
                    id,
                    name,
                    arguments: String::new(),
                }),
                ToolCallEvent::Arguments { index, fragment } => {
                    if let Some(call) = self.calls.get_mut(index) {
                        call.arguments.push_str(&fragment);
                    }
                }
                ToolCallEvent::Content(text) => self.content.push_str(&text),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(plan: &ChatOutputPlan, pieces: &[&str]) -> (ChatAnswer, ChatOutputParser) {
        let mut parser = ChatOutputParser::new(plan);
        let mut answer = ChatAnswer::default();
        for piece in pieces {
            answer.apply(parser.push(piece));
        }
        answer.apply(parser.finish());
        (answer, parser)
    }

    #[test]
    fn reasoning_then_call_split_in_any_chunking() {
        let plan = ChatOutputPlan {
            tools: Some((ToolParserKind::Hermes, Vec::new())),
            reasoning: Some((ReasoningParserKind::Qwen3, false)),
            single_call: false,
        };
        let text = "<think>\nNeed weather.\n</think>\n\nSure.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
        let (whole, parser) = run(&plan, &[text]);
        assert_eq!(whole.reasoning, "Need weather.");
        assert_eq!(whole.content, "Sure.");
        assert_eq!(whole.calls.len(), 1);
        assert_eq!(whole.calls[0].name, "get_weather");
        assert_eq!(whole.calls[0].arguments, "{\"city\": \"Paris\"}");
        assert_eq!(parser.finish_reason("stop"), "tool_calls");
        assert_eq!(parser.finish_reason("length"), "length");
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        let (streamed, _) = run(&plan, &refs);
        assert_eq!(streamed.reasoning, whole.reasoning);
        assert_eq!(streamed.content, whole.content);
        assert_eq!(streamed.calls.len(), 1);
        assert_eq!(streamed.calls[0].arguments, whole.calls[0].arguments);
    }

    #[test]
    fn malformed_markup_is_content_and_counted() {
        let plan = ChatOutputPlan {
            tools: Some((ToolParserKind::Hermes, Vec::new())),
            reasoning: None,
            single_call: false,
        };
        let (answer, parser) = run(&plan, &["<tool_call>\n{\"name\": oops}\n</tool_call>"]);
        assert_eq!(
            answer.content,
            "<tool_call>\n{\"name\": oops}\n</tool_call>"
        );
        assert!(answer.calls.is_empty());
        assert_eq!(parser.failed_markup(), 1);
        assert_eq!(parser.finish_reason("stop"), "stop");
    }

    #[test]
    fn without_parallel_calls_only_the_first_call_is_returned_in_any_chunking() {
        let text = "<tool_call>\n{\"name\": \"a\", \"arguments\": {\"x\": 1}}\n</tool_call>\n\
                    <tool_call>\n{\"name\": \"b\", \"arguments\": {\"y\": 2}}\n</tool_call>";
        for single_call in [false, true] {
            let plan = ChatOutputPlan {
                tools: Some((ToolParserKind::Hermes, Vec::new())),
                reasoning: None,
                single_call,
            };
            let chars: Vec<String> = text.chars().map(String::from).collect();
            let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
            for pieces in [vec![text], refs] {
                let (answer, parser) = run(&plan, &pieces);
                let names: Vec<&str> = answer.calls.iter().map(|c| c.name.as_str()).collect();
                if single_call {
                    assert_eq!(names, ["a"]);
                    assert_eq!(answer.calls[0].arguments, "{\"x\": 1}");
                    assert_eq!((parser.calls(), parser.dropped_calls()), (1, 1));
                } else {
                    assert_eq!(names, ["a", "b"]);
                    assert_eq!((parser.calls(), parser.dropped_calls()), (2, 0));
                }
                assert_eq!(answer.content.trim(), "");
                assert_eq!(parser.finish_reason("stop"), "tool_calls");
            }
        }
    }
}
