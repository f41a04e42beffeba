//! Token-length distributions for synthetic prompts and outputs: `N` (fixed), `MEAN:STDDEV`
//! (normal, rounded, at least 1) or `A..B` (uniform over A..=B).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::Error;
use crate::rng::SplitMix64;

/// A distribution of token counts; every sample is at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LengthDist {
    Fixed { tokens: u32 },
    Normal { mean: f64, stddev: f64 },
    Uniform { min: u32, max: u32 },
}

impl LengthDist {
    pub fn sample(&self, rng: &mut SplitMix64) -> u32 {
        let raw = match *self {
            LengthDist::Fixed { tokens } => tokens,
            LengthDist::Normal { mean, stddev } => {
                let x = mean + stddev * rng.next_normal();
                x.round().clamp(1.0, u32::MAX as f64) as u32
            }
            LengthDist::Uniform { min, max } => rng.next_in(min as u64, max as u64 + 1) as u32,
        };
        raw.max(1)
    }

    /// The distribution's mean, used to size progress estimates.
    pub fn mean(&self) -> f64 {
        match *self {
            LengthDist::Fixed { tokens } => tokens as f64,
            LengthDist::Normal { mean, .. } => mean,
            LengthDist::Uniform { min, max } => (min as f64 + max as f64) / 2.0,
        }
    }
}

impl FromStr for LengthDist {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = || Error::LengthSpec {
            spec: s.to_string(),
        };
        let s = s.trim();
        if let Some((a, b)) = s.split_once("..") {
            let min: u32 = a.trim().parse().map_err(|_| bad())?;
            let max: u32 = b
                .trim()
                .trim_start_matches('=')
                .parse()
                .map_err(|_| bad())?;
            if min == 0 || max < min {
                return Err(bad());
            }
            return Ok(LengthDist::Uniform { min, max });
        }
        if let Some((m, sd)) = s.split_once(':') {
            let mean: f64 = m.trim().parse().map_err(|_| bad())?;
            let stddev: f64 = sd.trim().parse().map_err(|_| bad())?;
            if !(mean >= 1.0 && mean.is_finite() && stddev >= 0.0 && stddev.is_finite()) {
                return Err(bad());
            }
            return Ok(LengthDist::Normal { mean, stddev });
        }
        let tokens: u32 = s.parse().map_err(|_| bad())?;
        if tokens == 0 {
            return Err(bad());
        }
        Ok(LengthDist::Fixed { tokens })
    }
}

impl fmt::Display for LengthDist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LengthDist::Fixed { tokens } => write!(f, "{tokens}"),
            LengthDist::Normal { mean, stddev } => write!(f, "{mean}:{stddev}"),
            LengthDist::Uniform { min, max } => write!(f, "{min}..{max}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            "128".parse::<LengthDist>().unwrap(),
            LengthDist::Fixed { tokens: 128 }
        );
        assert_eq!(
            "100:20".parse::<LengthDist>().unwrap(),
            LengthDist::Normal {
                mean: 100.0,
                stddev: 20.0
            }
        );
        assert_eq!(
            "10..50".parse::<LengthDist>().unwrap(),
            LengthDist::Uniform { min: 10, max: 50 }
        );
        for bad in ["0", "x", "50..10", "0..3", "-1:2", "5:-1", ""] {
            assert!(bad.parse::<LengthDist>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn uniform_samples_cover_both_ends_and_stay_inside() {
        let d = LengthDist::Uniform { min: 3, max: 5 };
        let mut rng = SplitMix64::new(9);
        let mut seen = [0u32; 6];
        for _ in 0..3000 {
            seen[d.sample(&mut rng) as usize] += 1;
        }
        assert_eq!(seen[..3], [0, 0, 0]);
        assert!(seen[3..].iter().all(|&c| c > 800), "{seen:?}");
    }

    #[test]
    fn normal_samples_have_the_asked_mean_and_never_go_below_one() {
        let d = LengthDist::Normal {
            mean: 200.0,
            stddev: 50.0,
        };
        let mut rng = SplitMix64::new(1);
        let xs: Vec<u32> = (0..20_000).map(|_| d.sample(&mut rng)).collect();
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
        assert!((mean - 200.0).abs() < 2.0, "mean {mean}");
        let tiny = LengthDist::Normal {
            mean: 1.0,
            stddev: 10.0,
        };
        assert!((0..1000).all(|_| tiny.sample(&mut rng) >= 1));
    }
}
