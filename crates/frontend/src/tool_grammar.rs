//! Lark grammars (llguidance's dialect) for forced tool calls and for constraints that start
//! after the model's reasoning.
//!
//! **Forced calls** (`tool_choice: "required"` or a named function): the grammar is the tool-call
//! parser's own markup with each tool's name as a literal and its `parameters` schema embedded
//! with `%json`, so whatever the model samples parses as calls whose arguments validate:
//!
//! | parser | one call | several (`parallel_tool_calls`) |
//! |---|---|---|
//! | hermes | `<tool_call>\n{"name": "f", "arguments": {…}}\n</tool_call>` | joined by `\n` |
//! | llama3_json | `{"name": "f", "parameters": {…}}` | joined by `; ` |
//! | mistral | `[TOOL_CALLS][{"name": "f", "arguments": {…}}]` | in the one list |
//! | phi4_mini_json | `functools[{"name": "f", "arguments": {…}}]` | in the one list |
//!
//! pythonic and qwen3_coder write arguments that are not JSON, which `%json` cannot describe:
//! forcing a call with them is a 400 rather than an unconstrained request.
//!
//! **After reasoning**: with a reasoning parser, the constraint applies to the answer, not to
//! the thinking. The request's constraint becomes `start: <thinking> body`, where the thinking
//! is a lazy lexeme up to the first `</think>` (mandatory when the prompt opened the think
//! block or the parser is deepseek_r1; optional otherwise) and `body` is the constraint
//! (`%json`, a regex, a choice of literals, or the forced calls). A user's own grammar
//! (`guided_grammar`: Lark or GBNF) is passed as given and applies from the first output token:
//! it must allow the thinking itself.

use rotor_protocol::Constraint;
use rotor_text::ToolParserKind;
use serde_json::Value;

use crate::error::ApiError;
use crate::tool_request::ToolRequest;

/// How the output starts with respect to a think block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkStart {
    /// No reasoning parser: the constraint applies from the first token.
    None,
    /// The output starts inside the think block (opened by the prompt, or deepseek_r1).
    Inside,
    /// The output may open a think block first.
    Optional,
}

/// A string literal of the grammar (JSON string syntax, which llguidance's Lark reads).
fn literal(text: &str) -> String {
    serde_json::to_string(text)
        .expect("invariant: strings serialize")
        .replace('\u{7f}', "\\u007f")
}

/// A `/…/` regex literal: `/` escaped, raw line breaks and tabs written as escapes.
fn regex_literal(pattern: &str) -> String {
    let mut out = String::from("/");
    let mut escaped = false;
    for c in pattern.chars() {
        match c {
            '/' if !escaped => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            _ => out.push(c),
        }
        escaped = c == '\\' && !escaped;
    }
    out.push('/');
    out
}

/// `%json {…}` of a schema (`{"type": "object"}` when the tool describes no parameters).
fn json_rule(schema: Option<&Value>) -> String {
    let schema = schema
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"type": "object"}));
    format!("%json {schema}")
}

/// The rules of `body`: the forced calls of `tools` in `kind`'s markup.
pub fn forced_calls_rules(kind: ToolParserKind, tools: &ToolRequest) -> Result<String, ApiError> {
    let (open, name_key, args_key, sep, close) = match kind {
        ToolParserKind::Hermes => ("", "<tool_call>\n{\"name\": ", "\"arguments\": ", "\n", ""),
        ToolParserKind::Llama3Json => ("", "{\"name\": ", "\"parameters\": ", "; ", ""),
        ToolParserKind::Mistral => ("[TOOL_CALLS][", "{\"name\": ", "\"arguments\": ", ", ", "]"),
        ToolParserKind::Phi4MiniJson => ("functools[", "{\"name\": ", "\"arguments\": ", ", ", "]"),
        ToolParserKind::Pythonic | ToolParserKind::Qwen3Coder => {
            return Err(ApiError::unsupported(
                "tool_choice",
                &format!(
                    "forcing a call (\"required\" or a named function) with the {kind} tool-call \
                     parser, whose arguments are not JSON; use \"auto\""
                ),
            ))
        }
    };
    let call_end = if kind == ToolParserKind::Hermes {
        "}\n</tool_call>"
    } else {
        "}"
    };
    let mut rules = String::new();
    let callable = tools.callable();
    let alternatives: Vec<String> = (0..callable.len()).map(|i| format!("fn_{i}")).collect();
    let calls = if tools.parallel {
        format!("call ({} call)*", literal(sep))
    } else {
        "call".to_string()
    };
    rules.push_str(&format!(
        "body: {} {calls} {}\n",
        literal(open),
        literal(close)
    ));
    rules.push_str(&format!(
        "call: {} ({}) {}\n",
        literal(name_key),
        alternatives.join(" | "),
        literal(call_end)
    ));
    for (i, tool) in callable.iter().enumerate() {
        let name = serde_json::to_string(&tool.function.name).expect("invariant: names serialize");
        rules.push_str(&format!(
            "fn_{i}: {} args_{i}\nargs_{i}: {}\n",
            literal(&format!("{name}, {args_key}")),
            json_rule(tool.function.parameters.as_ref())
        ));
    }
    // Empty literals are not allowed in Lark: drop them.
    Ok(rules.replace(" \"\" ", " ").replace(" \"\"\n", "\n"))
}

/// `start` over `body` rules, with the thinking first when there is a reasoning parser.
pub fn with_think_start(body_rules: &str, think: ThinkStart) -> String {
    let start = match think {
        ThinkStart::None => "start: body\n",
        ThinkStart::Inside => {
            "start: think_rest WS? body\nthink_rest[lazy]: /(.|\\n)*<\\/think>/\nWS: /[ \\t\\r\\n]+/\n"
        }
        ThinkStart::Optional => {
            "start: (think_full WS?)? body\nthink_full[lazy]: /[ \\t\\r\\n]*<think>(.|\\n)*<\\/think>/\nWS: /[ \\t\\r\\n]+/\n"
        }
    };
    format!("{start}{body_rules}")
}

/// The request's constraint, moved after the thinking when there is a reasoning parser (see
/// the module docs); unchanged without one, and for a user's own grammar.
pub fn after_reasoning(constraint: Constraint, think: ThinkStart) -> Constraint {
    if think == ThinkStart::None {
        return constraint;
    }
    let body = match &constraint {
        Constraint::JsonObject => format!("body: {}\n", json_rule(None)),
        Constraint::JsonSchema { schema, .. } => format!("body: {}\n", json_rule(Some(schema))),
        Constraint::Regex { pattern } => format!("body: {}\n", regex_literal(pattern)),
        Constraint::Choice { choices } => format!(
            "body: {}\n",
            choices
                .iter()
                .map(|c| literal(c))
                .collect::<Vec<_>>()
                .join(" | ")
        ),
        Constraint::Lark { .. } | Constraint::Gbnf { .. } => return constraint,
    };
    Constraint::Lark {
        grammar: with_think_start(&body, think),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regex_literal_escapes_slashes_once() {
        assert_eq!(regex_literal("a/b"), "/a\\/b/");
        assert_eq!(regex_literal("a\\/b"), "/a\\/b/");
        assert_eq!(regex_literal("a\\\\/b"), "/a\\\\\\/b/");
        assert_eq!(regex_literal("x\ny"), "/x\\ny/");
    }

    #[test]
    fn literals_are_json_strings() {
        assert_eq!(
            literal("<tool_call>\n{\"a\""),
            "\"<tool_call>\\n{\\\"a\\\"\""
        );
    }
}
