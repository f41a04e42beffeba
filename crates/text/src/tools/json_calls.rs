//! Calls written as JSON: `{"name": …, "arguments": {…}}` (or `"parameters"`), or a list of
//! them. Shared by hermes, llama3_json, mistral and phi4_mini_json.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::format::RawCall;

#[derive(Deserialize)]
struct CallObject<'a> {
    name: String,
    #[serde(borrow, default, alias = "parameters")]
    arguments: Option<&'a RawValue>,
    #[serde(default)]
    id: Option<String>,
}

/// The calls in `text`, a JSON object or a non-empty list of objects; `None` when it is
/// anything else (invalid JSON, a call without a name, arguments that are not an object).
pub(crate) fn calls_from_json(text: &str) -> Option<Vec<RawCall>> {
    let text = text.trim();
    if text.starts_with('[') {
        let items: Vec<&RawValue> = serde_json::from_str(text).ok()?;
        if items.is_empty() {
            return None;
        }
        items
            .iter()
            .map(|item| call_from_json(item.get()))
            .collect()
    } else {
        call_from_json(text).map(|call| vec![call])
    }
}

/// One call object.
pub(crate) fn call_from_json(text: &str) -> Option<RawCall> {
    let object: CallObject = serde_json::from_str(text).ok()?;
    if object.name.trim().is_empty() {
        return None;
    }
    let arguments = match object.arguments {
        None => "{}".to_string(),
        Some(raw) => arguments_text(raw.get())?,
    };
    Some(RawCall {
        name: object.name,
        arguments,
        id: object.id,
    })
}

/// Arguments as a JSON object's text: a valid object as written, or a string that holds an
/// object (some models write `"arguments": "{\"a\": 1}"`).
pub(crate) fn arguments_text(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.starts_with('{') {
        serde_json::from_str::<serde::de::IgnoredAny>(raw).ok()?;
        return Some(raw.to_string());
    }
    if raw == "null" {
        return Some("{}".to_string());
    }
    let inner: String = serde_json::from_str(raw).ok()?;
    let value: serde_json::Value = serde_json::from_str(&inner).ok()?;
    value.is_object().then(|| inner.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::calls_from_json;

    #[test]
    fn object_list_and_string_arguments() {
        let calls = calls_from_json(r#"{"name": "f", "parameters": {"a": [1, {"b": null}]}}"#)
            .expect("one call");
        assert_eq!(calls[0].name, "f");
        assert_eq!(calls[0].arguments, r#"{"a": [1, {"b": null}]}"#);

        let calls = calls_from_json(r#"[{"name": "f"}, {"name": "g", "arguments": "{\"x\": 1}"}]"#)
            .expect("two calls");
        assert_eq!(calls[0].arguments, "{}");
        assert_eq!(calls[1].arguments, r#"{"x": 1}"#);
    }

    #[test]
    fn rejects_what_is_not_a_call() {
        for text in [
            "[]",
            r#"{"answer": 1}"#,
            r#"{"name": "f", "arguments": [1]}"#,
            r#"{"name": "", "arguments": {}}"#,
            r#"{"name": "f", "arguments": {"a": 1}"#,
            r#"{"name": "f", "arguments": "not json"}"#,
        ] {
            assert_eq!(calls_from_json(text), None, "{text}");
        }
    }
}
