//! The tool-calling part of a chat request: `tools`, `tool_choice`, `parallel_tool_calls`,
//! checked into a [`ToolRequest`].
//!
//! Policies:
//! - Tool names follow OpenAI's rule (1 to 64 letters, digits, `_`, `-`), unique; `parameters`,
//!   when given, is a JSON object. Anything else is a 400 naming `tools[i]…`.
//! - `tool_choice` defaults to `auto` with tools and `none` without; `required` or a named
//!   function without tools, or naming a function that is not in `tools`, is a 400.
//! - `none`: the tools are neither rendered into the prompt nor parsed from the output (the
//!   model is not told about tools it may not call, so it writes no call markup).
//! - `auto`: tools are rendered and calls parsed. `required` / named: the same, and decoding is
//!   constrained to the parser's call format with the tools' schemas ([`crate::tool_grammar`]).

use rotor_protocol::openai::{ChatCompletionRequest, ToolDefinition};
use rotor_text::ToolSpec;
use serde_json::Value;

use crate::error::ApiError;

/// `tool_choice`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    /// This function must be called.
    Named(String),
}

impl ToolChoice {
    pub fn as_str(&self) -> &'static str {
        match self {
            ToolChoice::None => "none",
            ToolChoice::Auto => "auto",
            ToolChoice::Required => "required",
            ToolChoice::Named(_) => "named",
        }
    }
}

/// A chat request's tools, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRequest {
    pub tools: Vec<ToolDefinition>,
    pub choice: ToolChoice,
    /// Several calls may be made in one answer (`parallel_tool_calls`, default true).
    pub parallel: bool,
}

impl ToolRequest {
    /// `None` when the request offers no tools (and asks for no call).
    pub fn from_request(req: &ChatCompletionRequest) -> Result<Option<ToolRequest>, ApiError> {
        Self::from_parts(
            req.tools.as_deref(),
            req.tool_choice.as_ref(),
            req.parallel_tool_calls,
        )
    }

    /// From the three request fields (`/tokenize` has only `tools`).
    pub fn from_parts(
        tools: Option<&[ToolDefinition]>,
        choice: Option<&Value>,
        parallel: Option<bool>,
    ) -> Result<Option<ToolRequest>, ApiError> {
        let tools = tools.map(<[_]>::to_vec).unwrap_or_default();
        check_tools(&tools)?;
        let choice = tool_choice(choice, &tools)?;
        if tools.is_empty() {
            return Ok(None);
        }
        Ok(Some(ToolRequest {
            tools,
            choice,
            parallel: parallel.unwrap_or(true),
        }))
    }

    /// Calls are parsed from the output (every choice but `none`).
    pub fn parses_calls(&self) -> bool {
        self.choice != ToolChoice::None
    }

    /// Decoding must produce calls (`required` or a named function).
    pub fn forces_call(&self) -> bool {
        matches!(self.choice, ToolChoice::Required | ToolChoice::Named(_))
    }

    /// The tools a call may name: the named one, or all.
    pub fn callable(&self) -> Vec<&ToolDefinition> {
        match &self.choice {
            ToolChoice::Named(name) => self
                .tools
                .iter()
                .filter(|t| &t.function.name == name)
                .collect(),
            _ => self.tools.iter().collect(),
        }
    }

    /// What the parser checks names (and qwen3_coder types values) against.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.callable()
            .into_iter()
            .map(|t| ToolSpec {
                name: t.function.name.clone(),
                parameters: t.function.parameters.clone(),
            })
            .collect()
    }

    /// The OpenAI `tools` array as the chat template gets it.
    pub fn template_tools(&self) -> Value {
        serde_json::to_value(&self.tools).expect("invariant: tool definitions serialize")
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_tools(tools: &[ToolDefinition]) -> Result<(), ApiError> {
    for (i, tool) in tools.iter().enumerate() {
        if tool.kind != "function" {
            return Err(ApiError::invalid_param(
                &format!("tools[{i}].type"),
                format!(
                    "Only tools of type \"function\" are supported; got {:?}.",
                    tool.kind
                ),
            ));
        }
        let name = &tool.function.name;
        if !valid_name(name) {
            return Err(ApiError::invalid_param(
                &format!("tools[{i}].function.name"),
                format!("Invalid function name {name:?}: use 1 to 64 letters, digits, `_` or `-`."),
            ));
        }
        if tools[..i].iter().any(|t| &t.function.name == name) {
            return Err(ApiError::invalid_param(
                &format!("tools[{i}].function.name"),
                format!("Function {name:?} is defined twice."),
            ));
        }
        match &tool.function.parameters {
            None | Some(Value::Object(_)) => {}
            Some(_) => {
                return Err(ApiError::invalid_param(
                    &format!("tools[{i}].function.parameters"),
                    "`parameters` must be a JSON schema object.",
                ))
            }
        }
    }
    Ok(())
}

fn tool_choice(choice: Option<&Value>, tools: &[ToolDefinition]) -> Result<ToolChoice, ApiError> {
    let default = if tools.is_empty() {
        ToolChoice::None
    } else {
        ToolChoice::Auto
    };
    let choice = match choice {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => default,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::invalid_param(
                    "tool_choice",
                    format!(
                        "Unknown `tool_choice` {other:?}; expected \"none\", \"auto\", \"required\" or {{\"type\": \"function\", \"function\": {{\"name\": …}}}}."
                    ),
                ))
            }
        },
        Some(object @ Value::Object(_)) => {
            let name = object
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .filter(|_| object.get("type").and_then(Value::as_str) == Some("function"))
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        "tool_choice",
                        "A named `tool_choice` is {\"type\": \"function\", \"function\": {\"name\": …}}.",
                    )
                })?;
            if !tools.iter().any(|t| t.function.name == name) {
                return Err(ApiError::invalid_param(
                    "tool_choice.function.name",
                    format!("`tool_choice` names function {name:?}, which is not in `tools`."),
                ));
            }
            ToolChoice::Named(name.to_string())
        }
        Some(_) => {
            return Err(ApiError::invalid_param(
                "tool_choice",
                "`tool_choice` must be a string or an object.",
            ))
        }
    };
    if tools.is_empty() && matches!(choice, ToolChoice::Required | ToolChoice::Named(_)) {
        return Err(ApiError::invalid_param(
            "tool_choice",
            format!("`tool_choice` {:?} needs `tools`.", choice.as_str()),
        ));
    }
    Ok(choice)
}
