//! Structured outputs: OpenAI's `response_format` and vLLM's guided-decoding extensions become
//! one [`Constraint`] that the engine enforces while sampling.
//!
//! - `response_format`: `{"type": "text"}` (no constraint), `{"type": "json_object"}`, or
//!   `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`.
//! - `guided_json` (a schema object, or its JSON text), `guided_regex`, `guided_choice` (a
//!   non-empty list of strings), `guided_grammar`, and the newer `structured_outputs` object with
//!   one of `json`, `regex`, `choice`, `grammar`, `json_object`.
//! - A grammar is GBNF (llama.cpp) when it contains `::=` (GBNF's rule operator, which Lark
//!   never uses), else Lark in llguidance's dialect (`%json {…}` embeds a schema).
//!
//! At most one of these per request; two is a 400 naming both. A schema must be a JSON object
//! (or `true`); anything the engine cannot enforce is refused there with a 400 naming it,
//! never loosened. See [`crate::tool_grammar`] for how a constraint starts after the reasoning.

use rotor_protocol::openai::{ConstraintFields, StructuredOutputs};
use rotor_protocol::Constraint;
use serde_json::Value;

use crate::error::ApiError;

/// The kind of a constraint, as counted on /metrics.
pub fn constraint_kind(constraint: &Constraint) -> &'static str {
    match constraint {
        Constraint::JsonObject => "json_object",
        Constraint::JsonSchema { .. } => "json_schema",
        Constraint::Regex { .. } => "regex",
        Constraint::Choice { .. } => "choice",
        Constraint::Lark { .. } => "lark",
        Constraint::Gbnf { .. } => "gbnf",
    }
}

/// The request's constraint, if it asks for one. `param` of an error is the field at fault.
pub fn constraint_of(fields: &ConstraintFields) -> Result<Option<Constraint>, ApiError> {
    let mut found: Vec<(&'static str, Constraint)> = Vec::new();
    if let Some(format) = &fields.response_format {
        if let Some(c) = response_format(format)? {
            found.push(("response_format", c));
        }
    }
    if let Some(schema) = &fields.guided_json {
        found.push(("guided_json", json_schema("guided_json", schema, false)?));
    }
    if let Some(pattern) = &fields.guided_regex {
        found.push(("guided_regex", regex("guided_regex", pattern)?));
    }
    if let Some(choices) = &fields.guided_choice {
        found.push(("guided_choice", choice("guided_choice", choices)?));
    }
    if let Some(grammar) = &fields.guided_grammar {
        found.push((
            "guided_grammar",
            grammar_constraint("guided_grammar", grammar)?,
        ));
    }
    if let Some(outputs) = &fields.structured_outputs {
        if let Some(c) = structured_outputs(outputs)? {
            found.push(("structured_outputs", c));
        }
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop().map(|(_, c)| c)),
        _ => Err(ApiError::invalid_param(
            found[1].0,
            format!(
                "Give at most one output constraint; got `{}` and `{}`.",
                found[0].0, found[1].0
            ),
        )),
    }
}

fn response_format(format: &Value) -> Result<Option<Constraint>, ApiError> {
    if format.is_null() {
        return Ok(None);
    }
    let kind = format.get("type").and_then(Value::as_str).ok_or_else(|| {
        ApiError::invalid_param(
            "response_format",
            "`response_format` needs a string `type`: \"text\", \"json_object\" or \"json_schema\".",
        )
    })?;
    match kind {
        "text" => Ok(None),
        "json_object" => Ok(Some(Constraint::JsonObject)),
        "json_schema" => {
            let param = "response_format.json_schema";
            let spec = format.get("json_schema").ok_or_else(|| {
                ApiError::invalid_param(
                    param,
                    "`response_format` of type \"json_schema\" needs `json_schema`: {\"name\", \"schema\", \"strict\"}.",
                )
            })?;
            if let Some(name) = spec.get("name") {
                let ok = name.as_str().is_some_and(|n| {
                    !n.is_empty()
                        && n.len() <= 64
                        && n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                });
                if !ok {
                    return Err(ApiError::invalid_param(
                        "response_format.json_schema.name",
                        "`name` must be 1 to 64 letters, digits, `_` or `-`.",
                    ));
                }
            }
            let strict = match spec.get("strict") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(ApiError::invalid_param(
                        "response_format.json_schema.strict",
                        "`strict` must be a boolean.",
                    ))
                }
            };
            // OpenAI allows leaving the schema out: then any JSON object.
            match spec.get("schema") {
                None | Some(Value::Null) => Ok(Some(Constraint::JsonObject)),
                Some(schema) => Ok(Some(json_schema(
                    "response_format.json_schema.schema",
                    schema,
                    strict,
                )?)),
            }
        }
        other => Err(ApiError::invalid_param(
            "response_format.type",
            format!(
                "Unknown `response_format` type {other:?}; expected \"text\", \"json_object\" or \"json_schema\"."
            ),
        )),
    }
}

/// A schema object (or its JSON text) → `JsonSchema`; `true` → any JSON object is not the same
/// thing, so `true` is a schema too and is passed on.
fn json_schema(param: &str, schema: &Value, strict: bool) -> Result<Constraint, ApiError> {
    let schema = match schema {
        Value::String(text) => serde_json::from_str::<Value>(text).map_err(|err| {
            ApiError::invalid_param(param, format!("The schema is not valid JSON: {err}."))
        })?,
        other => other.clone(),
    };
    match &schema {
        Value::Object(_) | Value::Bool(true) => Ok(Constraint::JsonSchema { schema, strict }),
        _ => Err(ApiError::invalid_param(
            param,
            "A JSON schema must be an object (e.g. {\"type\": \"object\", \"properties\": {…}}).",
        )),
    }
}

fn regex(param: &str, pattern: &str) -> Result<Constraint, ApiError> {
    if pattern.is_empty() {
        return Err(ApiError::invalid_param(
            param,
            "The regular expression must not be empty.",
        ));
    }
    Ok(Constraint::Regex {
        pattern: pattern.to_string(),
    })
}

fn choice(param: &str, choices: &[String]) -> Result<Constraint, ApiError> {
    if choices.is_empty() {
        return Err(ApiError::invalid_param(
            param,
            "The choice list must not be empty.",
        ));
    }
    if choices.iter().any(String::is_empty) {
        return Err(ApiError::invalid_param(
            param,
            "Choices must not be empty strings.",
        ));
    }
    Ok(Constraint::Choice {
        choices: choices.to_vec(),
    })
}

/// Lark, or GBNF when the text contains `::=`.
fn grammar_constraint(param: &str, grammar: &str) -> Result<Constraint, ApiError> {
    if grammar.trim().is_empty() {
        return Err(ApiError::invalid_param(
            param,
            "The grammar must not be empty.",
        ));
    }
    let grammar = grammar.to_string();
    Ok(if grammar.contains("::=") {
        Constraint::Gbnf { grammar }
    } else {
        Constraint::Lark { grammar }
    })
}

fn structured_outputs(outputs: &StructuredOutputs) -> Result<Option<Constraint>, ApiError> {
    let mut found = Vec::new();
    if let Some(schema) = &outputs.json {
        found.push(json_schema("structured_outputs.json", schema, false)?);
    }
    if let Some(pattern) = &outputs.regex {
        found.push(regex("structured_outputs.regex", pattern)?);
    }
    if let Some(choices) = &outputs.choice {
        found.push(choice("structured_outputs.choice", choices)?);
    }
    if let Some(grammar) = &outputs.grammar {
        found.push(grammar_constraint("structured_outputs.grammar", grammar)?);
    }
    if outputs.json_object == Some(true) {
        found.push(Constraint::JsonObject);
    }
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(ApiError::invalid_param(
            "structured_outputs",
            "`structured_outputs` takes one of `json`, `regex`, `choice`, `grammar`, `json_object`.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(f: impl FnOnce(&mut ConstraintFields)) -> ConstraintFields {
        let mut fields = ConstraintFields::default();
        f(&mut fields);
        fields
    }

    #[test]
    fn each_form_becomes_its_constraint() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let cases = [
            (
                fields(|f| f.response_format = Some(json!({"type": "text"}))),
                None,
            ),
            (
                fields(|f| f.response_format = Some(json!({"type": "json_object"}))),
                Some(Constraint::JsonObject),
            ),
            (
                fields(|f| {
                    f.response_format = Some(json!({"type": "json_schema",
                        "json_schema": {"name": "thing", "schema": schema, "strict": true}}))
                }),
                Some(Constraint::JsonSchema {
                    schema: schema.clone(),
                    strict: true,
                }),
            ),
            (
                fields(|f| f.guided_json = Some(Value::String(schema.to_string()))),
                Some(Constraint::JsonSchema {
                    schema: schema.clone(),
                    strict: false,
                }),
            ),
            (
                fields(|f| f.guided_regex = Some("[0-9]{3}".into())),
                Some(Constraint::Regex {
                    pattern: "[0-9]{3}".into(),
                }),
            ),
            (
                fields(|f| f.guided_choice = Some(vec!["yes".into(), "no".into()])),
                Some(Constraint::Choice {
                    choices: vec!["yes".into(), "no".into()],
                }),
            ),
            (
                fields(|f| f.guided_grammar = Some("start: \"a\"+".into())),
                Some(Constraint::Lark {
                    grammar: "start: \"a\"+".into(),
                }),
            ),
            (
                fields(|f| f.guided_grammar = Some("root ::= \"a\"+".into())),
                Some(Constraint::Gbnf {
                    grammar: "root ::= \"a\"+".into(),
                }),
            ),
            (
                fields(|f| {
                    f.structured_outputs = Some(StructuredOutputs {
                        choice: Some(vec!["x".into()]),
                        ..Default::default()
                    })
                }),
                Some(Constraint::Choice {
                    choices: vec!["x".into()],
                }),
            ),
        ];
        for (fields, want) in cases {
            assert_eq!(constraint_of(&fields).expect("valid"), want, "{fields:?}");
        }
    }

    #[test]
    fn invalid_forms_name_their_field() {
        let cases = [
            (
                fields(|f| f.response_format = Some(json!({"type": "xml"}))),
                "response_format.type",
            ),
            (
                fields(|f| {
                    f.response_format =
                        Some(json!({"type": "json_schema", "json_schema": {"schema": [1]}}))
                }),
                "response_format.json_schema.schema",
            ),
            (
                fields(|f| f.response_format = Some(json!({"type": "json_schema"}))),
                "response_format.json_schema",
            ),
            (
                fields(|f| f.guided_json = Some(json!("{not json"))),
                "guided_json",
            ),
            (fields(|f| f.guided_choice = Some(vec![])), "guided_choice"),
            (
                fields(|f| {
                    f.guided_regex = Some("a".into());
                    f.guided_choice = Some(vec!["b".into()]);
                }),
                "guided_choice",
            ),
        ];
        for (fields, param) in cases {
            let err = constraint_of(&fields).expect_err("invalid");
            assert_eq!(err.param.as_deref(), Some(param), "{fields:?}: {err:?}");
            assert_eq!(err.status, 400);
        }
    }
}
