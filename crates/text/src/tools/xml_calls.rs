//! qwen3_coder's XML calls: `<function=name>` then `<parameter=p>value</parameter>` for each
//! argument, then `</function>`.
//!
//! A value is the text between the tags without one leading and one trailing newline. It is
//! typed by the parameter's JSON-schema `type` in the request's tools: `string` (and no known
//! type) keeps the text; `integer`, `number` and `boolean` parse it; `object` and `array`
//! parse it as JSON, else as a Python literal; `null`/`None` is null for any type but string.
//! A value that does not parse as its type stays a string. A missing `</parameter>` is
//! tolerated when the next `<parameter=` or `</function>` follows.

use super::format::RawCall;
use super::python_literal;
use super::tool_set::ToolSet;

pub(crate) const FUNCTION_OPEN: &str = "<function=";
pub(crate) const FUNCTION_CLOSE: &str = "</function>";
const PARAMETER_OPEN: &str = "<parameter=";
const PARAMETER_CLOSE: &str = "</parameter>";

/// The calls in `body` (one or more complete `<function=…>…</function>` blocks and nothing
/// else but whitespace), or `None`.
pub(crate) fn calls_from_xml(body: &str, tools: &ToolSet) -> Option<Vec<RawCall>> {
    let mut rest = body.trim_start();
    let mut calls = Vec::new();
    while !rest.is_empty() {
        let (call, after) = function(rest, tools)?;
        calls.push(call);
        rest = after.trim_start();
    }
    (!calls.is_empty()).then_some(calls)
}

/// One function block at the start of `text`; the call and the text after it.
fn function<'a>(text: &'a str, tools: &ToolSet) -> Option<(RawCall, &'a str)> {
    let text = text.strip_prefix(FUNCTION_OPEN)?;
    let (name, mut rest) = text.split_once('>')?;
    let name = name.trim();
    if name.is_empty() || name.contains(['<', '\n']) {
        return None;
    }
    let mut arguments = String::from("{");
    let mut keys: Vec<&str> = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix(FUNCTION_CLOSE) {
            arguments.push('}');
            let call = RawCall {
                name: name.to_string(),
                arguments,
                id: None,
            };
            return Some((call, after));
        }
        let after_open = rest.strip_prefix(PARAMETER_OPEN)?;
        let (key, after_key) = after_open.split_once('>')?;
        let key = key.trim();
        if key.is_empty() || key.contains(['<', '\n']) || keys.contains(&key) {
            return None;
        }
        keys.push(key);
        let value_end = [PARAMETER_CLOSE, PARAMETER_OPEN, FUNCTION_CLOSE]
            .iter()
            .filter_map(|tag| after_key.find(tag))
            .min()?;
        let value = strip_one_newline(&after_key[..value_end]);
        if keys.len() > 1 {
            arguments.push(',');
        }
        arguments.push_str(&json_string(key));
        arguments.push(':');
        arguments.push_str(&typed_value(value, tools.parameter_type(name, key)));
        rest = &after_key[value_end..];
        if let Some(after) = rest.strip_prefix(PARAMETER_CLOSE) {
            rest = after;
        }
    }
}

fn strip_one_newline(value: &str) -> &str {
    let value = value.strip_prefix('\n').unwrap_or(value);
    value.strip_suffix('\n').unwrap_or(value)
}

/// A value's JSON text, typed by its schema type.
fn typed_value(value: &str, schema_type: Option<&str>) -> String {
    let trimmed = value.trim();
    let Some(ty) = schema_type else {
        return json_string(value);
    };
    if ty != "string" && matches!(trimmed, "null" | "None") {
        return "null".to_string();
    }
    let typed = match ty {
        "integer" | "int" => trimmed
            .parse::<i64>()
            .ok()
            .map(|n| n.to_string())
            .or_else(|| whole_float(trimmed)),
        "number" | "float" => number(trimmed),
        "boolean" | "bool" => match trimmed.to_ascii_lowercase().as_str() {
            "true" => Some("true".to_string()),
            "false" => Some("false".to_string()),
            _ => None,
        },
        "object" | "array" | "dict" | "list" => serde_json::from_str::<serde_json::Value>(trimmed)
            .ok()
            .map(|_| trimmed.to_string())
            .or_else(|| python_literal::to_json(trimmed)),
        _ => None,
    };
    typed.unwrap_or_else(|| json_string(value))
}

fn whole_float(text: &str) -> Option<String> {
    let float: f64 = text.parse().ok()?;
    (float.is_finite() && float.fract() == 0.0 && float.abs() < 9.0e15)
        .then(|| format!("{}", float as i64))
}

fn number(text: &str) -> Option<String> {
    if serde_json::from_str::<serde_json::Number>(text).is_ok() {
        return Some(text.to_string());
    }
    let float: f64 = text.parse().ok()?;
    serde_json::Number::from_f64(float).map(|n| n.to_string())
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("invariant: serializing a str cannot fail")
}

#[cfg(test)]
mod tests {
    use super::super::tool_set::ToolSet;
    use super::super::ToolSpec;
    use super::calls_from_xml;

    #[test]
    fn values_typed_by_schema() {
        let tools = ToolSet::new(vec![ToolSpec {
            name: "f".into(),
            parameters: Some(serde_json::json!({"properties": {
                "n": {"type": "integer"}, "x": {"type": ["number", "null"]},
                "b": {"type": "boolean"}, "o": {"type": "object"}, "l": {"type": "array"},
                "s": {"type": "string"}, "z": {"type": "integer"}
            }})),
        }]);
        let body =
            "<function=f>\n<parameter=n>\n42\n</parameter>\n<parameter=x>\n2.5\n</parameter>\
            <parameter=b>True</parameter><parameter=o>{\"k\": [1]}</parameter>\
            <parameter=l>['a', None]</parameter><parameter=s>\n 7 \n</parameter>\
            <parameter=z>null</parameter><parameter=u>3</parameter>\n</function>";
        let calls = calls_from_xml(body, &tools).expect("a call");
        assert_eq!(
            calls[0].arguments,
            r#"{"n":42,"x":2.5,"b":true,"o":{"k": [1]},"l":["a",null],"s":" 7 ","z":null,"u":"3"}"#
        );
    }

    #[test]
    fn missing_parameter_close_is_tolerated_but_missing_function_close_is_not() {
        let tools = ToolSet::default();
        let calls = calls_from_xml(
            "<function=f><parameter=a>1<parameter=b>2</function>",
            &tools,
        )
        .expect("a call");
        assert_eq!(calls[0].arguments, r#"{"a":"1","b":"2"}"#);
        assert_eq!(
            calls_from_xml("<function=f><parameter=a>1</parameter>", &tools),
            None
        );
    }
}
