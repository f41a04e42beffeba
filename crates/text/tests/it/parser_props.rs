//! Properties over arbitrary text: no parser panics, streaming in any split equals batch, and
//! an output without calls comes back as content unchanged (nothing vanishes).

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rotor_text::reasoning::{parse_reasoning, ReasoningParserKind};
use rotor_text::{parse_tool_calls, ToolParserKind, ToolSpec};

use crate::parser_feed::{random_split, stream_reasoning, stream_tools, without_ids};

/// Pieces of every format's markup, so random texts often form (or nearly form) calls.
#[rustfmt::skip]
const ATOMS: &[&str] = &[
    "<tool_call>", "</tool_call>", "{", "}", "[", "]", "(", ")", "\"name\"", "\"arguments\"",
    "\"parameters\"", ": ", ", ", "\"ping\"", "\"f\"", "ping", "f", "=", "1", "True", "'x'",
    "\"é🌍\"", "\\", "\"", " ", "\n", ";", "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "functools",
    "<|python_tag|>", "<|python_start|>", "<|python_end|>", "<function=ping>", "<function=",
    "<parameter=a>", "</parameter>", "</function>", "<think>", "</think>", "<", "</", "text",
];

/// Whole calls in every format (and one to an unknown function).
const CALLS: &[&str] = &[
    "<tool_call>{\"name\": \"ping\", \"arguments\": {\"a\": \"é\"}}</tool_call>",
    "<tool_call>[{\"name\": \"ping\"}]</tool_call>",
    "<tool_call>\n<function=ping>\n<parameter=a>\n1\n</parameter>\n</function>\n</tool_call>",
    "<|python_tag|>{\"name\": \"ping\", \"parameters\": {}}",
    "{\"name\": \"ping\", \"parameters\": {\"x\": [1]}}; {\"name\": \"ping\"}",
    "[TOOL_CALLS][{\"name\": \"ping\", \"arguments\": {}}]",
    "[TOOL_CALLS]ping[ARGS]{\"a\": {\"b\": 1}}",
    "[ping(a=1, b='x'), ping()]",
    "<|python_start|>[ping()]<|python_end|>",
    "functools[{\"name\": \"ping\", \"arguments\": {}}]",
    "<tool_call>{\"name\": \"nope\", \"arguments\": {}}</tool_call>",
];

/// A call, whole or cut off at some character.
fn call_snippet() -> impl Strategy<Value = String> {
    (
        prop::sample::select(CALLS),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(call, cut, whole)| {
            if whole {
                call.to_string()
            } else {
                let chars: Vec<char> = call.chars().collect();
                chars[..cut.index(chars.len() + 1)].iter().collect()
            }
        })
}

fn markup_soup() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        3 => prop::sample::select(ATOMS).prop_map(str::to_string),
        1 => call_snippet(),
    ];
    prop::collection::vec(segment, 0..24).prop_map(|segments| segments.concat())
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![markup_soup(), "\\PC{0,60}", "[ -~]{0,60}"]
}

fn tool_sets() -> [Vec<ToolSpec>; 2] {
    let ping = ToolSpec {
        name: "ping".into(),
        parameters: None,
    };
    [Vec::new(), vec![ping]]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn tool_parsers_stream_like_batch_and_lose_no_text(text in any_text(), seed in any::<u64>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        for kind in ToolParserKind::ALL {
            for tools in tool_sets() {
                let batch = parse_tool_calls(kind, &text, &tools);
                let pieces = random_split(&text, &mut rng);
                let streamed = stream_tools(kind, &tools, &pieces);
                prop_assert_eq!(without_ids(&streamed), without_ids(&batch), "{} {:?}", kind, pieces);
                if batch.calls.is_empty() {
                    prop_assert_eq!(&batch.content, &text, "{}", kind);
                }
                for call in &batch.calls {
                    let args: serde_json::Value = serde_json::from_str(&call.arguments)
                        .map_err(|e| TestCaseError::fail(format!("{kind}: {e}: {}", call.arguments)))?;
                    prop_assert!(args.is_object());
                    prop_assert!(tools.is_empty() || tools.iter().any(|t| t.name == call.name));
                }
            }
        }
    }

    #[test]
    fn reasoning_parsers_stream_like_batch(text in any_text(), seed in any::<u64>(), opened in any::<bool>()) {
        let mut rng = StdRng::seed_from_u64(seed);
        for kind in ReasoningParserKind::ALL {
            let batch = parse_reasoning(kind, &text, opened);
            let pieces = random_split(&text, &mut rng);
            prop_assert_eq!(stream_reasoning(kind, opened, &pieces), batch.clone(), "{} {:?}", kind, pieces);
            if !text.contains('<') {
                if kind == ReasoningParserKind::DeepseekR1 || opened {
                    prop_assert_eq!(&batch.reasoning, text.trim_start());
                } else {
                    prop_assert_eq!(&batch.content, &text);
                }
            }
        }
    }
}
