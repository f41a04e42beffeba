//! Tool-call parser API: the streamed event sequence, call ids, parser names and template
//! detection, tools from an OpenAI request, and plain text passing through unchanged.

use rotor_text::{ToolCallEvent, ToolCallParser, ToolParserKind, ToolSpec};
use serde_json::json;

use crate::parser_feed::parse_every_way;

use ToolParserKind::{Hermes, Llama3Json, Mistral, Phi4MiniJson, Pythonic, Qwen3Coder};

fn tools() -> Vec<ToolSpec> {
    ["get_weather", "ping"]
        .into_iter()
        .map(|name| ToolSpec {
            name: name.into(),
            parameters: None,
        })
        .collect()
}

#[test]
fn tool_spec_from_an_openai_request_tool() {
    let tool = json!({"type": "function", "function": {"name": "f", "description": "d",
        "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}});
    let spec = ToolSpec::from_openai_tool(&tool).expect("a function tool");
    assert_eq!(spec.name, "f");
    assert_eq!(
        spec.parameters,
        Some(json!({"type": "object", "properties": {"a": {"type": "integer"}}}))
    );
    assert_eq!(
        ToolSpec::from_openai_tool(&json!({"type": "function"})),
        None
    );
}

#[test]
fn streamed_events_hold_back_a_marker_prefix_and_emit_the_call_once() {
    let mut parser = ToolCallParser::new(Hermes, tools());
    assert_eq!(
        parser.push("Hello <tool"),
        vec![ToolCallEvent::Content("Hello".into())]
    );
    assert_eq!(parser.push("_call>{\"name\": \"ping\""), vec![]);
    let events = parser.push(", \"arguments\": {}}</tool_call>");
    let [ToolCallEvent::CallStart { index: 0, id, name }, ToolCallEvent::Arguments { index: 0, fragment }] =
        events.as_slice()
    else {
        panic!("expected a call start and its arguments, got {events:?}");
    };
    assert_eq!(name, "ping");
    assert_eq!(fragment, "{}");
    assert!(id.starts_with("call_") && id.len() == 29, "{id}");
    assert!(id[5..].chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        parser.push(" bye"),
        vec![ToolCallEvent::Content(" bye".into())]
    );
    assert_eq!(parser.finish(), vec![]);
    assert_eq!(parser.push("ignored"), vec![]);
}

#[test]
fn mistral_ids_are_nine_alphanumerics_and_keep_the_models_own() {
    let parsed = parse_every_way(
        Mistral,
        &tools(),
        "[TOOL_CALLS]ping[CALL_ID]a1b2c3d4e[ARGS]{}[TOOL_CALLS][{\"name\": \"ping\", \"arguments\": {}, \"id\": \"toolong123\"}]",
    );
    assert_eq!(parsed.calls[0].id, "a1b2c3d4e");
    let generated = &parsed.calls[1].id;
    assert_eq!(generated.len(), 9);
    assert!(generated.chars().all(|c| c.is_ascii_alphanumeric()));
}

#[test]
fn parser_names_round_trip_and_aliases() {
    for kind in ToolParserKind::ALL {
        assert_eq!(ToolParserKind::from_name(kind.name()), Some(kind));
    }
    assert_eq!(ToolParserKind::from_name("llama4_pythonic"), Some(Pythonic));
    assert_eq!(ToolParserKind::from_name("phi4"), Some(Phi4MiniJson));
    assert_eq!(ToolParserKind::from_name("nope"), None);
}

#[test]
fn parser_kind_from_chat_template() {
    let cases = [
        (
            "{%- for t in tools %}<tool_call>\n{{ t | tojson }}\n</tool_call>{% endfor %}",
            Some(Hermes),
        ),
        (
            "<tool_call>\n<function={{ name }}>\n<parameter={{ p }}>",
            Some(Qwen3Coder),
        ),
        ("{{ '[TOOL_CALLS]' + tool_calls | tojson }}", Some(Mistral)),
        (
            "<|tool|>{{ tools }}<|/tool|> functools[...]",
            Some(Phi4MiniJson),
        ),
        ("{{- '<|python_start|>' }}", Some(Pythonic)),
        (
            "{{- '<|python_tag|>' + tool_call.arguments }}",
            Some(Llama3Json),
        ),
        (
            "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}",
            None,
        ),
    ];
    for (template, want) in cases {
        assert_eq!(
            ToolParserKind::from_chat_template(template),
            want,
            "{template}"
        );
    }
}

#[test]
fn every_parser_returns_plain_text_unchanged() {
    let text =
        "  Plain answer: 3 < 4, see [1] and {x}; functools aside, \n tabs\t and ünïcode 🎉\n\n";
    for kind in ToolParserKind::ALL {
        let parsed = parse_every_way(kind, &tools(), text);
        assert_eq!(parsed.content, text, "{kind}");
        assert!(parsed.calls.is_empty(), "{kind}");
    }
}
