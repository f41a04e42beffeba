//! Fuzzes the tool-call and reasoning parsers with arbitrary model output: no input may panic,
//! and feeding the text in chunks (of a fuzzer-chosen size) must give the same content,
//! reasoning and calls as feeding it whole — the streaming path equals the non-streaming one.
//!
//! Input: byte 0 picks the tool parser and the reasoning parser, byte 1 the chunk size in
//! characters, the rest (as lossy UTF-8) is the output text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotor_text::{
    ReasoningParser, ReasoningParserKind, ToolCallEvent, ToolCallParser, ToolParserKind, ToolSpec,
};

/// What a client sees in the end: content, reasoning, and each call's name and arguments.
#[derive(Debug, PartialEq, Default)]
struct Folded {
    content: String,
    reasoning: String,
    calls: Vec<(String, String)>,
}

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "get_weather".into(),
            parameters: Some(serde_json::json!({"type": "object", "properties": {
                "city": {"type": "string"}, "days": {"type": "array", "items": {"type": "integer"}},
                "metric": {"type": "boolean"}, "limit": {"type": "number"}}})),
        },
        ToolSpec {
            name: "f".into(),
            parameters: None,
        },
    ]
}

fn run(kind: ToolParserKind, reasoning: Option<ReasoningParserKind>, chunks: &[&str]) -> Folded {
    let mut tools = ToolCallParser::new(kind, tools());
    let mut think = reasoning.map(|k| ReasoningParser::new(k, false));
    let mut out = Folded::default();
    let mut apply = |events: Vec<ToolCallEvent>, out: &mut Folded| {
        for event in events {
            match event {
                ToolCallEvent::Content(text) => out.content.push_str(&text),
                ToolCallEvent::CallStart { index, name, .. } => {
                    assert_eq!(index, out.calls.len(), "calls are numbered in order");
                    out.calls.push((name, String::new()));
                }
                ToolCallEvent::Arguments { index, fragment } => {
                    out.calls[index].1.push_str(&fragment);
                }
            }
        }
    };
    for chunk in chunks {
        let content = match &mut think {
            Some(p) => {
                let split = p.push(chunk);
                out.reasoning.push_str(&split.reasoning);
                split.content
            }
            None => chunk.to_string(),
        };
        let events = tools.push(&content);
        apply(events, &mut out);
    }
    if let Some(p) = &mut think {
        let split = p.finish();
        out.reasoning.push_str(&split.reasoning);
        let events = tools.push(&split.content);
        apply(events, &mut out);
    }
    let events = tools.finish();
    apply(events, &mut out);
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let kind = ToolParserKind::ALL[data[0] as usize % ToolParserKind::ALL.len()];
    let reasoning = match (data[0] / 8) % 4 {
        0 => None,
        r => Some(ReasoningParserKind::ALL[r as usize - 1]),
    };
    let size = data[1] as usize % 9 + 1;
    let text = String::from_utf8_lossy(&data[2..]);
    let chars: Vec<char> = text.chars().collect();
    let pieces: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let whole = run(kind, reasoning, &[&text]);
    let streamed = run(kind, reasoning, &refs);
    assert_eq!(
        whole, streamed,
        "{kind:?} {reasoning:?} chunk {size}: {text:?}"
    );
    for (_, arguments) in &whole.calls {
        // Arguments are JSON (pythonic and qwen3_coder convert theirs to JSON too).
        assert!(
            serde_json::from_str::<serde_json::Value>(arguments).is_ok(),
            "{kind:?}: arguments are not JSON: {arguments:?}"
        );
    }
});
