//! ggml's K-quants: 256-element super-blocks with quantized per-sub-block scales.
//!
//! Every K-quant block decodes, element `i` (0..256), to
//! `(d · scale[g]) · code[i] − dmin · min[g]` with `g = i / 16`, where `d`/`dmin` are f16
//! super-block scales and `scale`/`min` small integers; [`IntBlock`] is that integer form, shared
//! by dequantization (the float operations above, in that order, so results match ggml and
//! gguf-py bit for bit) and by the scalar matmul kernel.
//!
//! | type | bytes | layout (in order) | code | scale / min |
//! |---|---|---|---|---|
//! | Q2_K | 84 | `scales[16]`, `qs[64]`, `d`, `dmin` | 2 bits, 0..=3 | 4-bit scale (low nibble) and min (high nibble) per 16 |
//! | Q3_K | 110 | `hmask[32]`, `qs[64]`, `scales[12]`, `d` | 2 low bits + high bit, −4..=3 | 6-bit `scale − 32` per 16, no min |
//! | Q4_K | 144 | `d`, `dmin`, `scales[12]`, `qs[128]` | 4 bits, 0..=15 | 6-bit scale and min per 32 |
//! | Q5_K | 176 | `d`, `dmin`, `scales[12]`, `qh[32]`, `qs[128]` | 4 low bits + high bit, 0..=31 | as Q4_K |
//! | Q6_K | 210 | `ql[128]`, `qh[64]`, `scales[16]` (i8), `d` | 4 low + 2 high bits, minus 32 | i8 scale per 16, no min |
//!
//! Each type's file documents where element `i`'s bits live. Quantization (f32 → block) is a
//! straightforward bound-respecting encoder, not ggml's search: per sub-block it takes the ideal
//! step (and offset), rounds those up onto the integer grid of a shared f16 super-scale (so every
//! sub-block's range still covers its values), then rounds each element to the nearest code.

mod q2_k;
mod q3_k;
mod q4_k;
mod q5_k;
mod q6_k;

pub use q2_k::Q2_K;
pub use q3_k::Q3_K;
pub use q4_k::Q4_K;
pub use q5_k::Q5_K;
pub use q6_k::Q6_K;

/// Elements per K-quant super-block.
pub const QK_K: usize = 256;

/// Elements per scale group in [`IntBlock`] (the finest sub-block of any K-quant).
pub(crate) const GROUP: usize = 16;

/// Scale groups per super-block.
pub(crate) const GROUPS: usize = QK_K / GROUP;

/// A K-quant block in integer form: element `i` is `(d · scales[i / 16]) · codes[i] −
/// dmin · mins[i / 16]` (the min term only when `has_min`).
pub(crate) struct IntBlock {
    pub codes: [i8; QK_K],
    pub scales: [i16; GROUPS],
    pub mins: [i16; GROUPS],
    pub d: f32,
    pub dmin: f32,
    pub has_min: bool,
}

impl IntBlock {
    /// Writes the 256 values, with the float operations in ggml's order.
    pub fn dequantize(&self, out: &mut [f32]) {
        for (g, (dst, codes)) in out[..QK_K]
            .chunks_exact_mut(GROUP)
            .zip(self.codes.chunks_exact(GROUP))
            .enumerate()
        {
            let dl = self.d * f32::from(self.scales[g]);
            if self.has_min {
                let ml = self.dmin * f32::from(self.mins[g]);
                for (o, &c) in dst.iter_mut().zip(codes) {
                    *o = dl * f32::from(c) - ml;
                }
            } else {
                for (o, &c) in dst.iter_mut().zip(codes) {
                    *o = dl * f32::from(c);
                }
            }
        }
    }
}

/// The 6-bit scales and mins of Q4_K/Q5_K: 8 of each in 12 bytes. Bytes 0..4 hold scales 0..4
/// in their low 6 bits, bytes 4..8 mins 0..4; bytes 8..12 hold the low 4 bits of scales 4..8
/// (low nibble) and mins 4..8 (high nibble), whose top 2 bits sit in bits 6..8 of bytes 0..4
/// (scales) and 4..8 (mins).
pub(crate) fn unpack_scales_mins(b: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut m) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        sc[j] = b[j] & 63;
        m[j] = b[j + 4] & 63;
        sc[j + 4] = (b[j + 8] & 0x0f) | ((b[j] >> 6) << 4);
        m[j + 4] = (b[j + 8] >> 4) | ((b[j + 4] >> 6) << 4);
    }
    (sc, m)
}

/// Inverse of [`unpack_scales_mins`] (values must be < 64).
pub(crate) fn pack_scales_mins(sc: &[u8; 8], m: &[u8; 8], out: &mut [u8]) {
    for j in 0..4 {
        out[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        out[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        out[j + 8] = (sc[j + 4] & 0x0f) | ((m[j + 4] & 0x0f) << 4);
    }
}

/// The smallest f16 value `s` with `s · max_code ≥ v_max` (0 when `v_max` is not positive): a
/// super-scale whose integer multiples up to `max_code` reach every sub-block's parameter.
fn super_scale(v_max: f32, max_code: u32) -> f32 {
    if v_max.is_nan() || v_max <= 0.0 {
        return 0.0;
    }
    let mut s = half::f16::from_f32(v_max / max_code as f32);
    while s.is_finite() && s.to_f32() * (max_code as f32) < v_max {
        s = half::f16::from_bits(s.to_bits() + 1);
    }
    s.to_f32()
}

/// `ceil(v / s)` clamped to `0..=max_code` (0 when `s` is 0): the integer multiple of `s` at
/// least `v`.
fn param_code(v: f32, s: f32, max_code: u32) -> u8 {
    if s == 0.0 {
        return 0;
    }
    ((v / s).ceil().max(0.0) as u32).min(max_code) as u8
}

/// Encoded parameters of an affine K-quant block (Q2_K, Q4_K, Q5_K): value =
/// `(d · scales[g]) · codes[i] − dmin · mins[g]` for groups of `group` elements.
pub(crate) struct Affine {
    pub d: f32,
    pub dmin: f32,
    pub scales: [u8; GROUPS],
    pub mins: [u8; GROUPS],
    pub codes: [u8; QK_K],
}

/// Affine quantization of 256 values in groups of `group`: codes `0..=qmax`, scale and min
/// codes `0..=pmax`. The min is chosen first (rounded up, so the group's lowest value, or 0,
/// is reachable), then the step that reaches the group's highest value from there (rounded up),
/// so the error is at most half a step.
pub(crate) fn quantize_affine(x: &[f32], group: usize, qmax: u32, pmax: u32) -> Affine {
    let n = QK_K / group;
    let mut lo = [0.0f32; GROUPS];
    let mut hi = [0.0f32; GROUPS];
    for (g, xs) in x[..QK_K].chunks_exact(group).enumerate() {
        lo[g] = xs.iter().copied().fold(0.0f32, f32::min);
        hi[g] = xs.iter().copied().fold(lo[g], f32::max);
    }
    let offset_max = lo[..n].iter().fold(0.0f32, |a, &v| a.max(-v));
    let dmin = super_scale(offset_max, pmax);
    let mut mins = [0u8; GROUPS];
    let mut step = [0.0f32; GROUPS];
    for g in 0..n {
        mins[g] = param_code(-lo[g], dmin, pmax);
        let base = -(dmin * f32::from(mins[g]));
        step[g] = (hi[g] - base).max(0.0) / qmax as f32;
    }
    let d = super_scale(step[..n].iter().copied().fold(0.0, f32::max), pmax);
    let mut scales = [0u8; GROUPS];
    let mut codes = [0u8; QK_K];
    for g in 0..n {
        scales[g] = param_code(step[g], d, pmax);
        let dl = d * f32::from(scales[g]);
        let ml = dmin * f32::from(mins[g]);
        let inv = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        for (c, &v) in codes[g * group..(g + 1) * group]
            .iter_mut()
            .zip(&x[g * group..(g + 1) * group])
        {
            *c = ((v + ml) * inv).round().clamp(0.0, qmax as f32) as u8;
        }
    }
    Affine {
        d,
        dmin,
        scales,
        mins,
        codes,
    }
}

/// Encoded parameters of a symmetric K-quant block (Q3_K, Q6_K): value =
/// `(d · scales[g]) · codes[i]` for groups of 16.
pub(crate) struct Symmetric {
    pub d: f32,
    pub scales: [u8; GROUPS],
    pub codes: [i8; QK_K],
}

/// Symmetric quantization of 256 values in groups of 16: codes `−qmax..=qmax`, scale codes
/// `0..=pmax` (rounded up, so a group's largest magnitude is reachable; error ≤ half a step).
pub(crate) fn quantize_symmetric(x: &[f32], qmax: i32, pmax: u32) -> Symmetric {
    let mut step = [0.0f32; GROUPS];
    for (g, xs) in x[..QK_K].chunks_exact(GROUP).enumerate() {
        step[g] = xs.iter().fold(0.0f32, |a, v| a.max(v.abs())) / qmax as f32;
    }
    let d = super_scale(step.iter().copied().fold(0.0, f32::max), pmax);
    let mut scales = [0u8; GROUPS];
    let mut codes = [0i8; QK_K];
    for g in 0..GROUPS {
        scales[g] = param_code(step[g], d, pmax);
        let dl = d * f32::from(scales[g]);
        let inv = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        for (c, &v) in codes[g * GROUP..(g + 1) * GROUP]
            .iter_mut()
            .zip(&x[g * GROUP..(g + 1) * GROUP])
        {
            *c = (v * inv).round().clamp(-qmax as f32, qmax as f32) as i8;
        }
    }
    Symmetric { d, scales, codes }
}

/// Bit position helpers shared by the 2-bit-plane layouts (Q2_K, Q3_K low bits, Q6_K high bits):
/// element `i` lives in byte `32 · (i / 128) + i % 32` of its plane, at bit `2 · ((i % 128) / 32)`.
#[inline]
pub(crate) fn crumb_at(i: usize) -> (usize, u32) {
    (32 * (i / 128) + i % 32, 2 * ((i % 128) / 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_packing_round_trips_every_6_bit_value() {
        for base in 0..64u8 {
            let sc: [u8; 8] = std::array::from_fn(|j| (base + 7 * j as u8) % 64);
            let m: [u8; 8] = std::array::from_fn(|j| (base * 3 + 11 * j as u8) % 64);
            let mut packed = [0u8; 12];
            pack_scales_mins(&sc, &m, &mut packed);
            assert_eq!(unpack_scales_mins(&packed), (sc, m));
        }
    }

    #[test]
    fn super_scale_reaches_the_maximum() {
        for v in [0.1f32, 0.3, 1.0, 7.77, 1234.5] {
            for max_code in [15u32, 63, 127] {
                let s = super_scale(v, max_code);
                assert!(s * max_code as f32 >= v, "{v} {max_code}");
                assert!(
                    s * max_code as f32 <= v * 1.002,
                    "{v} {max_code}: not tight"
                );
                assert_eq!(half::f16::from_f32(s).to_f32(), s, "an f16 value");
                assert_eq!(param_code(v, s, max_code), max_code as u8);
            }
        }
        // 1e-6 / 15 is an f16 subnormal: still reachable, on a coarse grid.
        let s = super_scale(1e-6, 15);
        assert!(s * 15.0 >= 1e-6 && param_code(1e-6, s, 15) <= 15);
        assert_eq!(super_scale(0.0, 63), 0.0);
        assert_eq!(param_code(3.0, 0.0, 63), 0);
    }

    #[test]
    fn crumbs_cover_each_bit_pair_of_64_bytes_once() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..QK_K {
            let (byte, shift) = crumb_at(i);
            assert!(byte < 64 && shift < 8);
            assert!(seen.insert((byte, shift)), "element {i}");
        }
    }
}
