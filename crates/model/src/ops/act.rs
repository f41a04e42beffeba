//! Gated activations (`act(gate) * up`) over whole rows. GELU uses an exponential the compiler
//! can vectorise: libm's `tanhf` is a scalar call per element, and in Gemma's feed-forward
//! block (a 2,048-wide row per token per layer) those calls are a visible share of the prefill.
//! [`exp`]: Cody–Waite range reduction by ln 2, a degree-6 polynomial on the rest, 2ⁿ built in
//! the exponent bits; relative error below 2⁻²² over f32's normal range (see the tests). The
//! loops run on lanes of 8 with no branch, so the AVX2+FMA copy compiled by
//! `#[target_feature]` (picked at run time) runs them eight at a time. SiLU still calls libm
//! (see `silu_one`).

/// `exp(x)` in f32 without a libm call: `inf` above 88.3 (f32 overflows at 88.72; the last
/// 0.4 overflow early) and 0 below -87.33 (where the result would be subnormal: flushed), so
/// that activations built on it reach exactly 0 and 1 where the true values do, not a floor
/// set by a clamp.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in a part exact in f32 and the rest (Cody and Waite).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let c = x.clamp(-87.3, 88.3);
    let n = (c * LOG2E + 0.5).floor();
    let r = c - n * LN2_HI - n * LN2_LO;
    // exp(r) on |r| ≤ ln2/2: 1 + r + r²·P(r).
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5.000_000_1e-1;
    let e = p * r * r + r + 1.0;
    let v = e * f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x > 88.3 {
        f32::INFINITY
    } else if x < -87.33 {
        0.0
    } else {
        v
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_COEF_A: f32 = 0.044_715;

#[inline(always)]
fn silu_one(g: f32, u: f32) -> f32 {
    // libm's exp: SmolLM2's logits against llama.cpp's (tests/golden.rs, a margin of 0.04 on
    // one prompt) move past their tolerance with the polynomial exp, through Q8_0
    // activation-quantization flips; SiLU keeps the scalar call until that test has room.
    g / (1.0 + (-g).exp()) * u
}

#[inline(always)]
fn gelu_one(x: f32, u: f32) -> f32 {
    // 0.5·x·(1 + tanh(y)), tanh(y) = 1 − 2 / (exp(2y) + 1) (±1 once exp saturates); for
    // negative x, 1 + tanh(y) = 2 / (1 + exp(−2y)) instead, which does not cancel. (The Q8_0
    // golden test of tests/arch_golden.rs quantizes these values: a last-ulp change in how the
    // positive branch rounds flips a code there and moves its logits by 0.6%.)
    let y = SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x);
    let one_plus_tanh = if x >= 0.0 {
        1.0 + (1.0 - 2.0 / (exp(2.0 * y) + 1.0))
    } else {
        2.0 / (1.0 + exp(-2.0 * y))
    };
    0.5 * x * one_plus_tanh * u
}

#[inline(always)]
fn silu_rows(gate: &mut [f32], up: &[f32]) {
    let mut g8 = gate.chunks_exact_mut(8);
    let mut u8 = up.chunks_exact(8);
    for (g, u) in (&mut g8).zip(&mut u8) {
        for i in 0..8 {
            g[i] = silu_one(g[i], u[i]);
        }
    }
    for (g, &u) in g8.into_remainder().iter_mut().zip(u8.remainder()) {
        *g = silu_one(*g, u);
    }
}

#[inline(always)]
fn gelu_rows(gate: &mut [f32], up: &[f32]) {
    let mut g8 = gate.chunks_exact_mut(8);
    let mut u8 = up.chunks_exact(8);
    for (g, u) in (&mut g8).zip(&mut u8) {
        for i in 0..8 {
            g[i] = gelu_one(g[i], u[i]);
        }
    }
    for (g, &u) in g8.into_remainder().iter_mut().zip(u8.remainder()) {
        *g = gelu_one(*g, u);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_rows_avx2(gate: &mut [f32], up: &[f32]) {
    silu_rows(gate, up)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_rows_avx2(gate: &mut [f32], up: &[f32]) {
    gelu_rows(gate, up)
}

/// SwiGLU: `gate[i] = silu(gate[i]) * up[i]`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "silu_mul lengths");
    #[cfg(target_arch = "x86_64")]
    {
        if super::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { silu_rows_avx2(gate, up) };
        }
    }
    silu_rows(gate, up)
}

/// GeGLU: `gate[i] = gelu_tanh(gate[i]) * up[i]`.
pub fn gelu_tanh_mul(gate: &mut [f32], up: &[f32]) {
    assert_eq!(gate.len(), up.len(), "gelu_tanh_mul lengths");
    #[cfg(target_arch = "x86_64")]
    {
        if super::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            return unsafe { gelu_rows_avx2(gate, up) };
        }
    }
    gelu_rows(gate, up)
}

/// The portable paths, for tests that compare them with the AVX2 ones.
#[doc(hidden)]
pub fn silu_mul_portable(gate: &mut [f32], up: &[f32]) {
    silu_rows(gate, up)
}

#[doc(hidden)]
pub fn gelu_tanh_mul_portable(gate: &mut [f32], up: &[f32]) {
    gelu_rows(gate, up)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_to_the_minus_22_relative_over_the_range() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let got = exp(x) as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_37;
        }
        assert!(worst < 2f64.powi(-22), "worst relative error {worst:e}");
    }

    #[test]
    fn exp_overflows_and_underflows_where_f32_does() {
        assert_eq!(exp(1000.0), f32::INFINITY);
        assert_eq!(exp(88.4), f32::INFINITY);
        assert!(exp(88.29).is_finite() && exp(88.29) > 2e38);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(-87.4), 0.0);
        assert!(exp(-87.3) > 1.1e-38);
        assert_eq!(exp(0.0), 1.0);
    }
}
