//! Normalizing OpenAI chat messages before a template sees them.
//!
//! Templates written for Hugging Face expect `content` to be a string. OpenAI clients may send it
//! as a list of parts; text parts are joined with "\n" (as vLLM and llama.cpp do) and any other
//! part type is refused, since this server has no image or audio input.

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
        out.push(Value::Object(object));
    }
    Ok(Value::Array(out))
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
