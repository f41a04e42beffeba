//! Replay requests and their prompt tokens.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One request of a replayed trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayRequest {
    pub arrival: Duration,
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Prefix blocks of `hash_block_tokens` tokens (Mooncake); empty: a prompt of its own.
    pub hash_ids: Vec<u64>,
}

/// Tokens per block of `ReplayRequest::hash_ids` (Mooncake's).
pub const HASH_BLOCK_TOKENS: usize = 512;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The prompt of request `index`: tokens that two requests share exactly as far as their
/// leading hash ids agree (or that nobody shares, without hash ids), reproducible from `seed`.
pub fn prompt_tokens(req: &ReplayRequest, index: usize, seed: u64, vocab_size: usize) -> Vec<u32> {
    let n = req.input_tokens as usize;
    let vocab = vocab_size.max(2) as u64;
    (0..n)
        .map(|i| {
            let key = match req.hash_ids.get(i / HASH_BLOCK_TOKENS) {
                Some(h) => splitmix64(seed ^ splitmix64(*h) ^ 0x5eed),
                None => splitmix64(seed ^ splitmix64(index as u64 + 1) ^ 0x1d),
            };
            (splitmix64(key ^ (i as u64)) % vocab) as u32
        })
        .collect()
}
