//! Reasoning parser fixtures, each also fed character by character and in random splits.

use rotor_text::reasoning::{think_opened_in_prompt, ReasoningParserKind, ReasoningSplit};
use rotor_text::ReasoningParser;

use crate::parser_feed::reason_every_way;

use ReasoningParserKind::{DeepseekR1, Qwen3, Think};

fn split(reasoning: &str, content: &str) -> ReasoningSplit {
    ReasoningSplit {
        reasoning: reasoning.to_string(),
        content: content.to_string(),
    }
}

#[test]
fn think_block_then_answer() {
    for kind in ReasoningParserKind::ALL {
        let got = reason_every_way(
            kind,
            false,
            "<think>\nThe user wants 2+2.\nIt is 4.\n</think>\n\nThe answer is 4.",
        );
        assert_eq!(
            got,
            split("The user wants 2+2.\nIt is 4.", "The answer is 4."),
            "{kind}"
        );
    }
}

#[test]
fn prompt_opened_the_block() {
    // The template ended the prompt with "<think>\n": the output starts inside it.
    for kind in ReasoningParserKind::ALL {
        let got = reason_every_way(kind, true, "Hmm, ünïcode 🤔.\n</think>\n\nDone.");
        assert_eq!(got, split("Hmm, ünïcode 🤔.", "Done."), "{kind}");
        // The model repeating the opening tag is tolerated.
        let got = reason_every_way(kind, true, "<think>x</think>y");
        assert_eq!(got, split("x", "y"), "{kind}");
    }
    assert!(think_opened_in_prompt("<|im_start|>assistant\n<think>\n"));
    assert!(!think_opened_in_prompt("<think>\n\n</think>\n\n"));
    assert!(!think_opened_in_prompt("<|im_start|>assistant\n"));
}

#[test]
fn missing_end_tag_is_all_reasoning() {
    for kind in ReasoningParserKind::ALL {
        let got = reason_every_way(kind, false, "<think>\nstill thinking </thi");
        assert_eq!(got, split("still thinking </thi", ""), "{kind}");
    }
    let got = reason_every_way(DeepseekR1, false, "no tags at all, cut by max_tokens ");
    assert_eq!(got, split("no tags at all, cut by max_tokens ", ""));
}

#[test]
fn deepseek_r1_starts_in_reasoning_without_an_opening_tag() {
    let got = reason_every_way(DeepseekR1, false, "Let me think.</think>Answer: 4");
    assert_eq!(got, split("Let me think.", "Answer: 4"));
}

#[test]
fn qwen3_without_think_is_all_content_verbatim() {
    for kind in [Qwen3, Think] {
        let text = "  Plain answer with </think> inside and <think> later.\n";
        assert_eq!(
            reason_every_way(kind, false, text),
            split("", text),
            "{kind}"
        );
        assert_eq!(
            reason_every_way(kind, false, "<thin"),
            split("", "<thin"),
            "{kind}"
        );
        assert_eq!(reason_every_way(kind, false, ""), split("", ""), "{kind}");
    }
}

#[test]
fn empty_think_block() {
    let got = reason_every_way(Qwen3, false, "<think>\n\n</think>\n\nHi");
    assert_eq!(got, split("", "Hi"));
}

#[test]
fn tags_split_across_deltas() {
    let mut parser = ReasoningParser::new(Qwen3, false);
    assert_eq!(parser.push("<thi"), split("", ""));
    assert_eq!(parser.push("nk>abc </th"), split("abc", ""));
    assert!(!parser.in_content());
    assert_eq!(parser.push("ink>\n"), split("", ""));
    assert!(parser.in_content());
    assert_eq!(parser.push("Hello"), split("", "Hello"));
    assert_eq!(parser.finish(), split("", ""));
}

#[test]
fn reasoning_names_and_templates() {
    for kind in ReasoningParserKind::ALL {
        assert_eq!(ReasoningParserKind::from_name(kind.name()), Some(kind));
    }
    assert_eq!(
        ReasoningParserKind::from_name("deepseek-r1"),
        Some(DeepseekR1)
    );
    assert_eq!(
        ReasoningParserKind::from_chat_template("{{'<｜Assistant｜><think>\\n'}}"),
        Some(DeepseekR1)
    );
    assert_eq!(
        ReasoningParserKind::from_chat_template("<|im_start|>assistant\n{% if enable_thinking is false %}<think>\n\n</think>{% endif %}"),
        Some(Qwen3)
    );
    assert_eq!(
        ReasoningParserKind::from_chat_template("<think>"),
        Some(Think)
    );
    assert_eq!(
        ReasoningParserKind::from_chat_template("{{ messages }}"),
        None
    );
}
