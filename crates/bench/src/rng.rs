//! A small seeded generator (SplitMix64). The bench's workloads must be reproducible from a seed
//! across versions and machines, so it uses this fixed algorithm rather than a library generator
//! whose stream may change between releases.

/// Mixes one 64-bit value into a well-spread 64-bit value (the SplitMix64 finaliser).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64: a counter stepped by the golden-ratio constant, finalised by [`mix64`].
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for one stream of a seeded family: `(seed, stream)` pairs give independent
    /// streams, so request 7's prompt does not depend on how many numbers request 6 drew.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        Self::new(mix64(seed ^ mix64(stream.wrapping_add(GOLDEN_GAMMA))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `lo..hi` (`hi > lo`). The modulo bias is below 2^-32 for spans under 2^32.
    pub fn next_in(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }

    /// Standard normal by the Box–Muller transform.
    pub fn next_normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]: keeps ln finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Exponential with rate `rate` (mean `1 / rate`).
    pub fn next_exp(&mut self, rate: f64) -> f64 {
        let u = 1.0 - self.next_f64(); // (0, 1]
        -u.ln() / rate
    }
}
