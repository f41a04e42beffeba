//! The right-hand side of a matmul, prepared once and shared read-only by all threads.
//!
//! The weight type decides the encoding ([`ActivationFormat`]), following what llama.cpp pairs
//! with each type so our rounding matches the golden references: Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 weights take
//! ggml Q8_0/Q8_1-like blocks of 32, the K-quants take ggml Q8_K-like blocks of 256, float weights
//! take the f32 values as they are.

use super::Kernel;
use crate::quant::{quantize_q8_block, GgmlType, QK, QK_K};

/// Elements per code sum in the Q8_K-like encoding.
const BSUM: usize = 16;

/// How a matmul's activations are encoded, chosen by the weight type
/// ([`ActivationFormat::for_weights`]). The f32 values are always kept as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActivationFormat {
    /// f32 only (F32, F16, BF16 weights).
    #[default]
    F32,
    /// 8-bit codes per 32-block with a scale `d` kept at f16 precision and `s = d · Σq`
    /// (ggml Q8_0; with `sum_in_f16`, Q8_1, whose `s` is rounded to f16 on its own).
    Q8Blocks32 { sum_in_f16: bool },
    /// 8-bit codes per 256-block with an f32 scale `d` and the code sums of each 16 elements
    /// (ggml Q8_K): `q = round(x · 127 / max|x|)`, `d = 1 / (127 / max|x|)`.
    Q8K,
}

impl ActivationFormat {
    /// The encoding llama.cpp pairs with weights of `dtype`.
    pub fn for_weights(dtype: GgmlType) -> ActivationFormat {
        use GgmlType::*;
        match dtype {
            Q8_0 | Q4_0 | Q5_0 => ActivationFormat::Q8Blocks32 { sum_in_f16: false },
            Q4_1 | Q5_1 => ActivationFormat::Q8Blocks32 { sum_in_f16: true },
            Q2_K | Q3_K | Q4_K | Q5_K | Q6_K => ActivationFormat::Q8K,
            _ => ActivationFormat::F32,
        }
    }

    /// Elements per scale `d` (0 for f32).
    pub fn group_len(self) -> usize {
        match self {
            ActivationFormat::F32 => 0,
            ActivationFormat::Q8Blocks32 { .. } => QK,
            ActivationFormat::Q8K => QK_K,
        }
    }

    /// Whether activations in this encoding can be multiplied with weights of `dtype`: float
    /// weights read the f32 values of any encoding; the others need their own block size (a
    /// Q4_1/Q5_1 kernel accepts an exact `s` in place of the f16-rounded one).
    pub fn serves(self, dtype: GgmlType) -> bool {
        match Self::for_weights(dtype) {
            ActivationFormat::F32 => true,
            want => want.group_len() == self.group_len(),
        }
    }
}

/// `batch` rows of `cols` f32 values, plus (for quantized weights) their 8-bit encoding
/// ([`ActivationFormat`]): codes `q` (i8), one scale `d` per group, and per-32 block sums
/// `s = d · Σq` (Q8Blocks32) or per-16 code sums (Q8K).
#[derive(Debug, Default, Clone)]
pub struct Activations {
    batch: usize,
    cols: usize,
    x: Vec<f32>,
    format: ActivationFormat,
    q: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    /// `d` and `s` interleaved per block (`[d0, s0, d1, s1, …]`): one 8-byte load in the kernel.
    ds: Vec<f32>,
    /// Q8K: Σq over each 16 elements.
    bsums: Vec<i16>,
}

impl Activations {
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads `x` (row-major `[batch, cols]`) for a matmul with weights of `for_dtype`, encoding
    /// it as that format's kernel wants ([`ActivationFormat::for_weights`]). Reuses the buffers.
    pub fn prepare(&mut self, x: &[f32], batch: usize, cols: usize, for_dtype: GgmlType) {
        self.prepare_with(Kernel::detect(), x, batch, cols, for_dtype)
    }

    /// [`Activations::prepare`] quantizing on a chosen kernel (all kernels give identical bytes).
    pub fn prepare_with(
        &mut self,
        kernel: Kernel,
        x: &[f32],
        batch: usize,
        cols: usize,
        for_dtype: GgmlType,
    ) {
        assert_eq!(x.len(), batch * cols, "prepare: x must be batch * cols");
        self.batch = batch;
        self.cols = cols;
        self.x.clear();
        self.x.extend_from_slice(x);
        self.format = ActivationFormat::for_weights(for_dtype);
        let group = self.format.group_len();
        if group == 0 {
            return;
        }
        assert_eq!(
            cols % group,
            0,
            "{for_dtype:?} activations need cols to be a multiple of {group}"
        );
        if kernel == Kernel::Avx2 {
            assert!(
                kernel.is_available(),
                "AVX2+FMA+F16C kernel requested on a CPU without it"
            );
        }
        self.q.resize(batch * cols, 0);
        self.d.resize(batch * cols / group, 0.0);
        match self.format {
            ActivationFormat::Q8Blocks32 { sum_in_f16 } => {
                self.s.resize(batch * cols / QK, 0.0);
                self.quantize_blocks32(kernel, sum_in_f16);
                self.interleave_scales();
            }
            ActivationFormat::Q8K => {
                self.bsums.resize(batch * cols / BSUM, 0);
                self.quantize_q8k(kernel);
            }
            ActivationFormat::F32 => unreachable!("handled above"),
        }
    }

    fn quantize_blocks32(&mut self, kernel: Kernel, sum_in_f16: bool) {
        match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `prepare_with` checked the kernel's CPU features.
            Kernel::Avx2 => unsafe {
                super::avx2::quantize_activations(
                    &self.x,
                    &mut self.q,
                    &mut self.d,
                    &mut self.s,
                    sum_in_f16,
                )
            },
            _ => {
                for (i, src) in self.x.chunks_exact(QK).enumerate() {
                    let (d, q) = quantize_q8_block(src);
                    let sum: i32 = q.iter().map(|&v| i32::from(v)).sum();
                    self.q[i * QK..(i + 1) * QK].copy_from_slice(&q);
                    // `d` is kept at f16 precision, as ggml's Q8_0/Q8_1 blocks store it, so our
                    // rounding follows llama.cpp's (the golden test's reference).
                    self.d[i] = round_to_f16(d);
                    self.s[i] = block_sum(d, self.d[i], sum, sum_in_f16);
                }
            }
        }
    }

    fn quantize_q8k(&mut self, kernel: Kernel) {
        match kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `prepare_with` checked the kernel's CPU features.
            Kernel::Avx2 => unsafe {
                super::avx2_k::quantize_q8k(&self.x, &mut self.q, &mut self.d)
            },
            _ => quantize_q8k_scalar(&self.x, &mut self.q, &mut self.d),
        }
        for (sum, q) in self.bsums.iter_mut().zip(self.q.chunks_exact(BSUM)) {
            *sum = q.iter().map(|&v| i16::from(v)).sum();
        }
    }

    fn interleave_scales(&mut self) {
        self.ds.clear();
        self.ds
            .extend(self.d.iter().zip(&self.s).flat_map(|(&d, &s)| [d, s]));
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Whether the 8-bit copy is present.
    pub fn is_quantized(&self) -> bool {
        self.format != ActivationFormat::F32
    }

    /// The encoding [`Activations::prepare`] chose.
    pub fn format(&self) -> ActivationFormat {
        self.format
    }

    /// Row `b` in f32.
    pub fn row(&self, b: usize) -> &[f32] {
        &self.x[b * self.cols..(b + 1) * self.cols]
    }

    /// Row `b`'s 8-bit codes.
    pub fn q_row(&self, b: usize) -> &[i8] {
        &self.q[b * self.cols..(b + 1) * self.cols]
    }

    /// Row `b`'s scales, one per group of [`ActivationFormat::group_len`] elements.
    pub fn d_row(&self, b: usize) -> &[f32] {
        let nb = self.cols / self.format.group_len();
        &self.d[b * nb..(b + 1) * nb]
    }

    /// Row `b`'s per-32-block `d · Σq` (Q8Blocks32 only).
    pub fn s_row(&self, b: usize) -> &[f32] {
        assert!(matches!(self.format, ActivationFormat::Q8Blocks32 { .. }));
        let nb = self.cols / QK;
        &self.s[b * nb..(b + 1) * nb]
    }

    /// Row `b`'s `[d, s]` pairs, interleaved (Q8Blocks32 only).
    pub(crate) fn ds_row(&self, b: usize) -> &[f32] {
        let nb = self.cols / QK;
        &self.ds[2 * b * nb..2 * (b + 1) * nb]
    }

    /// Row `b`'s code sums over each 16 elements (Q8K only).
    pub fn bsums_row(&self, b: usize) -> &[i16] {
        assert_eq!(self.format, ActivationFormat::Q8K);
        let nb = self.cols / BSUM;
        &self.bsums[b * nb..(b + 1) * nb]
    }

    /// Row `b` as the quantized values decode (`q · d`): what the integer kernels actually see.
    pub fn dequantized_row(&self, b: usize) -> Vec<f32> {
        assert!(self.is_quantized(), "activations are not quantized");
        let (d, group) = (self.d_row(b), self.format.group_len());
        self.q_row(b)
            .iter()
            .enumerate()
            .map(|(i, &q)| f32::from(q) * d[i / group])
            .collect()
    }
}

/// A block's `s`: ggml's Q8_1 rounds `d · Σq` (with the unrounded `d`) to f16; otherwise it is
/// exactly the rounded `d` times `Σq`.
#[inline]
pub(crate) fn block_sum(d: f32, d_rounded: f32, sum: i32, sum_in_f16: bool) -> f32 {
    if sum_in_f16 {
        round_to_f16(d * sum as f32)
    } else {
        d_rounded * sum as f32
    }
}

/// `v` rounded to the nearest f16 value, back in f32.
#[inline]
pub(crate) fn round_to_f16(v: f32) -> f32 {
    half::f16::from_f32(v).to_f32()
}

/// Q8_K-like quantization of `x` (whole 256-blocks) into codes `q` and one scale per block in
/// `d`: `q = round_half_even(x · (127 / max|x|))`, `d = 1 / (127 / max|x|)` (0 and all-zero codes
/// for an all-zero block). llama.cpp scales by `−127 / max` with `max` the signed extreme, which
/// negates both `q` and `d` (exactly, ties included) and so yields the same products.
pub(crate) fn quantize_q8k_scalar(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    for ((src, dst), scale) in x
        .chunks_exact(QK_K)
        .zip(q.chunks_exact_mut(QK_K))
        .zip(d.iter_mut())
    {
        let amax = src.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        if amax == 0.0 {
            *scale = 0.0;
            dst.fill(0);
            continue;
        }
        let iscale = 127.0 / amax;
        for (o, &v) in dst.iter_mut().zip(src) {
            *o = crate::quant::round_half_even(v * iscale).min(127.0) as i8;
        }
        *scale = 1.0 / iscale;
    }
}
