//! An Anthropic Messages request as the equivalent OpenAI chat request, so that validation,
//! rendering, tool prompts and tool grammars are the chat path's own ([`crate::validate::chat_plan`]).
//!
//! - `system` (a string or text blocks) → a first `system` message. Text blocks are joined with
//!   "\n" here (as rendering joins OpenAI text parts), so that every message reaches the tool
//!   prompt rewriting ([`crate::tool_prompt`]) with string content.
//! - A user message's text blocks → a `user` message; its `tool_result` blocks → `tool`
//!   messages with `tool_call_id`, in block order (an `is_error` result is prefixed "Error: ").
//! - An assistant message's text → `content`, `tool_use` blocks → `tool_calls` (arguments as
//!   JSON text), `thinking` → `reasoning_content`. A last assistant message (a prefill to
//!   continue) is refused: the chat path renders every assistant message as a closed turn.
//! - `tools` → function tools (`input_schema` is `parameters`); `tool_choice` `auto` → "auto",
//!   `any` → "required", `tool` → that named function, `none` → "none";
//!   `disable_parallel_tool_use` → `parallel_tool_calls: false`.
//! - `max_tokens` (required by /v1/messages), `stop_sequences` → `stop`, `temperature` (0 to 1,
//!   as Anthropic's), `top_p`, `top_k`, `stream`; `metadata` is ignored.

use rotor_protocol::anthropic::{
    ContentBlockParam, InputContent, MessagesRequest, SystemPrompt, Tool, ToolChoice,
    ToolResultContent,
};
use rotor_protocol::openai::{
    ChatCompletionRequest, ChatMessage, FunctionCall, FunctionDefinition, MessageContent,
    MessageToolCall, StopSpec, ToolDefinition,
};
use serde_json::{json, Value};

use crate::error::ApiError;

/// Which route the request came to: count_tokens needs no `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Generate,
    CountTokens,
}

/// The chat request equivalent to `req`.
pub fn chat_request(
    req: &MessagesRequest,
    purpose: Purpose,
) -> Result<ChatCompletionRequest, ApiError> {
    let max_tokens = match (purpose, req.max_tokens) {
        (Purpose::Generate, None) => {
            return Err(ApiError::invalid_param(
                "max_tokens",
                "max_tokens: Field required",
            ))
        }
        (Purpose::Generate, Some(m)) => Some(m),
        (Purpose::CountTokens, _) => None,
    };
    if let Some(t) = req.temperature.filter(|t| !(0.0..=1.0).contains(t)) {
        return Err(ApiError::invalid_param(
            "temperature",
            format!("temperature: must be between 0 and 1; got {t}."),
        ));
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if let Some(system) = &req.system {
        messages.push(message(
            "system",
            Some(match system {
                SystemPrompt::Text(text) => MessageContent::Text(text.clone()),
                SystemPrompt::Blocks(blocks) => {
                    MessageContent::Text(joined(blocks.iter().map(|b| b.text.as_str())))
                }
            }),
        ));
    }
    for (i, input) in req.messages.iter().enumerate() {
        match input.role.as_str() {
            "user" => user_messages(&input.content, &mut messages),
            "assistant" => {
                if i + 1 == req.messages.len() && purpose == Purpose::Generate {
                    return Err(ApiError::unsupported(
                        &format!("messages[{i}]"),
                        "a final assistant message (prefill) cannot be continued; end with a \
                         user message",
                    ));
                }
                messages.push(assistant_message(&input.content));
            }
            other => {
                return Err(ApiError::invalid_param(
                    &format!("messages[{i}].role"),
                    format!(
                        "messages[{i}].role: must be \"user\" or \"assistant\"; got {other:?}."
                    ),
                ))
            }
        }
    }
    let (tool_choice, parallel) = match &req.tool_choice {
        None => (None, None),
        Some(choice) => tool_choice(choice),
    };
    Ok(ChatCompletionRequest {
        model: req.model.clone(),
        messages,
        max_completion_tokens: None,
        max_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        n: None,
        stop: req.stop_sequences.clone().map(StopSpec::Many),
        stream: match purpose {
            Purpose::Generate => req.stream,
            Purpose::CountTokens => None,
        },
        stream_options: None,
        seed: None,
        frequency_penalty: None,
        presence_penalty: None,
        logit_bias: None,
        user: None,
        top_k: req.top_k,
        min_p: None,
        repetition_penalty: None,
        min_tokens: None,
        ignore_eos: None,
        logprobs: None,
        top_logprobs: None,
        tools: req
            .tools
            .as_ref()
            .map(|tools| tools.iter().map(tool).collect()),
        tool_choice,
        parallel_tool_calls: parallel,
        response_format: None,
        guided_json: None,
        guided_regex: None,
        guided_choice: None,
        guided_grammar: None,
        structured_outputs: None,
        chat_template_kwargs: None,
    })
}

fn message(role: &str, content: Option<MessageContent>) -> ChatMessage {
    ChatMessage {
        role: role.to_string(),
        content,
        name: None,
        tool_calls: None,
        tool_call_id: None,
        reasoning_content: None,
    }
}

fn joined<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    texts.into_iter().collect::<Vec<_>>().join("\n")
}

/// A user turn: text blocks as one `user` message (split where a tool result comes between),
/// tool results as `tool` messages.
fn user_messages(content: &InputContent, out: &mut Vec<ChatMessage>) {
    let blocks = match content {
        InputContent::Text(text) => {
            out.push(message("user", Some(MessageContent::Text(text.clone()))));
            return;
        }
        InputContent::Blocks(blocks) => blocks,
    };
    let mut texts = Vec::new();
    for block in blocks {
        match block {
            ContentBlockParam::Text { text } => texts.push(text.as_str()),
            ContentBlockParam::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                flush_user_text(&mut texts, out);
                let mut text = match content {
                    None => String::new(),
                    Some(ToolResultContent::Text(text)) => text.clone(),
                    Some(ToolResultContent::Blocks(blocks)) => {
                        joined(blocks.iter().map(|b| b.text.as_str()))
                    }
                };
                if *is_error == Some(true) {
                    text = format!("Error: {text}");
                }
                let mut tool = message("tool", Some(MessageContent::Text(text)));
                tool.tool_call_id = Some(tool_use_id.clone());
                out.push(tool);
            }
            // A user turn carries no calls or reasoning; they are left out.
            ContentBlockParam::ToolUse { .. } | ContentBlockParam::Thinking { .. } => {}
        }
    }
    flush_user_text(&mut texts, out);
}

/// The user text gathered so far, as one message.
fn flush_user_text(texts: &mut Vec<&str>, out: &mut Vec<ChatMessage>) {
    if !texts.is_empty() {
        let text = joined(std::mem::take(texts));
        out.push(message("user", Some(MessageContent::Text(text))));
    }
}

fn assistant_message(content: &InputContent) -> ChatMessage {
    let blocks = match content {
        InputContent::Text(text) => {
            return message("assistant", Some(MessageContent::Text(text.clone())))
        }
        InputContent::Blocks(blocks) => blocks,
    };
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    let mut reasoning = String::new();
    for block in blocks {
        match block {
            ContentBlockParam::Text { text } => texts.push(text.as_str()),
            ContentBlockParam::ToolUse { id, name, input } => calls.push(MessageToolCall {
                id: id.clone(),
                kind: "function".to_string(),
                function: FunctionCall {
                    name: name.clone(),
                    arguments: input.to_string(),
                },
            }),
            ContentBlockParam::Thinking { thinking, .. } => reasoning.push_str(thinking),
            ContentBlockParam::ToolResult { .. } => {}
        }
    }
    let content = if texts.is_empty() && !calls.is_empty() {
        None
    } else {
        Some(MessageContent::Text(joined(texts)))
    };
    let mut out = message("assistant", content);
    out.tool_calls = (!calls.is_empty()).then_some(calls);
    out.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
    out
}

fn tool(tool: &Tool) -> ToolDefinition {
    ToolDefinition {
        kind: "function".to_string(),
        function: FunctionDefinition {
            name: tool.name.clone(),
            description: tool.description.clone(),
            parameters: Some(tool.input_schema.clone()),
            strict: None,
        },
    }
}

/// OpenAI's `tool_choice` and `parallel_tool_calls` for Anthropic's `tool_choice`.
fn tool_choice(choice: &ToolChoice) -> (Option<Value>, Option<bool>) {
    let no_parallel = |disable: &Option<bool>| disable.map(|d| !d);
    match choice {
        ToolChoice::Auto {
            disable_parallel_tool_use,
        } => (Some(json!("auto")), no_parallel(disable_parallel_tool_use)),
        ToolChoice::Any {
            disable_parallel_tool_use,
        } => (
            Some(json!("required")),
            no_parallel(disable_parallel_tool_use),
        ),
        ToolChoice::Tool {
            name,
            disable_parallel_tool_use,
        } => (
            Some(json!({"type": "function", "function": {"name": name}})),
            no_parallel(disable_parallel_tool_use),
        ),
        ToolChoice::None => (Some(json!("none")), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> MessagesRequest {
        serde_json::from_value(body).expect("request parses")
    }

    #[test]
    fn tool_history_becomes_tool_calls_and_tool_messages() {
        let req = request(json!({
            "model": "m", "max_tokens": 8, "system": "sys",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "42"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "bad", "is_error": true},
                    {"type": "text", "text": "thanks"}]}
            ],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
        }));
        let chat = chat_request(&req, Purpose::Generate).expect("translates");
        let roles: Vec<&str> = chat.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "tool", "tool", "user"]
        );
        let calls = chat.messages[2].tool_calls.as_ref().expect("calls");
        assert_eq!(calls[0].id, "toolu_1");
        assert_eq!(calls[0].function.arguments, "{\"x\":1}");
        assert_eq!(chat.messages[3].tool_call_id.as_deref(), Some("toolu_1"));
        assert_eq!(
            chat.messages[3].content,
            Some(MessageContent::Text("42".into()))
        );
        assert_eq!(
            chat.messages[4].content,
            Some(MessageContent::Text("Error: bad".into()))
        );
        assert_eq!(chat.tool_choice, Some(json!("required")));
        assert_eq!(chat.parallel_tool_calls, Some(false));
        assert_eq!(chat.max_tokens, Some(8));
    }

    #[test]
    fn max_tokens_is_required_except_for_counting() {
        let req = request(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}));
        let err = chat_request(&req, Purpose::Generate).expect_err("needs max_tokens");
        assert_eq!(err.param.as_deref(), Some("max_tokens"));
        assert!(chat_request(&req, Purpose::CountTokens).is_ok());
    }

    #[test]
    fn a_final_assistant_message_is_refused_for_generation() {
        let req = request(json!({"model": "m", "max_tokens": 4, "messages": [
            {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hel"}]}));
        let err = chat_request(&req, Purpose::Generate).expect_err("no prefill");
        assert_eq!(err.param.as_deref(), Some("messages[1]"));
    }
}
