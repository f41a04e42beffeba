//! Token blocks and the one chained block-hash implementation.
//!
//! A prompt is cut into full blocks of `block_size` tokens (a partial tail block has no hash).
//! Each block has a *local* hash, XXH3-64 with seed 1337 over its token ids as little-endian u32,
//! and a *sequence* hash that chains: `seq[0] = local[0]`, `seq[i] = xxh3(seq[i-1] ‖ local[i])`
//! (both as little-endian u64, same seed). Two sequences share a block's sequence hash exactly when
//! they share every token up to the end of that block. This is Dynamo's scheme, so KV events from
//! engines that follow it interoperate. Engine, KV cache, router and bench all call this crate;
//! nobody else hashes blocks.
//!
//! Depends on nothing of Rotor's.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The seed of every block hash.
pub const BLOCK_HASH_SEED: u64 = 1337;

/// Hash of one block's tokens alone.
pub type LocalBlockHash = u64;
/// Hash of a block together with every block before it.
pub type SequenceHash = u64;

/// Local hash of one block of token ids.
pub fn local_block_hash(tokens: &[u32]) -> LocalBlockHash {
    let mut bytes = Vec::with_capacity(tokens.len() * 4);
    for t in tokens {
        bytes.extend_from_slice(&t.to_le_bytes());
    }
    xxh3_64_with_seed(&bytes, BLOCK_HASH_SEED)
}

/// Chain a block's local hash onto its parent's sequence hash.
pub fn chain_hash(parent: Option<SequenceHash>, local: LocalBlockHash) -> SequenceHash {
    match parent {
        None => local,
        Some(p) => {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&p.to_le_bytes());
            bytes[8..].copy_from_slice(&local.to_le_bytes());
            xxh3_64_with_seed(&bytes, BLOCK_HASH_SEED)
        }
    }
}

/// Local hashes of every full block of `tokens`.
pub fn local_block_hashes(tokens: &[u32], block_size: usize) -> Vec<LocalBlockHash> {
    assert!(block_size > 0, "block_size must be positive");
    tokens
        .chunks_exact(block_size)
        .map(local_block_hash)
        .collect()
}

/// Sequence hashes of every full block of `tokens`.
pub fn sequence_hashes(tokens: &[u32], block_size: usize) -> Vec<SequenceHash> {
    let mut parent = None;
    local_block_hashes(tokens, block_size)
        .into_iter()
        .map(|local| {
            let h = chain_hash(parent, local);
            parent = Some(h);
            h
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_tail_block_has_no_hash() {
        assert_eq!(sequence_hashes(&[1, 2, 3, 4, 5, 6], 4).len(), 1);
        assert!(sequence_hashes(&[1, 2, 3], 4).is_empty());
    }

    #[test]
    fn first_sequence_hash_is_the_local_hash() {
        let s = sequence_hashes(&[1, 2, 3, 4], 4);
        assert_eq!(s[0], local_block_hash(&[1, 2, 3, 4]));
    }

    #[test]
    fn shared_prefix_shares_hashes_until_divergence() {
        let a = sequence_hashes(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 4);
        let b = sequence_hashes(&[1, 2, 3, 4, 5, 6, 7, 8, 0, 10, 11, 12], 4);
        assert_eq!(a[..2], b[..2]);
        assert_ne!(a[2], b[2]);
        // Same third block after a different prefix hashes differently.
        let c = sequence_hashes(&[0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], 4);
        assert_ne!(a[2], c[2]);
        assert_eq!(
            local_block_hashes(&[9, 10, 11, 12], 4),
            vec![local_block_hash(&[9, 10, 11, 12])]
        );
    }

    #[test]
    fn hash_is_xxh3_of_little_endian_ids() {
        let bytes: Vec<u8> = [7u32, 8].iter().flat_map(|t| t.to_le_bytes()).collect();
        assert_eq!(local_block_hash(&[7, 8]), xxh3_64_with_seed(&bytes, 1337));
    }
}
