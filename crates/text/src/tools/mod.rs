//! Tool-call parsers: a model's output text → OpenAI `tool_calls` plus the text around them.
//!
//! One state machine ([`ToolCallParser`]) serves streaming and batch alike: it is fed text
//! deltas and emits [`ToolCallEvent`]s; [`parse_tool_calls`] feeds the whole text at once and
//! folds the events into [`ParsedToolCalls`]. Each model family's markup is a format (see
//! [`ToolParserKind`]) that only answers "is this markup complete, and which calls does it hold".
//!
//! Policies (the same whatever way the text is split):
//! - **No markup in content while it is undecided.** Content that might be the start of a call
//!   (a suffix that is a prefix of a marker such as `<tool_call>`) is held back until decided.
//! - **Whitespace around calls is dropped** (between text and a call, between calls, after the
//!   last call); text after a call keeps the whitespace that separates it from text before the
//!   call. An output without calls comes out as content byte for byte.
//! - **Arguments** are one JSON object text per call. JSON formats keep the model's own text of
//!   the arguments value; formats that are not JSON (pythonic, qwen3_coder) are converted to
//!   compact JSON with the model's key order. A call's `CallStart` and its arguments are emitted
//!   once the call is complete and valid, so nothing emitted is ever taken back.
//! - **Malformed markup** (invalid JSON, a call without a name, an empty list) is content,
//!   verbatim: nothing vanishes, and a malformed call is never half-executed.
//! - **Unknown functions**: when tools are given, markup naming a function that is not among them
//!   is content, verbatim (every call of that markup block). With no tools given, any name is
//!   accepted; callers should not run a parser at all for requests without tools.
//! - **Unterminated markup at end of stream** (e.g. cut by `max_tokens`): when its body is
//!   complete and valid and only the closing tag is missing (the model stopped right after the
//!   call), it is a call; otherwise the text is content, verbatim.

mod format;
mod json_calls;
mod llama3;
mod mistral;
mod phi4;
mod python_literal;
mod pythonic;
mod scanner;
mod stream;
mod tagged;
mod tool_set;
mod xml_calls;

pub use stream::ToolCallParser;

/// A tool the request offers: its function name and JSON schema of its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    /// The function's `parameters` JSON schema, if given; qwen3_coder types its values by it.
    pub parameters: Option<serde_json::Value>,
}

impl ToolSpec {
    /// Reads one entry of an OpenAI request's `tools`:
    /// `{"type": "function", "function": {"name": …, "parameters": {…}}}`.
    pub fn from_openai_tool(tool: &serde_json::Value) -> Option<ToolSpec> {
        let function = tool.get("function")?;
        let name = function.get("name")?.as_str()?.to_string();
        let parameters = function.get("parameters").cloned();
        Some(ToolSpec { name, parameters })
    }
}

/// A parsed call, as in an OpenAI assistant message's `tool_calls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// `call_` + 24 random alphanumerics (Mistral: 9 alphanumerics, what its templates demand).
    pub id: String,
    pub name: String,
    /// A JSON object, as text.
    pub arguments: String,
}

/// The whole output, split into content and calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedToolCalls {
    /// Text outside the calls (see the module's whitespace policy).
    pub content: String,
    pub calls: Vec<ToolCall>,
}

impl ParsedToolCalls {
    /// Folds one streaming event in: content appends, a call starts, arguments append.
    pub fn apply(&mut self, event: ToolCallEvent) {
        match event {
            ToolCallEvent::Content(text) => self.content.push_str(&text),
            ToolCallEvent::CallStart { index, id, name } => {
                debug_assert_eq!(index, self.calls.len(), "calls start in index order");
                self.calls.push(ToolCall {
                    id,
                    name,
                    arguments: String::new(),
                });
            }
            ToolCallEvent::Arguments { index, fragment } => {
                if let Some(call) = self.calls.get_mut(index) {
                    call.arguments.push_str(&fragment);
                }
            }
        }
    }
}

/// One step of a streamed output, shaped like OpenAI's streaming deltas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolCallEvent {
    /// Text for `delta.content`; never tool markup that is still undecided.
    Content(String),
    /// `delta.tool_calls[{index, id, type: "function", function: {name, arguments: ""}}]`.
    CallStart {
        index: usize,
        id: String,
        name: String,
    },
    /// `delta.tool_calls[{index, function: {arguments: fragment}}]`; a call's fragments
    /// concatenate to its arguments JSON.
    Arguments { index: usize, fragment: String },
}

/// The tool-call formats, named as vLLM's `--tool-call-parser` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolParserKind {
    /// `<tool_call>{"name": …, "arguments": {…}}</tool_call>`, also with a JSON list inside, or
    /// with qwen3_coder's XML inside (Hermes 2/3, Qwen 2.5, Qwen 3, SmolLM3).
    Hermes,
    /// `{"name": …, "parameters": {…}}` at the start of the output or after `<|python_tag|>`,
    /// several separated by `;` (Llama 3.1–3.3, Llama 4 JSON).
    Llama3Json,
    /// `[TOOL_CALLS][{"name": …, "arguments": {…}}, …]` or, from the v11 tokenizer on,
    /// `[TOOL_CALLS]name[ARGS]{…}` once per call (optionally `[CALL_ID]id` before `[ARGS]`).
    Mistral,
    /// `[f(a=1, b="x"), g()]` with Python literals, at the start of the output or between
    /// `<|python_start|>` and `<|python_end|>` (Llama 3.2 small models, Llama 4).
    Pythonic,
    /// `<tool_call><function=name><parameter=p>value</parameter></function></tool_call>`; values
    /// are typed by the tool's JSON schema (Qwen3-Coder).
    Qwen3Coder,
    /// `functools[{"name": …, "arguments": {…}}, …]` (Phi-4-mini).
    Phi4MiniJson,
}

impl ToolParserKind {
    /// Every kind, for listings and tests.
    pub const ALL: [ToolParserKind; 6] = [
        ToolParserKind::Hermes,
        ToolParserKind::Llama3Json,
        ToolParserKind::Mistral,
        ToolParserKind::Pythonic,
        ToolParserKind::Qwen3Coder,
        ToolParserKind::Phi4MiniJson,
    ];

    /// vLLM's name for the format.
    pub fn name(self) -> &'static str {
        match self {
            ToolParserKind::Hermes => "hermes",
            ToolParserKind::Llama3Json => "llama3_json",
            ToolParserKind::Mistral => "mistral",
            ToolParserKind::Pythonic => "pythonic",
            ToolParserKind::Qwen3Coder => "qwen3_coder",
            ToolParserKind::Phi4MiniJson => "phi4_mini_json",
        }
    }

    /// The kind a `--tool-call-parser` name selects: vLLM's names and a few aliases
    /// (`llama4_json`, `llama4_pythonic`, `qwen3_xml`, `phi4`, `qwen`, `qwen25`).
    pub fn from_name(name: &str) -> Option<ToolParserKind> {
        let kind = match name.trim().to_ascii_lowercase().as_str() {
            "hermes" | "qwen" | "qwen25" | "qwen2_5" => ToolParserKind::Hermes,
            "llama3_json" | "llama4_json" | "llama" => ToolParserKind::Llama3Json,
            "mistral" => ToolParserKind::Mistral,
            "pythonic" | "llama4_pythonic" => ToolParserKind::Pythonic,
            "qwen3_coder" | "qwen3_xml" => ToolParserKind::Qwen3Coder,
            "phi4_mini_json" | "phi4" | "phi4_mini" => ToolParserKind::Phi4MiniJson,
            _ => return None,
        };
        Some(kind)
    }

    /// Best-effort guess from a chat template's source: the markup the template renders
    /// assistant tool calls with (or tells the model to use). `None` when nothing is recognised.
    pub fn from_chat_template(template: &str) -> Option<ToolParserKind> {
        // Order matters: Qwen3-Coder templates also contain `<tool_call>`.
        let kind = if template.contains("<function=") && template.contains("<parameter=") {
            ToolParserKind::Qwen3Coder
        } else if template.contains("<tool_call>") {
            ToolParserKind::Hermes
        } else if template.contains("[TOOL_CALLS]") {
            ToolParserKind::Mistral
        } else if template.contains("functools") {
            ToolParserKind::Phi4MiniJson
        } else if template.contains("<|python_start|>") {
            ToolParserKind::Pythonic
        } else if template.contains("<|python_tag|>")
            || (template.contains("<|start_header_id|>") && template.contains("\"parameters\""))
        {
            ToolParserKind::Llama3Json
        } else {
            return None;
        };
        Some(kind)
    }
}

impl std::fmt::Display for ToolParserKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Splits a complete output into content and calls: the streaming parser fed `text` in one
/// piece, then finished.
pub fn parse_tool_calls(kind: ToolParserKind, text: &str, tools: &[ToolSpec]) -> ParsedToolCalls {
    let mut parser = ToolCallParser::new(kind, tools.to_vec());
    let mut parsed = ParsedToolCalls::default();
    for event in parser.push(text).into_iter().chain(parser.finish()) {
        parsed.apply(event);
    }
    parsed
}
