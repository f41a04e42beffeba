//! Feeding parsers in pieces: one piece, character by character and in random splits, so
//! every fixture checks that streaming and batch agree.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rotor_text::reasoning::{
    parse_reasoning, ReasoningParser, ReasoningParserKind, ReasoningSplit,
};
use rotor_text::{
    parse_tool_calls, ParsedToolCalls, ToolCallEvent, ToolCallParser, ToolParserKind, ToolSpec,
};

/// `text` cut into pieces at char boundaries chosen by `rng` (1 to 8 chars each).
pub fn random_split(text: &str, rng: &mut StdRng) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let len = rng.random_range(1..=8).min(chars.len() - at);
        pieces.push(chars[at..at + len].iter().collect());
        at += len;
    }
    pieces
}

/// Every way of feeding `text` the fixtures check: whole, per char, and 20 random splits.
pub fn splittings(text: &str) -> Vec<Vec<String>> {
    let mut all = vec![
        vec![text.to_string()],
        text.chars().map(String::from).collect(),
    ];
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for _ in 0..20 {
        all.push(random_split(text, &mut rng));
    }
    all
}

/// Streams `pieces` through a tool parser, checking the event stream's shape, and folds it.
pub fn stream_tools(
    kind: ToolParserKind,
    tools: &[ToolSpec],
    pieces: &[String],
) -> ParsedToolCalls {
    let mut parser = ToolCallParser::new(kind, tools.to_vec());
    let mut parsed = ParsedToolCalls::default();
    let mut events: Vec<ToolCallEvent> = Vec::new();
    for piece in pieces {
        events.extend(parser.push(piece));
    }
    events.extend(parser.finish());
    let mut started = 0;
    for event in events {
        match &event {
            ToolCallEvent::Content(text) => assert!(!text.is_empty(), "empty content event"),
            ToolCallEvent::CallStart { index, .. } => {
                assert_eq!(*index, started, "calls start in index order");
                started += 1;
            }
            ToolCallEvent::Arguments { index, .. } => {
                assert!(*index < started, "arguments after their call's start")
            }
        }
        parsed.apply(event);
    }
    assert_eq!(parser.calls_emitted(), parsed.calls.len());
    parsed
}

/// What must agree across splittings: content and (name, arguments) — ids are random.
pub fn without_ids(parsed: &ParsedToolCalls) -> (String, Vec<(String, String)>) {
    let calls = parsed
        .calls
        .iter()
        .map(|c| (c.name.clone(), c.arguments.clone()))
        .collect();
    (parsed.content.clone(), calls)
}

/// Batch result, after asserting that every splitting streams to the same result.
pub fn parse_every_way(kind: ToolParserKind, tools: &[ToolSpec], text: &str) -> ParsedToolCalls {
    let batch = parse_tool_calls(kind, text, tools);
    for pieces in splittings(text) {
        let streamed = stream_tools(kind, tools, &pieces);
        assert_eq!(
            without_ids(&streamed),
            without_ids(&batch),
            "{kind}: streaming {pieces:?} differs from batch"
        );
    }
    batch
}

pub fn stream_reasoning(
    kind: ReasoningParserKind,
    opened: bool,
    pieces: &[String],
) -> ReasoningSplit {
    let mut parser = ReasoningParser::new(kind, opened);
    let mut split = ReasoningSplit::default();
    for piece in pieces {
        split.append(&parser.push(piece));
    }
    split.append(&parser.finish());
    split
}

pub fn reason_every_way(kind: ReasoningParserKind, opened: bool, text: &str) -> ReasoningSplit {
    let batch = parse_reasoning(kind, text, opened);
    for pieces in splittings(text) {
        assert_eq!(
            stream_reasoning(kind, opened, &pieces),
            batch,
            "{kind}: streaming {pieces:?} differs from batch"
        );
    }
    batch
}
