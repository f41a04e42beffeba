//! `--scenario shared-prefix`: the A/B/C workload and its TTFT comparison.

use rotor_bench::client::{Outcome, RequestRecord};
use rotor_bench::config::{Endpoint, LoadMode};
use rotor_bench::prompt::PromptPayload;
use rotor_bench::shared_prefix::{self, role_of, Role, SharedPrefixSummary};

use super::args::parse;

fn ids(p: PromptPayload) -> Vec<u32> {
    match p {
        PromptPayload::Tokens(t) => t,
        PromptPayload::Text(t) => panic!("text prompt {t:?}"),
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[test]
fn workload_is_a_then_b_sharing_its_prefix_then_c_with_a_fresh_one() {
    let cfg = parse(&[
        "--scenario",
        "shared-prefix",
        "--prefix-len",
        "100",
        "--input-len",
        "10",
        "--output-len",
        "4",
        "--num-requests",
        "2",
    ])
    .validate()
    .unwrap();
    let w = shared_prefix::build(&cfg, 100, 2, 42);
    assert_eq!(w.mode, LoadMode::Closed { concurrency: 1 });
    assert_eq!(w.endpoint, Endpoint::Completions);
    assert_eq!(w.requests.len(), 6);
    let roles: Vec<Role> = (0..6).map(role_of).collect();
    assert_eq!(
        roles,
        [
            Role::First,
            Role::SharedPrefix,
            Role::FreshPrefix,
            Role::First,
            Role::SharedPrefix,
            Role::FreshPrefix
        ]
    );
    let p: Vec<Vec<u32>> = w
        .requests
        .iter()
        .map(|r| ids(w.prompts.build(&r.prompt)))
        .collect();
    assert!(p.iter().all(|x| x.len() == 110));
    assert!(w.requests.iter().all(|r| r.output_tokens == 4));
    for rep in 0..2 {
        let (a, b, c) = (&p[3 * rep], &p[3 * rep + 1], &p[3 * rep + 2]);
        assert_eq!(a[..100], b[..100], "B repeats A's prefix");
        assert_ne!(a[100..], b[100..], "B has its own suffix");
        assert!(common_prefix(a, c) < 5, "C's prefix is new");
    }
    assert!(
        common_prefix(&p[0], &p[3]) < 5,
        "each repetition has new prefixes"
    );
    // Another run (nonce) gets other prompts, so a server cannot have cached them.
    let again = shared_prefix::build(&cfg, 100, 2, 43);
    let q = ids(again.prompts.build(&again.requests[2].prompt));
    assert!(common_prefix(&p[2], &q) < 5);
    // Through `workload::build` (clock nonce) and as text.
    let text = parse(&[
        "--scenario",
        "shared-prefix",
        "--prompt-format",
        "text",
        "--num-requests",
        "1",
        "--input-len",
        "8",
    ])
    .validate()
    .unwrap();
    let w = rotor_bench::workload::build(&text).unwrap();
    assert_eq!(w.requests.len(), 3);
    let words: Vec<String> = w
        .requests
        .iter()
        .map(|r| match w.prompts.build(&r.prompt) {
            PromptPayload::Text(t) => t,
            other => panic!("{other:?}"),
        })
        .collect();
    let head = |s: &str| s.split(' ').take(1000).collect::<Vec<_>>().join(" ");
    assert_eq!(words[0].split(' ').count(), 1008);
    assert_eq!(head(&words[0]), head(&words[1]));
    assert_ne!(head(&words[0]), head(&words[2]));
}

fn rec(index: usize, outcome: Outcome, ttft: f64, cached: Option<u32>) -> RequestRecord {
    RequestRecord {
        index,
        start_ms: 0.0,
        outcome,
        error: None,
        ttft_ms: Some(ttft),
        e2e_ms: ttft + 10.0,
        itl_ms: vec![10.0],
        input_tokens: Some(1010),
        planned_input_tokens: Some(1008),
        usage_reported: true,
        output_tokens: 2,
        expected_output_tokens: 2,
        cached_tokens: cached,
        retries: 0,
    }
}

#[test]
fn summary_takes_medians_per_role_and_the_fresh_over_shared_ratio() {
    let records = vec![
        rec(0, Outcome::Ok, 900.0, Some(0)),
        rec(1, Outcome::Ok, 100.0, Some(1000)),
        rec(2, Outcome::Ok, 800.0, Some(0)),
        rec(3, Outcome::Ok, 950.0, Some(0)),
        rec(4, Outcome::Ok, 120.0, Some(992)),
        rec(5, Outcome::Error, 5.0, None), // failed C: not counted
        rec(6, Outcome::Ok, 1000.0, Some(0)),
        rec(7, Outcome::Ok, 140.0, Some(1000)),
        rec(8, Outcome::Ok, 840.0, Some(0)),
    ];
    let s = SharedPrefixSummary::compute(&records, 1000, 3);
    assert_eq!(s.first.ok, 3);
    assert_eq!(s.first.ttft_median_ms, Some(950.0));
    assert_eq!(s.shared_prefix.ttft_ms, vec![100.0, 120.0, 140.0]);
    assert_eq!(s.shared_prefix.ttft_median_ms, Some(120.0));
    assert_eq!(s.shared_prefix.cached_tokens_median, Some(1000.0));
    assert_eq!(s.fresh_prefix.ok, 2);
    assert_eq!(s.fresh_prefix.ttft_median_ms, Some(820.0));
    assert_eq!(s.fresh_prefix.input_tokens_median, Some(1010.0));
    assert_eq!(s.fresh_over_shared_ttft, Some(820.0 / 120.0));
    let shown = s.to_string();
    assert!(shown.contains("TTFT C / B: 6.83"), "{shown}");
    let none = SharedPrefixSummary::compute(&records[..1], 1000, 1);
    assert_eq!(none.fresh_over_shared_ttft, None);
}
