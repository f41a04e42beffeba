//! Tools for chat templates that know nothing of them.
//!
//! A template that reads `tools` describes them to the model itself, and renders assistant
//! `tool_calls` and `tool` messages its own way. Many small models' templates (SmolLM2's,
//! the default model's) do not: for those the frontend rewrites the messages before rendering,
//! in the markup of the tool-call parser in use, so that the model still learns which
//! functions exist and how to call them:
//! - a system message listing the tools (their OpenAI definitions as JSON, one per line) and
//!   the call format, appended to the first system message or, without one, put first;
//! - an assistant message's `tool_calls` appended to its content as the parser's markup;
//! - a `tool` message becomes a `user` message `<tool_response>\n…\n</tool_response>` (the
//!   form Hermes-style models are trained on; a template may not know the `tool` role).

use rotor_protocol::openai::MessageToolCall;
use rotor_text::ToolParserKind;
use serde_json::Value;

/// What a call to `name` with `arguments` looks like in `kind`'s markup.
fn call_markup(kind: ToolParserKind, name: &str, arguments: &str) -> String {
    let name_json = Value::String(name.to_string());
    match kind {
        ToolParserKind::Hermes => {
            format!(
                "<tool_call>\n{{\"name\": {name_json}, \"arguments\": {arguments}}}\n</tool_call>"
            )
        }
        ToolParserKind::Llama3Json => {
            format!("{{\"name\": {name_json}, \"parameters\": {arguments}}}")
        }
        ToolParserKind::Mistral => {
            format!("[TOOL_CALLS][{{\"name\": {name_json}, \"arguments\": {arguments}}}]")
        }
        ToolParserKind::Phi4MiniJson => {
            format!("functools[{{\"name\": {name_json}, \"arguments\": {arguments}}}]")
        }
        ToolParserKind::Pythonic => {
            let args = serde_json::from_str::<serde_json::Map<String, Value>>(arguments)
                .map(|map| {
                    map.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            format!("[{name}({args})]")
        }
        ToolParserKind::Qwen3Coder => {
            let params = serde_json::from_str::<serde_json::Map<String, Value>>(arguments)
                .map(|map| {
                    map.iter()
                        .map(|(k, v)| {
                            let v = match v {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            format!("<parameter={k}>\n{v}\n</parameter>\n")
                        })
                        .collect::<String>()
                })
                .unwrap_or_default();
            format!("<tool_call>\n<function={name}>\n{params}</function>\n</tool_call>")
        }
    }
}

/// The system text that describes `tools` (OpenAI definitions) and the call format.
pub fn tools_system_text(kind: ToolParserKind, tools: &[Value]) -> String {
    let mut text = String::from(
        "# Tools\n\nYou may call one or more of these functions. Their JSON definitions:\n<tools>\n",
    );
    for tool in tools {
        text.push_str(&tool.to_string());
        text.push('\n');
    }
    text.push_str("</tools>\n\nTo call a function, answer with exactly:\n");
    text.push_str(&call_markup(
        kind,
        "function_name",
        "{\"argument_name\": \"value\"}",
    ));
    text
}

/// A message's content as text: the string, or its text parts joined (parts are checked to be
/// text before this runs); empty when null.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// Rewrites OpenAI `messages` (already checked) for a template without tool support; see the
/// module docs. `tools` is `None` when the request offers none (history is still rewritten).
pub fn rewrite_messages(kind: ToolParserKind, messages: &mut Vec<Value>, tools: Option<&[Value]>) {
    for message in messages.iter_mut() {
        let Some(object) = message.as_object_mut() else {
            continue;
        };
        match object.get("role").and_then(Value::as_str) {
            Some("assistant") => {
                let calls: Vec<MessageToolCall> = object
                    .remove("tool_calls")
                    .and_then(|c| serde_json::from_value(c).ok())
                    .unwrap_or_default();
                if calls.is_empty() {
                    continue;
                }
                let mut content = content_text(object.get("content"));
                if !content.is_empty() {
                    content.push('\n');
                }
                let markup: Vec<String> = calls
                    .iter()
                    .map(|c| call_markup(kind, &c.function.name, &c.function.arguments))
                    .collect();
                content.push_str(&markup.join("\n"));
                object.insert("content".into(), Value::String(content));
            }
            Some("tool") => {
                let content = content_text(object.get("content"));
                object.insert("role".into(), Value::String("user".into()));
                object.insert(
                    "content".into(),
                    Value::String(format!("<tool_response>\n{content}\n</tool_response>")),
                );
                object.remove("tool_call_id");
            }
            _ => {}
        }
    }
    let Some(tools) = tools else {
        return;
    };
    let description = tools_system_text(kind, tools);
    let first_is_system = messages
        .first()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        == Some("system");
    if first_is_system {
        let first = &mut messages[0];
        let content = match first.get("content") {
            Some(Value::String(s)) => format!("{s}\n\n{description}"),
            _ => description,
        };
        first["content"] = Value::String(content);
    } else {
        messages.insert(
            0,
            serde_json::json!({"role": "system", "content": description}),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn history_and_tools_are_rewritten_in_hermes_markup() {
        let mut messages = vec![
            json!({"role": "user", "content": "Weather in Paris?"}),
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}
            ]}),
            json!({"role": "tool", "tool_call_id": "call_1", "content": "22 C"}),
        ];
        let tools = [json!({"type": "function", "function": {"name": "get_weather"}})];
        rewrite_messages(ToolParserKind::Hermes, &mut messages, Some(&tools));
        assert_eq!(messages.len(), 4);
        assert_eq!(messages[0]["role"], "system");
        let system = messages[0]["content"].as_str().unwrap();
        assert!(
            system.contains("{\"function\":{\"name\":\"get_weather\"},\"type\":\"function\"}")
                || system.contains("\"name\":\"get_weather\""),
            "{system}"
        );
        assert!(
            system.contains("<tool_call>\n{\"name\": \"function_name\""),
            "{system}"
        );
        assert_eq!(
            messages[2]["content"],
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"
        );
        assert!(messages[2].get("tool_calls").is_none());
        assert_eq!(messages[3]["role"], "user");
        assert_eq!(
            messages[3]["content"],
            "<tool_response>\n22 C\n</tool_response>"
        );
    }

    #[test]
    fn content_given_as_text_parts_is_kept() {
        let mut messages = vec![
            json!({"role": "assistant", "content": [{"type": "text", "text": "Let me check."}],
                   "tool_calls": [{"id": "call_1", "type": "function",
                                   "function": {"name": "f", "arguments": "{}"}}]}),
            json!({"role": "tool", "tool_call_id": "call_1",
                   "content": [{"type": "text", "text": "22 "}, {"type": "text", "text": "C"}]}),
        ];
        rewrite_messages(ToolParserKind::Hermes, &mut messages, None);
        let assistant = messages[0]["content"].as_str().expect("text");
        assert!(
            assistant.starts_with("Let me check.\n<tool_call>"),
            "{assistant}"
        );
        assert_eq!(
            messages[1]["content"],
            "<tool_response>\n22 C\n</tool_response>"
        );
    }
}
