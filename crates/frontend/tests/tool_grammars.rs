//! The Lark grammars the frontend builds (forced tool calls, constraints after reasoning)
//! compile with llguidance, accept what the parsers expect and refuse what they should not.
//! A one-byte-per-token vocabulary stands in for the model's (the engine builds the real one).

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use rotor_frontend::tool_grammar::{
    after_reasoning, forced_calls_rules, with_think_start, ThinkStart,
};
use rotor_frontend::tool_request::{ToolChoice, ToolRequest};
use rotor_protocol::openai::ToolDefinition;
use rotor_protocol::Constraint;
use rotor_text::{parse_tool_calls, ToolParserKind, ToolSpec};
use serde_json::json;
use toktrie::{ApproximateTokEnv, TokEnv};

fn env() -> TokEnv {
    ApproximateTokEnv::single_byte_env()
}

fn matcher(grammar: &str) -> Matcher {
    let env = env();
    let factory = ParserFactory::new_simple(&env).expect("factory");
    let matcher =
        Matcher::new(factory.create_parser(TopLevelGrammar::from_lark(grammar.to_string())));
    assert!(
        !matcher.is_error(),
        "grammar does not compile: {:?}\n{grammar}",
        matcher.get_error()
    );
    matcher
}

/// Whether the grammar accepts exactly `text`.
fn accepts(grammar: &str, text: &str) -> bool {
    let mut m = matcher(grammar);
    let ids = env().tokenize_bytes(text.as_bytes());
    let ok = m.validate_tokens(&ids).expect("validate");
    if ok < ids.len() {
        return false;
    }
    m.consume_tokens(&ids).expect("consume");
    m.is_accepting().expect("accepting")
}

fn tools(choice: ToolChoice, parallel: bool) -> ToolRequest {
    let tools: Vec<ToolDefinition> = serde_json::from_value(json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "ping"}}
    ]))
    .unwrap();
    ToolRequest {
        tools,
        choice,
        parallel,
    }
}

#[test]
fn forced_hermes_calls_accept_valid_calls_only() {
    let grammar = with_think_start(
        &forced_calls_rules(ToolParserKind::Hermes, &tools(ToolChoice::Required, true)).unwrap(),
        ThinkStart::None,
    );
    let one = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 2}}\n</tool_call>";
    let two =
        format!("{one}\n<tool_call>\n{{\"name\": \"ping\", \"arguments\": {{}}}}\n</tool_call>");
    assert!(accepts(&grammar, one), "{grammar}");
    assert!(accepts(&grammar, &two));
    assert!(!accepts(&grammar, "Sure! <tool_call>"), "no free text");
    assert!(
        !accepts(&grammar, &one.replace("get_weather", "get_wether")),
        "unknown name"
    );
    assert!(
        !accepts(&grammar, &one.replace("\"days\": 2", "\"days\": 0")),
        "minimum"
    );
    assert!(
        !accepts(
            &grammar,
            &one.replace("{\"city\": \"Paris\", \"days\": 2}", "{\"days\": 2}")
        ),
        "required"
    );
    // What the grammar accepts, the parser parses, with the same calls.
    let specs = tools(ToolChoice::Required, true).specs();
    let parsed = parse_tool_calls(ToolParserKind::Hermes, &two, &specs);
    assert_eq!(parsed.calls.len(), 2);
    assert_eq!(parsed.content, "");
}

#[test]
fn named_choice_without_parallel_calls_is_one_call_of_that_function() {
    let req = tools(ToolChoice::Named("ping".into()), false);
    let grammar = with_think_start(
        &forced_calls_rules(ToolParserKind::Hermes, &req).unwrap(),
        ThinkStart::None,
    );
    let ping = "<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>";
    assert!(accepts(&grammar, ping), "{grammar}");
    assert!(!accepts(&grammar, &format!("{ping}\n{ping}")), "one call");
    assert!(!accepts(
        &grammar,
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"x\"}}\n</tool_call>"
    ));
}

#[test]
fn forced_calls_in_other_json_formats_parse_back() {
    let req = tools(ToolChoice::Required, true);
    let specs: Vec<ToolSpec> = req.specs();
    let cases = [
        (ToolParserKind::Llama3Json, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}; {\"name\": \"ping\", \"parameters\": {}}"),
        (ToolParserKind::Mistral, "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}, {\"name\": \"ping\", \"arguments\": {}}]"),
        (ToolParserKind::Phi4MiniJson, "functools[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}, {\"name\": \"ping\", \"arguments\": {}}]"),
    ];
    for (kind, text) in cases {
        let grammar = with_think_start(&forced_calls_rules(kind, &req).unwrap(), ThinkStart::None);
        assert!(accepts(&grammar, text), "{kind}: {grammar}");
        let parsed = parse_tool_calls(kind, text, &specs);
        assert_eq!(parsed.calls.len(), 2, "{kind}: {parsed:?}");
        assert_eq!(parsed.calls[0].name, "get_weather");
    }
    for kind in [ToolParserKind::Pythonic, ToolParserKind::Qwen3Coder] {
        let err = forced_calls_rules(kind, &req).unwrap_err();
        assert_eq!(err.status, 400);
    }
}

#[test]
fn constraints_start_after_the_thinking() {
    let schema =
        json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
    let lark = |c: Constraint, think| match after_reasoning(c, think) {
        Constraint::Lark { grammar } => grammar,
        other => panic!("expected Lark, got {other:?}"),
    };
    let opened = lark(
        Constraint::JsonSchema {
            schema: schema.clone(),
            strict: false,
        },
        ThinkStart::Inside,
    );
    assert!(
        accepts(&opened, "Let me think {not json}.\n</think>\n\n{\"n\": 3}"),
        "{opened}"
    );
    assert!(
        !accepts(&opened, "{\"n\": 3}"),
        "the thinking must end first"
    );
    assert!(!accepts(&opened, "x</think>{\"m\": 3}"));
    let optional = lark(
        Constraint::Choice {
            choices: vec!["yes".into(), "no/maybe".into()],
        },
        ThinkStart::Optional,
    );
    assert!(accepts(&optional, "yes"), "{optional}");
    assert!(accepts(&optional, "<think>\nhmm\n</think>\n\nno/maybe"));
    assert!(!accepts(&optional, "<think>hmm</think> perhaps"));
    let regex = lark(
        Constraint::Regex {
            pattern: "[0-9]{3}/[a-z]+".into(),
        },
        ThinkStart::Optional,
    );
    assert!(accepts(&regex, "123/abc"), "{regex}");
    assert!(!accepts(&regex, "12/abc"));
    let object = lark(Constraint::JsonObject, ThinkStart::Inside);
    assert!(accepts(&object, "ok</think>{\"a\": [1]}"), "{object}");
    // Without a reasoning parser, and for a user's own grammar, nothing changes.
    assert_eq!(
        after_reasoning(Constraint::JsonObject, ThinkStart::None),
        Constraint::JsonObject
    );
    let own = Constraint::Lark {
        grammar: "start: \"a\"".into(),
    };
    assert_eq!(after_reasoning(own.clone(), ThinkStart::Inside), own);
    // A forced call after the thinking.
    let grammar = with_think_start(
        &forced_calls_rules(ToolParserKind::Hermes, &tools(ToolChoice::Required, false)).unwrap(),
        ThinkStart::Optional,
    );
    assert!(accepts(&grammar, "<think>\nweather it is\n</think>\n\n<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>"), "{grammar}");
    let _ = Arc::new(());
}
