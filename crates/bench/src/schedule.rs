//! Arrival schedules for open-loop runs.
//!
//! Poisson arrivals at `rate_per_s`: gaps are independent exponentials with mean `1 / rate_per_s`,
//! drawn from a [`SplitMix64`] seeded with `seed`, so one seed always gives the same schedule.
//! Arrival `k` is the sum of the first `k + 1` gaps.

use std::time::Duration;

use crate::rng::SplitMix64;

/// `n` Poisson arrival times (offsets from the start of the run), non-decreasing.
pub fn poisson_arrivals(rate_per_s: f64, n: usize, seed: u64) -> Vec<Duration> {
    let mut rng = SplitMix64::for_stream(seed, 0x706f_6973);
    let mut t = 0.0f64;
    (0..n)
        .map(|_| {
            t += rng.next_exp(rate_per_s);
            Duration::from_secs_f64(t)
        })
        .collect()
}

/// A trace's arrival times stretched by `time_scale` (0.5 replays twice as fast).
pub fn scaled(at: Duration, time_scale: f64) -> Duration {
    Duration::from_secs_f64(at.as_secs_f64() * time_scale)
}
