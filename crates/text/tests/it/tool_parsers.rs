//! Tool-call parser fixtures: each is parsed in one piece, character by character and in
//! random splits (which must agree), then compared with the expected content and calls.

use rotor_text::{ToolParserKind, ToolSpec};
use serde_json::{json, Value};

use crate::parser_feed::parse_every_way;

use ToolParserKind::{Hermes, Llama3Json, Mistral, Phi4MiniJson, Pythonic, Qwen3Coder};

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "get_weather".into(),
            parameters: Some(json!({"type": "object", "properties": {
                "city": {"type": "string"}, "days": {"type": "integer"},
                "metric": {"type": "boolean"}, "threshold": {"type": "number"}
            }})),
        },
        ToolSpec {
            name: "search".into(),
            parameters: Some(json!({"type": "object", "properties": {
                "query": {"type": "string"}, "filters": {"type": "object"},
                "tags": {"type": "array"}
            }})),
        },
        ToolSpec {
            name: "ping".into(),
            parameters: None,
        },
    ]
}

struct Fixture {
    name: &'static str,
    kind: ToolParserKind,
    text: &'static str,
    content: &'static str,
    /// (name, arguments as JSON, compared as values)
    calls: &'static [(&'static str, &'static str)],
}

fn check(fixtures: &[Fixture], tools: &[ToolSpec]) {
    for f in fixtures {
        let parsed = parse_every_way(f.kind, tools, f.text);
        assert_eq!(parsed.content, f.content, "{}: content", f.name);
        let got: Vec<(String, Value)> = parsed
            .calls
            .iter()
            .map(|c| {
                let args: Value = serde_json::from_str(&c.arguments)
                    .unwrap_or_else(|e| panic!("{}: arguments {:?}: {e}", f.name, c.arguments));
                assert!(args.is_object(), "{}: arguments must be an object", f.name);
                (c.name.clone(), args)
            })
            .collect();
        let want: Vec<(String, Value)> = f
            .calls
            .iter()
            .map(|(name, args)| {
                (
                    name.to_string(),
                    serde_json::from_str(args).expect("fixture"),
                )
            })
            .collect();
        assert_eq!(got, want, "{}: calls", f.name);
    }
}

const WEATHER: &str = r#"{"city": "Paris"}"#;

#[test]
fn hermes_fixtures() {
    check(
        &[
            Fixture {
                name: "alone",
                kind: Hermes,
                text: "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
                content: "",
                calls: &[("get_weather", WEATHER)],
            },
            Fixture {
                name: "text around",
                kind: Hermes,
                text: "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\nDone.\n",
                content: "Let me check.\nDone.\n",
                calls: &[("get_weather", WEATHER)],
            },
            Fixture {
                name: "several",
                kind: Hermes,
                text: "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>\n",
                content: "",
                calls: &[("get_weather", WEATHER), ("ping", "{}")],
            },
            Fixture {
                name: "list inside",
                kind: Hermes,
                text: "<tool_call>[{\"name\": \"ping\"}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]</tool_call>",
                content: "",
                calls: &[("ping", "{}"), ("get_weather", WEATHER)],
            },
            Fixture {
                name: "nested arguments",
                kind: Hermes,
                text: r#"<tool_call>{"name": "search", "arguments": {"query": "a}b</tool_call", "filters": {"tags": ["x", {"y": [1, 2.5, null]}], "deep": {"k": {"z": true}}}}}</tool_call>"#,
                content: "",
                calls: &[("search", r#"{"query": "a}b</tool_call", "filters": {"tags": ["x", {"y": [1, 2.5, null]}], "deep": {"k": {"z": true}}}}"#)],
            },
            Fixture {
                name: "unicode",
                kind: Hermes,
                text: "Voilà 🌍 ça marche\n<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich 東京 \\u00e9\"}}</tool_call>",
                content: "Voilà 🌍 ça marche",
                calls: &[("get_weather", r#"{"city": "Zürich 東京 é"}"#)],
            },
            Fixture {
                name: "arguments as a string",
                kind: Hermes,
                text: r#"<tool_call>{"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}</tool_call>"#,
                content: "",
                calls: &[("get_weather", WEATHER)],
            },
            Fixture {
                name: "xml body",
                kind: Hermes,
                text: "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>",
                content: "",
                calls: &[("get_weather", WEATHER)],
            },
            Fixture {
                name: "malformed json is content",
                kind: Hermes,
                text: "Before <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": }}</tool_call> after",
                content: "Before <tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": }}</tool_call> after",
                calls: &[],
            },
            Fixture {
                name: "unterminated but complete body is a call",
                kind: Hermes,
                text: "<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n",
                content: "",
                calls: &[("ping", "{}")],
            },
            Fixture {
                name: "cut off call is content",
                kind: Hermes,
                text: "Sure. <tool_call>{\"name\": \"get_weather\", \"argu",
                content: "Sure. <tool_call>{\"name\": \"get_weather\", \"argu",
                calls: &[],
            },
            Fixture {
                name: "unknown function is content",
                kind: Hermes,
                text: "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>",
                content: "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>",
                calls: &[],
            },
            Fixture {
                name: "tag in prose",
                kind: Hermes,
                text: "Use the <tool_call> tag, then </tool_call>.",
                content: "Use the <tool_call> tag, then </tool_call>.",
                calls: &[],
            },
            Fixture {
                name: "partial marker at the end",
                kind: Hermes,
                text: "a < b and <tool_ca",
                content: "a < b and <tool_ca",
                calls: &[],
            },
            Fixture {
                name: "block reopened without closing the first",
                kind: Hermes,
                text: "<tool_call>\n{\"name\": \"ping\"}\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
                content: "",
                calls: &[("ping", "{}"), ("get_weather", WEATHER)],
            },
            Fixture {
                name: "a valid call after a malformed one",
                kind: Hermes,
                text: "<tool_call>oops</tool_call><tool_call>{\"name\": \"ping\"}</tool_call>",
                content: "<tool_call>oops</tool_call>",
                calls: &[("ping", "{}")],
            },
        ],
        &tools(),
    );
}

#[test]
fn hermes_accepts_any_name_without_tools() {
    let text = "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {\"path\": \"/\"}}</tool_call>";
    let parsed = parse_every_way(Hermes, &[], text);
    assert_eq!(parsed.content, "");
    assert_eq!(parsed.calls[0].name, "rm_rf");
}

#[test]
fn llama3_json_fixtures() {
    check(
        &[
            Fixture {
                name: "alone",
                kind: Llama3Json,
                text: "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
                content: "",
                calls: &[("get_weather", WEATHER)],
            },
            Fixture {
                name: "python tag",
                kind: Llama3Json,
                text: "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}",
                content: "",
                calls: &[("get_weather", WEATHER)],
            },
            Fixture {
                name: "several separated by semicolons",
                kind: Llama3Json,
                text: "\n{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}; {\"type\": \"function\", \"name\": \"ping\", \"parameters\": {}}",
                content: "",
                calls: &[("get_weather", WEATHER), ("ping", "{}")],
            },
            Fixture {
                name: "text before the tag, text after the call",
                kind: Llama3Json,
                text: "Checking. <|python_tag|>{\"name\": \"ping\", \"parameters\": {}} Hope that helps.",
                content: "Checking. Hope that helps.",
                calls: &[("ping", "{}")],
            },
            Fixture {
                name: "nested and unicode",
                kind: Llama3Json,
                text: r#"{"name": "search", "parameters": {"query": "café ☕ \"q\"", "filters": {"a": [{"b": {}}], "c": "}{"}}}"#,
                content: "",
                calls: &[("search", r#"{"query": "café ☕ \"q\"", "filters": {"a": [{"b": {}}], "c": "}{"}}"#)],
            },
            Fixture {
                name: "a JSON answer is content",
                kind: Llama3Json,
                text: "{\"answer\": 42}",
                content: "{\"answer\": 42}",
                calls: &[],
            },
            Fixture {
                name: "a brace in prose is content",
                kind: Llama3Json,
                text: "{not json} at all { \"x\"",
                content: "{not json} at all { \"x\"",
                calls: &[],
            },
            Fixture {
                name: "malformed second call keeps the first",
                kind: Llama3Json,
                text: "{\"name\": \"ping\", \"parameters\": {}}; {\"name\": 7}",
                content: "; {\"name\": 7}",
                calls: &[("ping", "{}")],
            },
            Fixture {
                name: "cut off call is content",
                kind: Llama3Json,
                text: "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Pa",
                content: "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Pa",
                calls: &[],
            },
            Fixture {
                name: "brace later in the output is not markup",
                kind: Llama3Json,
                text: "Here: {\"name\": \"ping\", \"parameters\": {}}",
                content: "Here: {\"name\": \"ping\", \"parameters\": {}}",
                calls: &[],
            },
        ],
        &tools(),
    );
}

#[test]
fn mistral_fixtures() {
    check(
        &[
            Fixture {
                name: "json list",
                kind: Mistral,
                text: "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}, {\"name\": \"ping\", \"arguments\": {}}]",
                content: "",
                calls: &[("get_weather", WEATHER), ("ping", "{}")],
            },
            Fixture {
                name: "v11 form",
                kind: Mistral,
                text: "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}",
                content: "",
                calls: &[("get_weather", WEATHER)],
            },
            Fixture {
                name: "v11 several with text before",
                kind: Mistral,
                text: "Let me look. [TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]ping[ARGS]{}",
                content: "Let me look.",
                calls: &[("get_weather", WEATHER), ("ping", "{}")],
            },
            Fixture {
                name: "call id and bare name form",
                kind: Mistral,
                text: "[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]ping{}",
                content: "",
                calls: &[("get_weather", WEATHER), ("ping", "{}")],
            },
            Fixture {
                name: "nested and unicode",
                kind: Mistral,
                text: "[TOOL_CALLS]search[ARGS]{\"query\": \"日本語 ✓\", \"filters\": {\"x\": [[1], {\"y\": \"]\"}]}}",
                content: "",
                calls: &[("search", r#"{"query": "日本語 ✓", "filters": {"x": [[1], {"y": "]"}]}}"#)],
            },
            Fixture {
                name: "malformed arguments are content",
                kind: Mistral,
                text: "[TOOL_CALLS]get_weather[ARGS]nope",
                content: "[TOOL_CALLS]get_weather[ARGS]nope",
                calls: &[],
            },
            Fixture {
                name: "invalid JSON in braces is content",
                kind: Mistral,
                text: "[TOOL_CALLS]ping[ARGS]{\"a\"}",
                content: "[TOOL_CALLS]ping[ARGS]{\"a\"}",
                calls: &[],
            },
            Fixture {
                name: "cut off call is content",
                kind: Mistral,
                text: "[TOOL_CALLS]get_weather[ARGS]{\"city\": ",
                content: "[TOOL_CALLS]get_weather[ARGS]{\"city\": ",
                calls: &[],
            },
            Fixture {
                name: "unknown function is content",
                kind: Mistral,
                text: "[TOOL_CALLS]format_disk[ARGS]{}",
                content: "[TOOL_CALLS]format_disk[ARGS]{}",
                calls: &[],
            },
        ],
        &tools(),
    );
}

#[test]
fn pythonic_fixtures() {
    check(
        &[
            Fixture {
                name: "alone",
                kind: Pythonic,
                text: "[get_weather(city=\"Paris\", days=3)]",
                content: "",
                calls: &[("get_weather", r#"{"city": "Paris", "days": 3}"#)],
            },
            Fixture {
                name: "several",
                kind: Pythonic,
                text: " [get_weather(city='Paris'), ping()]",
                content: "",
                calls: &[("get_weather", WEATHER), ("ping", "{}")],
            },
            Fixture {
                name: "llama 4 wrapper then text",
                kind: Pythonic,
                text: "<|python_start|>[ping()]<|python_end|> Done.",
                content: "Done.",
                calls: &[("ping", "{}")],
            },
            Fixture {
                name: "python literals",
                kind: Pythonic,
                text: "[search(query=\"x\\n\", filters={'tags': ['a', None], 'on': True, 'n': (1, 2.5)}, tags=[])]",
                content: "",
                calls: &[("search", r#"{"query": "x\n", "filters": {"tags": ["a", null], "on": true, "n": [1, 2.5]}, "tags": []}"#)],
            },
            Fixture {
                name: "unicode",
                kind: Pythonic,
                text: "[get_weather(city='São Paulo 🌧')]",
                content: "",
                calls: &[("get_weather", r#"{"city": "São Paulo 🌧"}"#)],
            },
            Fixture {
                name: "a bracket in prose is content",
                kind: Pythonic,
                text: "[1] Smith et al. [ping()]",
                content: "[1] Smith et al. [ping()]",
                calls: &[],
            },
            Fixture {
                name: "positional arguments are content",
                kind: Pythonic,
                text: "[get_weather(\"Paris\")]",
                content: "[get_weather(\"Paris\")]",
                calls: &[],
            },
            Fixture {
                name: "cut off call is content",
                kind: Pythonic,
                text: "[get_weather(city=\"Par",
                content: "[get_weather(city=\"Par",
                calls: &[],
            },
        ],
        &tools(),
    );
}

#[test]
fn qwen3_coder_fixtures() {
    check(
        &[
            Fixture {
                name: "alone, typed by schema",
                kind: Qwen3Coder,
                text: "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n<parameter=metric>\ntrue\n</parameter>\n<parameter=threshold>\n0.5\n</parameter>\n</function>\n</tool_call>",
                content: "",
                calls: &[("get_weather", r#"{"city": "Paris", "days": 3, "metric": true, "threshold": 0.5}"#)],
            },
            Fixture {
                name: "text around and several",
                kind: Qwen3Coder,
                text: "I'll check both.\n\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>\n<tool_call>\n<function=ping>\n</function>\n</tool_call>\nDone",
                content: "I'll check both.\nDone",
                calls: &[("get_weather", WEATHER), ("ping", "{}")],
            },
            Fixture {
                name: "object and array parameters, multi-line string",
                kind: Qwen3Coder,
                text: "<tool_call>\n<function=search>\n<parameter=query>\nline 1\nline 2 <b>\n</parameter>\n<parameter=filters>\n{\"a\": {\"b\": [1, {\"c\": null}]}}\n</parameter>\n<parameter=tags>\n['x', 'y']\n</parameter>\n</function>\n</tool_call>",
                content: "",
                calls: &[("search", r#"{"query": "line 1\nline 2 <b>", "filters": {"a": {"b": [1, {"c": null}]}}, "tags": ["x", "y"]}"#)],
            },
            Fixture {
                name: "unicode",
                kind: Qwen3Coder,
                text: "<tool_call><function=get_weather><parameter=city>Kraków — 北京</parameter></function></tool_call>",
                content: "",
                calls: &[("get_weather", r#"{"city": "Kraków — 北京"}"#)],
            },
            Fixture {
                name: "bare function",
                kind: Qwen3Coder,
                text: "<function=ping>\n</function>",
                content: "",
                calls: &[("ping", "{}")],
            },
            Fixture {
                name: "json body",
                kind: Qwen3Coder,
                text: "<tool_call>{\"name\": \"ping\", \"arguments\": {}}</tool_call>",
                content: "",
                calls: &[("ping", "{}")],
            },
            Fixture {
                name: "malformed is content",
                kind: Qwen3Coder,
                text: "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</tool_call>",
                content: "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</tool_call>",
                calls: &[],
            },
            Fixture {
                name: "missing closing tag after a complete function is a call",
                kind: Qwen3Coder,
                text: "<tool_call>\n<function=ping>\n</function>\n",
                content: "",
                calls: &[("ping", "{}")],
            },
            Fixture {
                name: "cut off call is content",
                kind: Qwen3Coder,
                text: "<tool_call>\n<function=get_weather>\n<parameter=city>\nPar",
                content: "<tool_call>\n<function=get_weather>\n<parameter=city>\nPar",
                calls: &[],
            },
        ],
        &tools(),
    );
}

#[test]
fn phi4_mini_json_fixtures() {
    check(
        &[
            Fixture {
                name: "alone",
                kind: Phi4MiniJson,
                text: "functools[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]",
                content: "",
                calls: &[("get_weather", WEATHER)],
            },
            Fixture {
                name: "several with text before",
                kind: Phi4MiniJson,
                text: "Calling tools: functools[{\"name\": \"ping\", \"arguments\": {}}, {\"name\": \"search\", \"arguments\": {\"query\": \"ü\", \"filters\": {\"n\": [{}]}}}]",
                content: "Calling tools:",
                calls: &[("ping", "{}"), ("search", r#"{"query": "ü", "filters": {"n": [{}]}}"#)],
            },
            Fixture {
                name: "word in prose",
                kind: Phi4MiniJson,
                text: "functools is a module; functools.reduce",
                content: "functools is a module; functools.reduce",
                calls: &[],
            },
            Fixture {
                name: "malformed is content",
                kind: Phi4MiniJson,
                text: "functools[{\"name\": 1}]",
                content: "functools[{\"name\": 1}]",
                calls: &[],
            },
            Fixture {
                name: "cut off call is content",
                kind: Phi4MiniJson,
                text: "functools[{\"name\": \"ping\", ",
                content: "functools[{\"name\": \"ping\", ",
                calls: &[],
            },
        ],
        &tools(),
    );
}
