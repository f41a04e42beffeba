//! A Responses API request as a chat request: its input items become chat messages, its
//! sampling, tools and text format the chat fields, so that [`crate::validate::chat_plan`]
//! checks, renders and tokenizes it like any chat request.
//!
//! Items: a message (`role` user, system, developer or assistant; `content` a string or
//! `input_text` / `output_text` parts, joined with newlines) is a chat message; a
//! `function_call` is a tool call of an assistant message (consecutive calls share one); a
//! `function_call_output` is a `tool` message; `reasoning` items are skipped. Images, files and
//! audio are refused: the served models read text only.

use rotor_protocol::openai::{
    ChatCompletionRequest, ChatMessage, FunctionCall, MessageContent, MessageToolCall,
};
use rotor_protocol::responses_api::{
    CreateResponseRequest, InputContent, InputItem, OutputItem, ResponseInput, ResponseTool,
};
use serde_json::{json, Map, Value};

use crate::error::ApiError;

const MESSAGE_ROLES: &[&str] = &["user", "system", "developer", "assistant"];

fn message(role: &str, content: Option<String>) -> ChatMessage {
    ChatMessage {
        role: role.to_string(),
        content: content.map(MessageContent::Text),
        name: None,
        tool_calls: None,
        tool_call_id: None,
        reasoning_content: None,
    }
}

/// The chat messages of `input`.
pub fn input_messages(input: &ResponseInput) -> Result<Vec<ChatMessage>, ApiError> {
    let items = match input {
        ResponseInput::Text(text) => return Ok(vec![message("user", Some(text.clone()))]),
        ResponseInput::Items(items) => items,
    };
    if items.is_empty() {
        return Err(ApiError::invalid_param(
            "input",
            "`input` must not be an empty list.",
        ));
    }
    let mut messages: Vec<ChatMessage> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.kind.as_deref().unwrap_or("message") {
            "message" => messages.push(message_item(i, item)?),
            "function_call" => {
                let call = MessageToolCall {
                    id: required(i, "call_id", item.call_id.as_ref())?,
                    kind: "function".to_string(),
                    function: FunctionCall {
                        name: required(i, "name", item.name.as_ref())?,
                        arguments: required(i, "arguments", item.arguments.as_ref())?,
                    },
                };
                match messages.last_mut() {
                    Some(last) if last.role == "assistant" => {
                        last.tool_calls.get_or_insert_with(Vec::new).push(call)
                    }
                    _ => {
                        let mut assistant = message("assistant", None);
                        assistant.tool_calls = Some(vec![call]);
                        messages.push(assistant);
                    }
                }
            }
            "function_call_output" => {
                let call_id = required(i, "call_id", item.call_id.as_ref())?;
                let output = item.output.as_ref().ok_or_else(|| {
                    ApiError::invalid_param(
                        &format!("input[{i}].output"),
                        "A `function_call_output` item needs `output`.",
                    )
                })?;
                let mut tool = message("tool", Some(content_text(i, "output", output)?));
                tool.tool_call_id = Some(call_id);
                messages.push(tool);
            }
            "reasoning" => {}
            other => {
                return Err(ApiError::unsupported(
                    &format!("input[{i}].type"),
                    &format!(
                        "items of type {other:?}; only \"message\", \"function_call\", \
                         \"function_call_output\" and \"reasoning\""
                    ),
                ))
            }
        }
    }
    Ok(messages)
}

fn required(i: usize, field: &str, value: Option<&String>) -> Result<String, ApiError> {
    value.cloned().ok_or_else(|| {
        ApiError::invalid_param(
            &format!("input[{i}].{field}"),
            format!("This item needs `{field}`."),
        )
    })
}

fn message_item(i: usize, item: &InputItem) -> Result<ChatMessage, ApiError> {
    let role = item.role.as_deref().unwrap_or_default();
    if !MESSAGE_ROLES.contains(&role) {
        return Err(ApiError::invalid_param(
            &format!("input[{i}].role"),
            format!("Unknown role {role:?}; expected one of {MESSAGE_ROLES:?}."),
        ));
    }
    let content = item.content.as_ref().ok_or_else(|| {
        ApiError::invalid_param(
            &format!("input[{i}].content"),
            "A message item needs `content`.",
        )
    })?;
    Ok(message(role, Some(content_text(i, "content", content)?)))
}

/// The text of a content: the string, or its text parts joined with newlines.
fn content_text(i: usize, field: &str, content: &InputContent) -> Result<String, ApiError> {
    let parts = match content {
        InputContent::Text(text) => return Ok(text.clone()),
        InputContent::Parts(parts) => parts,
    };
    let mut texts = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let param = format!("input[{i}].{field}[{j}]");
        match part.kind.as_str() {
            "input_text" | "output_text" | "text" => match &part.text {
                Some(text) => texts.push(text.as_str()),
                None => return Err(ApiError::invalid_param(&param, "A text part needs `text`.")),
            },
            "refusal" => {}
            other => {
                return Err(ApiError::unsupported(
                    &param,
                    &format!(
                        "content parts of type {other:?}; the served models read text only \
                         (\"input_text\", \"output_text\")"
                    ),
                ))
            }
        }
    }
    Ok(texts.join("\n"))
}

/// A stored response's output as the assistant turn that follows its input.
pub fn output_messages(output: &[OutputItem]) -> Vec<ChatMessage> {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for item in output {
        match item {
            OutputItem::Message { content, .. } => {
                for part in content {
                    text.push_str(&part.text);
                }
            }
            OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
                ..
            } => calls.push(MessageToolCall {
                id: call_id.clone(),
                kind: "function".to_string(),
                function: FunctionCall {
                    name: name.clone(),
                    arguments: arguments.clone(),
                },
            }),
            OutputItem::Reasoning { content, .. } => {
                for part in content {
                    reasoning.push_str(&part.text);
                }
            }
        }
    }
    let content = (!text.is_empty() || calls.is_empty()).then_some(text);
    let mut assistant = message("assistant", content);
    assistant.tool_calls = (!calls.is_empty()).then_some(calls);
    assistant.reasoning_content = (!reasoning.is_empty()).then_some(reasoning);
    vec![assistant]
}

/// The chat request of `req` whose messages are `instructions` (as a system message) followed
/// by `conversation`.
pub fn chat_request(
    req: &CreateResponseRequest,
    conversation: &[ChatMessage],
) -> Result<ChatCompletionRequest, ApiError> {
    let mut messages = Vec::with_capacity(conversation.len() + 1);
    if let Some(instructions) = &req.instructions {
        messages.push(message("system", Some(instructions.clone())));
    }
    messages.extend_from_slice(conversation);
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("messages".into(), json!(messages));
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(key.to_string(), value);
        }
    };
    put(
        "max_completion_tokens",
        req.max_output_tokens.map(Value::from),
    );
    put("temperature", req.temperature.map(Value::from));
    put("top_p", req.top_p.map(Value::from));
    put("stream", req.stream.map(Value::from));
    put("seed", req.seed.map(Value::from));
    put(
        "parallel_tool_calls",
        req.parallel_tool_calls.map(Value::from),
    );
    put("tools", req.tools.as_deref().map(chat_tools).transpose()?);
    put(
        "tool_choice",
        req.tool_choice.as_ref().map(chat_tool_choice).transpose()?,
    );
    put("response_format", response_format(req.text.as_ref())?);
    serde_json::from_value(Value::Object(body))
        .map_err(|err| ApiError::internal(format!("cannot build the chat request: {err}")))
}

fn chat_tools(tools: &[ResponseTool]) -> Result<Value, ApiError> {
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        if tool.kind != "function" {
            return Err(ApiError::unsupported(
                &format!("tools[{i}].type"),
                &format!(
                    "tools of type {:?}; only \"function\" tools (built-in tools such as web \
                     search are not served)",
                    tool.kind
                ),
            ));
        }
        let name = tool.name.as_ref().ok_or_else(|| {
            ApiError::invalid_param(&format!("tools[{i}].name"), "A function tool needs `name`.")
        })?;
        let mut function = json!({"name": name});
        if let Some(description) = &tool.description {
            function["description"] = json!(description);
        }
        if let Some(parameters) = &tool.parameters {
            function["parameters"] = parameters.clone();
        }
        if let Some(strict) = tool.strict {
            function["strict"] = json!(strict);
        }
        out.push(json!({"type": "function", "function": function}));
    }
    Ok(Value::Array(out))
}

/// `{"type": "function", "name": N}` becomes chat's `{"type": "function", "function":
/// {"name": N}}`; the strings pass as they are.
fn chat_tool_choice(choice: &Value) -> Result<Value, ApiError> {
    let Value::Object(object) = choice else {
        return Ok(choice.clone());
    };
    match (
        object.get("type").and_then(Value::as_str),
        object.get("name").and_then(Value::as_str),
    ) {
        (Some("function"), Some(name)) => {
            Ok(json!({"type": "function", "function": {"name": name}}))
        }
        _ => Err(ApiError::invalid_param(
            "tool_choice",
            "A named `tool_choice` is {\"type\": \"function\", \"name\": …}; other tool choices \
             (allowed_tools, built-in tools) are not supported.",
        )),
    }
}

/// `text.format` as chat's `response_format` (`None` for plain text).
fn response_format(text: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(format) = text.and_then(|t| t.get("format")) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = json!({
                "name": format.get("name").cloned().unwrap_or_else(|| json!("response")),
                "schema": format.get("schema").cloned().unwrap_or(Value::Null),
            });
            if let Some(strict) = format.get("strict") {
                schema["strict"] = strict.clone();
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Err(ApiError::invalid_param(
            "text.format.type",
            "`text.format.type` must be \"text\", \"json_object\" or \"json_schema\".",
        )),
    }
}

/// Renames the chat parameter an error names to the Responses API's.
pub fn rename_param(mut err: ApiError) -> ApiError {
    if let Some(param) = err.param.take() {
        let renamed = if param == "max_completion_tokens" || param == "max_tokens" {
            "max_output_tokens".to_string()
        } else if param.starts_with("messages") {
            "input".to_string()
        } else if param == "response_format" || param.starts_with("response_format.") {
            "text.format".to_string()
        } else if param == "tool_choice.function.name" {
            "tool_choice.name".to_string()
        } else {
            param.replacen(".function.", ".", 1)
        };
        err.param = Some(renamed);
    }
    err
}

/// The tools as the response object echoes them (OpenAI's shape; `strict` defaults to true).
pub fn echoed_tools(tools: Option<&[ResponseTool]>) -> Vec<Value> {
    tools
        .unwrap_or_default()
        .iter()
        .map(|tool| {
            json!({
                "type": tool.kind,
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.parameters,
                "strict": tool.strict.unwrap_or(true),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(value: Value) -> ResponseInput {
        serde_json::from_value(value).expect("input")
    }

    #[test]
    fn calls_join_the_assistant_turn_and_outputs_become_tool_messages() {
        let input = items(json!([
            {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{\"x\":1}"},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "reasoning", "id": "rs_1"}
        ]));
        let messages = input_messages(&input).expect("messages");
        assert_eq!(messages.len(), 3);
        assert_eq!(
            messages[0].content,
            Some(MessageContent::Text("a\nb".into()))
        );
        assert_eq!(messages[1].role, "assistant");
        assert_eq!(messages[1].content, None);
        let calls = messages[1].tool_calls.as_ref().expect("calls");
        assert_eq!(
            calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["c1", "c2"]
        );
        assert_eq!(messages[2].role, "tool");
        assert_eq!(messages[2].tool_call_id.as_deref(), Some("c1"));
    }

    #[test]
    fn images_and_unknown_roles_are_refused_by_name() {
        let image = items(json!([{"role": "user", "content": [
            {"type": "input_text", "text": "see"}, {"type": "input_image", "image_url": "data:"}]}]));
        let err = input_messages(&image).expect_err("images refused");
        assert_eq!(err.param.as_deref(), Some("input[0].content[1]"));
        let role = items(json!([{"role": "tool", "content": "x"}]));
        let err = input_messages(&role).expect_err("role refused");
        assert_eq!(err.param.as_deref(), Some("input[0].role"));
    }

    #[test]
    fn named_tool_choice_and_json_schema_translate_to_chat_fields() {
        let req: CreateResponseRequest = serde_json::from_value(json!({
            "model": "m", "input": "hi", "instructions": "be brief", "max_output_tokens": 7,
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}}}
        }))
        .expect("request");
        let conversation = input_messages(&req.input).expect("input");
        let chat = chat_request(&req, &conversation).expect("chat");
        assert_eq!(chat.messages[0].role, "system");
        assert_eq!(chat.messages[1].role, "user");
        assert_eq!(chat.max_completion_tokens, Some(7));
        assert_eq!(
            chat.tool_choice,
            Some(json!({"type": "function", "function": {"name": "f"}}))
        );
        assert_eq!(chat.tools.as_ref().expect("tools")[0].function.name, "f");
        assert_eq!(
            chat.response_format,
            Some(
                json!({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}}})
            )
        );
    }
}
