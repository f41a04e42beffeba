//! Which tool-call and reasoning parsers a model's answers go through.
//!
//! Each is chosen once per model, when the model is added: `--tool-call-parser NAME` /
//! `--reasoning-parser NAME` (for every model of the frontend) win; `none` turns a parser off;
//! otherwise (`auto`, the default) the model's chat template tells:
//! - tool calls: the markup the template renders calls with (`<tool_call>` → hermes,
//!   `[TOOL_CALLS]` → mistral, …, see [`ToolParserKind::from_chat_template`]); a template that
//!   names none gets **hermes as a fallback**, and when it does not read `tools` either, the
//!   frontend describes the tools in a system message in hermes markup
//!   ([`crate::tool_prompt`]), so tool calling works with any chat model;
//! - reasoning: a template that mentions `<think>` gets deepseek_r1 (DeepSeek's markers),
//!   qwen3 (ChatML) or think; otherwise none.
//!
//! The choice is logged when the model is added and shown in GET /v1/models
//! (`tool_call_parser`, `reasoning_parser`).

use rotor_text::{ReasoningParserKind, ToolParserKind};

/// A `--tool-call-parser` or `--reasoning-parser` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParserSetting<T> {
    /// Chosen from the chat template.
    #[default]
    Auto,
    /// No parser: tools are refused (tool calling) or reasoning stays in `content`.
    Off,
    Named(T),
}

impl ParserSetting<ToolParserKind> {
    /// `auto`, `none`, or a parser name; the error lists the valid names.
    pub fn parse_tool(name: &str) -> Result<Self, String> {
        match name.trim() {
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::Off),
            other => ToolParserKind::from_name(other)
                .map(Self::Named)
                .ok_or_else(|| {
                    let names: Vec<&str> = ToolParserKind::ALL.iter().map(|k| k.name()).collect();
                    format!(
                        "unknown tool-call parser {other:?}; expected auto, none or one of {}",
                        names.join(", ")
                    )
                }),
        }
    }
}

impl ParserSetting<ReasoningParserKind> {
    /// `auto`, `none`, or a parser name; the error lists the valid names.
    pub fn parse_reasoning(name: &str) -> Result<Self, String> {
        match name.trim() {
            "auto" => Ok(Self::Auto),
            "none" => Ok(Self::Off),
            other => ReasoningParserKind::from_name(other)
                .map(Self::Named)
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        ReasoningParserKind::ALL.iter().map(|k| k.name()).collect();
                    format!(
                        "unknown reasoning parser {other:?}; expected auto, none or one of {}",
                        names.join(", ")
                    )
                }),
        }
    }
}

/// How a parser was chosen (for the start-up log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParserSource {
    Flag,
    Template,
    Fallback,
}

impl ParserSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ParserSource::Flag => "flag",
            ParserSource::Template => "chat template",
            ParserSource::Fallback => "fallback",
        }
    }
}

/// The parsers of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelParsers {
    /// `None`: tool calling is off for this model (requests with tools get a 400).
    pub tool: Option<(ToolParserKind, ParserSource)>,
    pub reasoning: Option<(ReasoningParserKind, ParserSource)>,
}

impl ModelParsers {
    /// Applies the settings to a model whose chat template is `template` (none: no chat).
    pub fn choose(
        template: Option<&str>,
        tool: ParserSetting<ToolParserKind>,
        reasoning: ParserSetting<ReasoningParserKind>,
    ) -> ModelParsers {
        let tool = match tool {
            ParserSetting::Off => None,
            ParserSetting::Named(kind) => Some((kind, ParserSource::Flag)),
            ParserSetting::Auto => Some(
                match template.and_then(ToolParserKind::from_chat_template) {
                    Some(kind) => (kind, ParserSource::Template),
                    None => (ToolParserKind::Hermes, ParserSource::Fallback),
                },
            ),
        };
        let reasoning = match reasoning {
            ParserSetting::Off => None,
            ParserSetting::Named(kind) => Some((kind, ParserSource::Flag)),
            ParserSetting::Auto => template
                .and_then(ReasoningParserKind::from_chat_template)
                .map(|kind| (kind, ParserSource::Template)),
        };
        ModelParsers { tool, reasoning }
    }

    pub fn tool_kind(&self) -> Option<ToolParserKind> {
        self.tool.map(|(kind, _)| kind)
    }

    pub fn reasoning_kind(&self) -> Option<ReasoningParserKind> {
        self.reasoning.map(|(kind, _)| kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_errors() {
        assert_eq!(
            ParserSetting::parse_tool("hermes"),
            Ok(ParserSetting::Named(ToolParserKind::Hermes))
        );
        assert_eq!(ParserSetting::parse_tool("none"), Ok(ParserSetting::Off));
        let err = ParserSetting::parse_tool("herms").unwrap_err();
        assert!(
            err.contains("hermes, llama3_json, mistral, pythonic, qwen3_coder, phi4_mini_json"),
            "{err}"
        );
        let err = ParserSetting::parse_reasoning("r1").unwrap_err();
        assert!(err.contains("deepseek_r1, qwen3, think"), "{err}");
    }

    #[test]
    fn template_decides_under_auto_and_flags_win() {
        let qwen = "{% if tools %}<tool_call>{% endif %}<|im_start|>{{ '<think>' }}";
        let auto = ModelParsers::choose(Some(qwen), ParserSetting::Auto, ParserSetting::Auto);
        assert_eq!(
            auto.tool,
            Some((ToolParserKind::Hermes, ParserSource::Template))
        );
        assert_eq!(
            auto.reasoning,
            Some((ReasoningParserKind::Qwen3, ParserSource::Template))
        );
        let plain = ModelParsers::choose(
            Some("{{ messages }}"),
            ParserSetting::Auto,
            ParserSetting::Auto,
        );
        assert_eq!(
            plain.tool,
            Some((ToolParserKind::Hermes, ParserSource::Fallback))
        );
        assert_eq!(plain.reasoning, None);
        let flags = ModelParsers::choose(
            Some(qwen),
            ParserSetting::Named(ToolParserKind::Llama3Json),
            ParserSetting::Off,
        );
        assert_eq!(
            flags.tool,
            Some((ToolParserKind::Llama3Json, ParserSource::Flag))
        );
        assert_eq!(flags.reasoning, None);
    }
}
