//! Hash maps keyed by sequence hashes. The keys are already XXH3 outputs, uniformly spread, so
//! hashing them again would only cost time: the map uses them as they are.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `Hasher` that passes a `u64` key through unchanged.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for keys that are not a single u64; fold them in so it stays a hash.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Map from sequence hash to `V`.
pub type BlockHashMap<V> = HashMap<u64, V, BuildHasherDefault<PassThroughHasher>>;
/// Set of sequence hashes.
pub type BlockHashSet = HashSet<u64, BuildHasherDefault<PassThroughHasher>>;
