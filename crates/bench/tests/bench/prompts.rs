//! Prompt generation: Mooncake hash ids to token blocks, synthetic prefix groups.

use rotor_bench::config::{Endpoint, LoadMode};
use rotor_bench::prompt::{
    scaled_hash_prompt_len, PromptBuilder, PromptPayload, PromptSpec, PROMPT_WORDS,
};
use rotor_bench::trace::{self, TracePrompt};
use rotor_bench::workload;

use super::args::parse;

fn builder(block: u32, cap: Option<u32>) -> PromptBuilder {
    PromptBuilder {
        seed: 7,
        token_ids: 1000..30000,
        block_size_tokens: block,
        max_input_tokens: cap,
        as_text: false,
    }
}

fn tokens(p: PromptPayload) -> Vec<u32> {
    match p {
        PromptPayload::Tokens(t) => t,
        PromptPayload::Text(t) => panic!("text prompt {t:?}"),
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Two rows of the real trace sharing their first five hash ids (then differing).
fn shared_pair() -> (PromptSpec, PromptSpec) {
    let text = include_str!("../fixtures/mooncake_shared_pair.jsonl");
    let rows = trace::parse_mooncake(text).unwrap();
    let spec = |p: &TracePrompt| match p {
        TracePrompt::HashIds {
            input_tokens,
            hash_ids,
        } => PromptSpec::HashBlocks {
            hash_ids: hash_ids.clone(),
            trace_input_tokens: *input_tokens,
        },
        other => panic!("{other:?}"),
    };
    (spec(&rows[0].prompt), spec(&rows[1].prompt))
}

#[test]
fn mooncake_rows_sharing_leading_ids_share_exactly_those_blocks() {
    let (a, b) = shared_pair();
    let pb = builder(512, None);
    let (ta, tb) = (tokens(pb.build(&a)), tokens(pb.build(&b)));
    assert_eq!(ta.len(), 2651);
    assert_eq!(tb.len(), 3024);
    assert_eq!(common_prefix(&ta, &tb), 5 * 512);
    assert_eq!(pb.expected_input_tokens(&a), Some(2651));
    assert!(ta.iter().chain(&tb).all(|t| (1000..30000).contains(t)));
}

#[test]
fn rescaled_blocks_keep_the_sharing_at_the_new_block_size() {
    let (a, b) = shared_pair();
    let pb = builder(16, None);
    let (ta, tb) = (tokens(pb.build(&a)), tokens(pb.build(&b)));
    // 5 full blocks of 16, then the last block's share rounded up: ceil(91*16/512) = 3 and
    // ceil(464*16/512) = 15.
    assert_eq!(ta.len(), 5 * 16 + 3);
    assert_eq!(tb.len(), 5 * 16 + 15);
    assert_eq!(common_prefix(&ta, &tb), 5 * 16);
    assert_eq!(scaled_hash_prompt_len(6, 3024, 16), 95);
    assert_eq!(scaled_hash_prompt_len(1, 1, 512), 1);
    assert_eq!(scaled_hash_prompt_len(2, 1024, 64), 128);
}

#[test]
fn max_input_tokens_cuts_prompts() {
    let (a, b) = shared_pair();
    let pb = builder(512, Some(50));
    let (ta, tb) = (tokens(pb.build(&a)), tokens(pb.build(&b)));
    assert_eq!(ta.len(), 50);
    assert_eq!(ta, tb, "both prompts are inside the shared prefix");
    assert_eq!(pb.expected_input_tokens(&a), Some(50));
}

#[test]
fn hash_blocks_are_a_function_of_seed_and_id() {
    let pb = builder(32, None);
    assert_eq!(pb.hash_block(42), pb.hash_block(42));
    assert_ne!(pb.hash_block(42), pb.hash_block(43));
    let other_seed = PromptBuilder {
        seed: 8,
        ..pb.clone()
    };
    assert_ne!(pb.hash_block(42), other_seed.hash_block(42));
    assert_eq!(pb.hash_block(42).len(), 32);
}

#[test]
fn synthetic_groups_share_their_prefix_only() {
    let cfg = parse(&[
        "--num-requests",
        "6",
        "--prefix-groups",
        "3",
        "--prefix-len",
        "32",
        "--input-len",
        "8",
        "--output-len",
        "4",
        "--concurrency",
        "2",
    ])
    .validate()
    .unwrap();
    let w = workload::build(&cfg).unwrap();
    assert_eq!(w.mode, LoadMode::Closed { concurrency: 2 });
    assert_eq!(w.endpoint, Endpoint::Completions);
    let t: Vec<Vec<u32>> = w
        .requests
        .iter()
        .map(|r| tokens(w.prompts.build(&r.prompt)))
        .collect();
    assert!(t.iter().all(|p| p.len() == 40));
    // Each request joins a group drawn at random (seeded): same group, exactly the prefix in
    // common; different groups, nothing.
    let groups: Vec<u32> = w.requests.iter().map(|r| group_of(&r.prompt)).collect();
    assert!(groups.iter().all(|&g| g < 3), "{groups:?}");
    let mut same = 0;
    for i in 0..t.len() {
        for j in i + 1..t.len() {
            let expected = if groups[i] == groups[j] { 32 } else { 0 };
            same += usize::from(groups[i] == groups[j]);
            assert_eq!(
                common_prefix(&t[i], &t[j]),
                expected,
                "requests {i} and {j} in groups {} and {}",
                groups[i],
                groups[j]
            );
        }
    }
    assert!(
        same > 0,
        "6 requests in 3 groups: some share one ({groups:?})"
    );
    // The draw is seeded: the same flags give the same groups.
    let again = workload::build(&cfg).unwrap();
    let groups_again: Vec<u32> = again.requests.iter().map(|r| group_of(&r.prompt)).collect();
    assert_eq!(groups, groups_again);
    assert!(w
        .requests
        .iter()
        .all(|r| r.output_tokens == 4 && r.send_at.is_none()));
}

#[test]
fn chat_endpoint_renders_token_prompts_as_words() {
    let cfg = parse(&[
        "--num-requests",
        "2",
        "--input-len",
        "12",
        "--endpoint",
        "chat",
    ])
    .validate()
    .unwrap();
    let w = workload::build(&cfg).unwrap();
    match w.prompts.build(&w.requests[0].prompt) {
        PromptPayload::Text(t) => assert_eq!(t.split(' ').count(), 12, "{t}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn text_prompt_format_sends_completions_prompts_as_words_that_keep_shared_prefixes() {
    let cfg = parse(&[
        "--num-requests",
        "3",
        "--input-len",
        "20",
        "--prefix-groups",
        "2",
        "--prefix-len",
        "30",
        "--prompt-format",
        "text",
    ])
    .validate()
    .unwrap();
    let w = workload::build(&cfg).unwrap();
    assert_eq!(w.endpoint, Endpoint::Completions);
    let words: Vec<Vec<String>> = w
        .requests
        .iter()
        .map(|r| match w.prompts.build(&r.prompt) {
            PromptPayload::Text(t) => t.split(' ').map(str::to_string).collect(),
            other => panic!("{other:?}"),
        })
        .collect();
    for (r, ws) in w.requests.iter().zip(&words) {
        assert_eq!(ws.len(), 50, "30 prefix + 20 own words");
        assert!(
            ws.iter().all(|x| PROMPT_WORDS.contains(&x.as_str())),
            "{ws:?}"
        );
        assert_eq!(w.prompts.expected_input_tokens(&r.prompt), Some(50));
    }
    // Requests of one group share their 30 leading words, and only those.
    let groups: Vec<u32> = w.requests.iter().map(|r| group_of(&r.prompt)).collect();
    for i in 0..words.len() {
        for j in i + 1..words.len() {
            if groups[i] == groups[j] {
                assert_eq!(words[i][..30], words[j][..30]);
            } else {
                assert_ne!(words[i][..30], words[j][..30]);
            }
            assert_ne!(words[i][30..], words[j][30..]);
        }
    }
    // The default stays token ids.
    let ids = parse(&["--num-requests", "1", "--input-len", "5"])
        .validate()
        .unwrap();
    let w = workload::build(&ids).unwrap();
    assert_eq!(tokens(w.prompts.build(&w.requests[0].prompt)).len(), 5);
}

/// The prefix group of a synthetic request.
fn group_of(p: &rotor_bench::prompt::PromptSpec) -> u32 {
    match p {
        rotor_bench::prompt::PromptSpec::Random {
            prefix_group: Some(g),
            ..
        } => *g,
        other => panic!("not a grouped synthetic prompt: {other:?}"),
    }
}
