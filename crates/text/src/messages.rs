//! Normalizing OpenAI chat messages before a template sees them.
//!
//! Templates written for Hugging Face expect `content` to be a string. OpenAI clients may send it
//! as a list of parts; text parts are joined with "\n" (as vLLM and llama.cpp do) and any other
//! part type is refused, since this server has no image or audio input.
//!
//! An assistant message's `tool_calls[].function.arguments` is JSON text in OpenAI's API, but
//! templates iterate over it (`arguments.items()`) or print it with `tojson`: text that parses
//! as JSON is replaced by its value (vLLM does the same); other text is left as it is.

use serde_json::Value;

use crate::Error;

/// Returns a copy of `messages` in which every list-of-parts `content` is one string. Other
/// fields (`role`, `name`, `tool_calls`, ...) are passed through untouched; `null` content stays
/// `null` (assistant messages that only carry tool calls).
pub(crate) fn flatten_messages(messages: &Value) -> Result<Value, Error> {
    let list = messages.as_array().ok_or_else(|| Error::InvalidMessages {
        reason: format!("messages must be an array, got {}", kind(messages)),
    })?;
    let mut out = Vec::with_capacity(list.len());
    for (index, message) in list.iter().enumerate() {
        let object = message.as_object().ok_or_else(|| Error::InvalidMessages {
            reason: format!("message {index} must be an object, got {}", kind(message)),
        })?;
        let mut object = object.clone();
        if let Some(content) = object.get_mut("content") {
            *content = flatten_content(index, content)?;
        }
        if let Some(Value::Array(calls)) = object.get_mut("tool_calls") {
            for call in calls {
                parse_arguments(call);
            }
        }
        out.push(Value::Object(object));
    }
    Ok(Value::Array(out))
}

/// `function.arguments` text → its JSON value, when it is valid JSON.
fn parse_arguments(call: &mut Value) {
    let Some(arguments) = call
        .get_mut("function")
        .and_then(|f| f.get_mut("arguments"))
    else {
        return;
    };
    if let Value::String(text) = arguments {
        if let Ok(value) = serde_json::from_str::<Value>(text) {
            *arguments = value;
        }
    }
}

fn flatten_content(index: usize, content: &Value) -> Result<Value, Error> {
    let parts = match content {
        Value::String(_) | Value::Null => return Ok(content.clone()),
        Value::Array(parts) => parts,
        other => {
            return Err(Error::InvalidMessages {
                reason: format!(
                    "message {index}: content must be a string or a list of parts, got {}",
                    kind(other)
                ),
            })
        }
    };
    let mut texts = Vec::with_capacity(parts.len());
    for part in parts {
        let part_type =
            part.get("type")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::InvalidMessages {
                    reason: format!("message {index}: every content part needs a string \"type\""),
                })?;
        if part_type != "text" {
            return Err(Error::UnsupportedContent {
                message_index: index,
                part_type: part_type.to_string(),
            });
        }
        let text =
            part.get("text")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::InvalidMessages {
                    reason: format!("message {index}: a text part needs a string \"text\""),
                })?;
        texts.push(text);
    }
    Ok(Value::String(texts.join("\n")))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_parts_are_joined_with_newlines_and_other_fields_kept() {
        let got = flatten_messages(&json!([
            {"role": "user", "name": "ann", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null}
        ]))
        .expect("valid messages");
        assert_eq!(
            got,
            json!([{"role": "user", "name": "ann", "content": "a\nb"}, {"role": "assistant", "content": null}])
        );
    }

    #[test]
    fn tool_call_arguments_text_becomes_json_and_bad_json_stays_text() {
        let got = flatten_messages(&json!([
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"city\": \"Paris\", \"n\": [1, 2]}"}},
                {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "not json"}}
            ]}
        ]))
        .expect("valid messages");
        assert_eq!(
            got[0]["tool_calls"][0]["function"]["arguments"],
            json!({"city": "Paris", "n": [1, 2]})
        );
        assert_eq!(
            got[0]["tool_calls"][1]["function"]["arguments"],
            json!("not json")
        );
        assert_eq!(got[0]["content"], Value::Null);
    }

    #[test]
    fn image_part_is_refused_by_name() {
        let err = flatten_messages(&json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]))
            .expect_err("images are not supported");
        assert!(
            matches!(err, Error::UnsupportedContent { message_index: 0, ref part_type } if part_type == "image_url")
        );
    }

    #[test]
    fn non_array_messages_are_invalid() {
        assert!(matches!(
            flatten_messages(&json!({"role": "user"})),
            Err(Error::InvalidMessages { .. })
        ));
    }
}
